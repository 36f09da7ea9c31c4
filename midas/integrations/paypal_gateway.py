"""PayPal over HTTPS: a client-credentials token, the Orders v2 and capture-refund APIs, and IPN verification.

PayPal's maintained Python SDKs do not cover Orders v2 the way we need (our own request ids, our own
timeouts), so this is a small `requests` client. Every base URL comes from config, so tests point it at
a local fake. Network errors, 429 and 5xx are retried with the same PayPal-Request-Id, so a retry can
never create a second order or capture twice.
"""

from __future__ import annotations

import base64
import time
from dataclasses import dataclass
from typing import Any

import requests
from flask import current_app

from midas.money import exponent, parse_major

TIMEOUT = (3, 10)  # connect, read: a token and a call stay well under the router's 30 s
RETRY_DELAYS = (0.2, 0.8)  # seconds before the 2nd and 3rd attempt
RETRY_WITHIN = 5  # seconds: a quick failure is tried again, a slow one (a read timeout) is not
TOKEN_MARGIN = 60  # refresh a token this many seconds before PayPal says it expires
USER_AGENT = "Midas/1.0 (+paypal-ipn)"
# Currencies PayPal accepts; HUF, JPY and TWD without decimals (PayPal refuses fractional amounts there).
SUPPORTED = frozenset({"AUD", "BRL", "CAD", "CHF", "CNY", "CZK", "DKK", "EUR", "GBP", "HKD", "HUF", "ILS", "JPY",
                       "MXN", "MYR", "NOK", "NZD", "PHP", "PLN", "SEK", "SGD", "THB", "TWD", "USD"})
WHOLE_UNITS = frozenset({"HUF", "JPY", "TWD"})


class PayPalError(Exception):
    """PayPal refused, or could not be reached; `code` is PayPal's own name for the problem."""

    def __init__(self, message: str, code: str = "", status: int | None = None, debug_id: str | None = None,
                 transient: bool = False) -> None:
        super().__init__(message)
        self.code = code
        self.status = status
        self.debug_id = debug_id
        self.transient = transient


@dataclass(frozen=True)
class Capture:
    id: str
    status: str  # COMPLETED, PENDING, DECLINED, FAILED …
    value: str  # PayPal's amount string, e.g. "4250.00"
    currency: str
    reason: str | None = None  # status_details.reason for a pending or declined capture


@dataclass(frozen=True)
class RefundResult:
    id: str
    status: str  # COMPLETED, PENDING, FAILED, CANCELLED
    reason: str | None = None  # status_details.reason, e.g. ECHECK for a pending refund


@dataclass(frozen=True)
class Order:
    id: str
    status: str  # CREATED, PAYER_ACTION_REQUIRED, APPROVED, COMPLETED, VOIDED …
    approve_url: str | None = None
    capture: Capture | None = None


def paypal_value(amount: int, currency: str) -> str:
    """Minor units → PayPal's amount string: 425000 EUR → "4250.00", 120000 JPY → "120000"; never a float."""
    digits = exponent(currency)
    if currency.upper() in WHOLE_UNITS and digits:
        if amount % 10**digits:
            raise ValueError(f"PayPal takes whole {currency} amounts only")
        return str(amount // 10**digits)
    if not digits:
        return str(amount)
    major, minor = divmod(amount, 10**digits)
    return f"{major}.{minor:0{digits}d}"


def minor_units(value: str, currency: str) -> int:
    """PayPal's amount string → minor units: "4250.00" EUR → 425000, "-4250.00" → -425000; ValueError if malformed."""
    whole, _, fraction = value.strip().partition(".")
    digits = exponent(currency)
    if len(fraction) > digits and not fraction[digits:].strip("0"):
        fraction = fraction[:digits]  # "120000.00" in JPY is still 120000
    return parse_major(f"{whole}.{fraction}" if fraction else whole, currency)


def accepts(currency: str) -> bool:
    return currency.upper() in SUPPORTED


class PayPalGateway:
    """One PayPal account: REST calls need the client id and secret; IPN verification needs neither."""

    def __init__(self, client_id: str | None, secret: str | None, api_base: str, verify_url: str,
                 tokens: dict | None = None) -> None:
        self.client_id = client_id
        self.secret = secret
        self.api_base = api_base.rstrip("/")
        self.verify_url = verify_url
        self.tokens = {} if tokens is None else tokens  # shared per app: (base, client id) → (token, expiry)

    @property
    def enabled(self) -> bool:
        return bool(self.client_id and self.secret)

    def create_order(self, request_id: str, reference: str, amount: int, currency: str, description: str,
                     return_url: str, cancel_url: str) -> Order:
        """Create a CAPTURE order for the booking; the customer approves it at `approve_url`."""
        unit = {"reference_id": reference, "custom_id": reference, "description": description[:127],
                "amount": {"currency_code": currency, "value": paypal_value(amount, currency)}}
        context = {"brand_name": "Midas", "shipping_preference": "NO_SHIPPING", "user_action": "CONTINUE",
                   "return_url": return_url, "cancel_url": cancel_url}
        body = {"intent": "CAPTURE", "purchase_units": [unit],
                "payment_source": {"paypal": {"experience_context": context}}}
        return _order(self._call("POST", "/v2/checkout/orders", request_id, body))

    def capture_order(self, order_id: str, request_id: str) -> Order:
        """Capture an approved order; the same request id returns the same capture."""
        return _order(self._call("POST", f"/v2/checkout/orders/{order_id}/capture", request_id, {}))

    def get_order(self, order_id: str) -> Order:
        return _order(self._call("GET", f"/v2/checkout/orders/{order_id}"))

    def refund_capture(self, capture_id: str, amount: int, currency: str, request_id: str, note: str = "",
                       invoice_id: str | None = None) -> RefundResult:
        """Refund part or all of a capture; the same request id returns the same refund, never a second one."""
        body: dict[str, Any] = {"amount": {"currency_code": currency, "value": paypal_value(amount, currency)}}
        if note:
            body["note_to_payer"] = note[:255]
        if invoice_id:
            body["invoice_id"] = invoice_id[:127]
        return _refund(self._call("POST", f"/v2/payments/captures/{capture_id}/refund", request_id, body))

    def get_refund(self, refund_id: str) -> RefundResult:
        """PayPal's current word on a refund (a PENDING one settles later)."""
        return _refund(self._call("GET", f"/v2/payments/refunds/{refund_id}"))

    def verify_ipn(self, raw_body: bytes) -> str:
        """Post the message back byte for byte after `cmd=_notify-validate&`; PayPal says VERIFIED or INVALID."""
        headers = {"Content-Type": "application/x-www-form-urlencoded", "User-Agent": USER_AGENT}
        response = self._send("POST", self.verify_url, headers=headers, data=b"cmd=_notify-validate&" + raw_body)
        if not response.ok:
            raise PayPalError(f"IPN verification answered HTTP {response.status_code}", status=response.status_code,
                              transient=True)
        verdict = response.text.strip()
        if verdict not in ("VERIFIED", "INVALID"):
            raise PayPalError(f"IPN verification answered {verdict[:40]!r}", transient=True)
        return verdict

    # Plumbing.

    def _call(self, method: str, path: str, request_id: str | None = None, body: Any = None) -> dict:
        if not self.enabled:
            raise PayPalError("PayPal is not configured (PAYPAL_CLIENT_ID, PAYPAL_CLIENT_SECRET)", "NOT_CONFIGURED")
        headers = {"Content-Type": "application/json", "Prefer": "return=representation"}
        if request_id:
            headers["PayPal-Request-Id"] = request_id
        response = self._send(method, self.api_base + path, headers=headers, json=body, authorized=True)
        if response.status_code == 401:  # the cached token was revoked or expired early: one fresh try
            self.tokens.pop(self._token_key, None)
            response = self._send(method, self.api_base + path, headers=headers, json=body, authorized=True)
        if not response.ok:
            raise _error(response)
        return response.json()

    def _send(self, method: str, url: str, authorized: bool = False, **kwargs) -> requests.Response:
        """One call with bounded timeouts; quick network errors, 429 and 5xx are tried again, same headers."""
        last: PayPalError | None = None
        started = time.monotonic()
        for delay in (0, *RETRY_DELAYS):
            if last is not None and time.monotonic() - started > RETRY_WITHIN:
                break
            time.sleep(delay)
            if authorized:
                kwargs["headers"]["Authorization"] = f"Bearer {self._token()}"
            try:
                response = requests.request(method, url, timeout=TIMEOUT, **kwargs)
            except requests.RequestException as exc:
                last = PayPalError(f"{type(exc).__name__} contacting PayPal", "NETWORK_ERROR", transient=True)
                continue
            if response.status_code != 429 and response.status_code < 500:
                return response
            last = _error(response)
        raise last

    @property
    def _token_key(self) -> tuple[str, str | None]:
        return (self.api_base, self.client_id)

    def _token(self) -> str:
        cached = self.tokens.get(self._token_key)
        if cached and cached[1] > time.monotonic():
            return cached[0]
        credentials = base64.b64encode(f"{self.client_id}:{self.secret}".encode()).decode()
        headers = {"Authorization": f"Basic {credentials}", "Accept": "application/json"}
        response = self._send("POST", f"{self.api_base}/v1/oauth2/token", headers=headers,
                              data={"grant_type": "client_credentials"})
        if not response.ok:
            raise _error(response)
        body = response.json()
        lifetime = max(int(body.get("expires_in", 0)) - TOKEN_MARGIN, 0)
        self.tokens[self._token_key] = (body["access_token"], time.monotonic() + lifetime)
        return body["access_token"]


def from_app() -> PayPalGateway:
    """The gateway for the current app, built on use from its config (tokens cached per app)."""
    config = current_app.config
    tokens = current_app.extensions.setdefault("paypal_tokens", {})
    return PayPalGateway(config.get("PAYPAL_CLIENT_ID"), config.get("PAYPAL_CLIENT_SECRET"),
                         config["PAYPAL_API_BASE"], config["PAYPAL_IPN_VERIFY_URL"], tokens)


def _order(body: dict) -> Order:
    links = {link.get("rel"): link.get("href") for link in body.get("links", [])}
    captures = [capture for unit in body.get("purchase_units", [])
                for capture in (unit.get("payments") or {}).get("captures", [])]
    return Order(id=body["id"], status=body.get("status", ""),
                 approve_url=links.get("payer-action") or links.get("approve"),
                 capture=_capture(captures[-1]) if captures else None)


def _refund(body: dict) -> RefundResult:
    return RefundResult(id=body["id"], status=body.get("status", ""),
                        reason=(body.get("status_details") or {}).get("reason"))


def _capture(body: dict) -> Capture:
    amount = body.get("amount") or {}
    return Capture(id=body["id"], status=body.get("status", ""), value=amount.get("value", ""),
                   currency=amount.get("currency_code", ""), reason=(body.get("status_details") or {}).get("reason"))


def _error(response: requests.Response) -> PayPalError:
    """PayPal's own words: the first detail's `issue` (INSTRUMENT_DECLINED …), else its `name` or OAuth `error`."""
    try:
        body = response.json()
    except ValueError:
        body = {}
    body = body if isinstance(body, dict) else {}
    details = body.get("details") or [{}]
    code = details[0].get("issue") or body.get("name") or body.get("error") or f"HTTP_{response.status_code}"
    message = details[0].get("description") or body.get("message") or body.get("error_description") or response.reason
    return PayPalError(f"{code}: {message}", code, response.status_code, body.get("debug_id"),
                       transient=response.status_code == 429 or response.status_code >= 500)
