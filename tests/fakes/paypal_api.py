"""A local PayPal: the REST token and Orders v2 endpoints, and the IPN verify endpoint, on 127.0.0.1.

It keeps PayPal's own rules that Midas relies on: a PayPal-Request-Id seen before returns the first
answer (no second order, no second capture); an order is captured only once approved; the verify
endpoint answers VERIFIED only for the exact bytes PayPal sent (`fake.sent(body)`), prefixed with
`cmd=_notify-validate&`. Import the fixtures into a test module:
`fake_paypal, paypal_server = paypal_api.fake_paypal, paypal_api.paypal_server`.
"""

from __future__ import annotations

import base64
import itertools
import json
import re
import secrets
import time
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from flask import Flask
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from midas.extensions import db
from midas.integrations import paypal_gateway
from midas.models import Booking, ErrorEvent, utcnow
from midas.services import error_capture
from midas.tasks import queue
from midas.tasks.worker import run_worker
from tests import factories

CLIENT_ID, SECRET = "fake-client-id", "fake-client-secret"
RECEIVER = "payments@midas.example"
IPN_DIR = Path(__file__).resolve().parent.parent / "fixtures" / "paypal"
ORDER = re.compile(r"^/v2/checkout/orders/(?P<id>[A-Z0-9]+)(?P<capture>/capture)?$")
CAPTURE_REFUND = re.compile(r"^/v2/payments/captures/(?P<id>[A-Z0-9]+)/refund$")
REFUND = re.compile(r"^/v2/payments/refunds/(?P<id>[A-Z0-9]+)$")


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> dict:
        return json.loads(self.body or b"{}")


@dataclass
class FakePayPal:
    server: HTTPServer
    orders: dict[str, dict] = field(default_factory=dict)
    answers: dict[str, tuple[int, dict]] = field(default_factory=dict)  # PayPal-Request-Id → first answer
    seen: list[Seen] = field(default_factory=list)
    tokens: set[str] = field(default_factory=set)
    genuine: set[bytes] = field(default_factory=set)
    failures: list[tuple[str, int, dict]] = field(default_factory=list)
    slow_paths: dict[str, float] = field(default_factory=dict)  # path part → seconds before answering
    capture_outcome: str = "COMPLETED"  # or PENDING, DECLINED, or an error issue such as INSTRUMENT_DECLINED
    captures: dict[str, dict] = field(default_factory=dict)  # capture id → capture (with what is refunded)
    refunds: dict[str, dict] = field(default_factory=dict)
    refund_outcome: str = "COMPLETED"  # or PENDING, FAILED, or an error issue such as TRANSACTION_REFUSED
    ids: itertools.count = field(default_factory=lambda: itertools.count(1))

    # What tests call.

    def approve(self, order_id: str) -> None:
        """The customer approved the order at PayPal."""
        self.orders[order_id]["status"] = "APPROVED"

    def add_capture(self, capture_id: str, value: str, currency: str) -> None:
        """A capture made earlier (the booking's PayPal payment), ready to be refunded."""
        self.captures[capture_id] = {"id": capture_id, "status": "COMPLETED",
                                     "amount": {"value": value, "currency_code": currency}, "refunded": Decimal(0)}

    def settle_refund(self, refund_id: str, status: str) -> None:
        """A PENDING refund completes (or fails) at PayPal later."""
        self.refunds[refund_id]["status"] = status
        self.refunds[refund_id].pop("status_details", None)

    def sent(self, body: bytes) -> bytes:
        """PayPal sent this IPN message: verifying these exact bytes answers VERIFIED."""
        self.genuine.add(body)
        return body

    def fail_next(self, path_part: str, status: int, body: dict | None = None, times: int = 1) -> None:
        self.failures.extend([(path_part, status, body or {"name": "INTERNAL_SERVER_ERROR"})] * times)

    def calls(self, path_part: str, method: str = "POST") -> list[Seen]:
        return [s for s in self.seen if path_part in s.path and s.method == method]

    # The server side.

    def handle(self, request: Request) -> Response:
        self.seen.append(Seen(request.method, request.path, dict(request.headers), request.get_data()))
        time.sleep(max([s for part, s in self.slow_paths.items() if part in request.path], default=0))
        for index, (part, status, body) in enumerate(self.failures):
            if part in request.path:
                del self.failures[index]
                return _json(status, body)
        if request.path == "/cgi-bin/webscr":
            return self._verify(request)
        if request.path == "/v1/oauth2/token":
            return self._token(request)
        if request.headers.get("Authorization", "").removeprefix("Bearer ") not in self.tokens:
            return _json(401, {"error": "invalid_token", "error_description": "Token signature verification failed"})
        return self._orders(request)

    def _verify(self, request: Request) -> Response:
        body = request.get_data()
        prefix = b"cmd=_notify-validate&"
        verified = body.startswith(prefix) and body[len(prefix):] in self.genuine
        return Response("VERIFIED" if verified else "INVALID", content_type="text/html; charset=UTF-8")

    def _token(self, request: Request) -> Response:
        expected = "Basic " + base64.b64encode(f"{CLIENT_ID}:{SECRET}".encode()).decode()
        if request.headers.get("Authorization") != expected or request.form.get("grant_type") != "client_credentials":
            return _json(401, {"error": "invalid_client", "error_description": "Client Authentication failed"})
        token = f"A21AA{secrets.token_hex(8)}"
        self.tokens.add(token)
        return _json(200, {"scope": "https://uri.paypal.com/services/payments/payment", "access_token": token,
                           "token_type": "Bearer", "app_id": "APP-80W284485P519543T", "expires_in": 32400})

    def _orders(self, request: Request) -> Response:
        request_id = request.headers.get("PayPal-Request-Id")
        if request_id and request_id in self.answers:
            return _json(*self.answers[request_id])
        status, body = self._route(request)
        if request_id and status < 500:
            self.answers[request_id] = (status, body)
        return _json(status, body)

    def _route(self, request: Request) -> tuple[int, dict]:
        if request.path == "/v2/checkout/orders" and request.method == "POST":
            return self._create(request.get_json())
        if match := CAPTURE_REFUND.match(request.path):
            return self._refund(match["id"], request.get_json(silent=True) or {})
        if match := REFUND.match(request.path):
            refund = self.refunds.get(match["id"])
            return (200, refund) if refund else (404, _issue("RESOURCE_NOT_FOUND", "The refund does not exist."))
        match = ORDER.match(request.path)
        order = self.orders.get(match["id"]) if match else None
        if order is None:
            return 404, _issue("RESOURCE_NOT_FOUND", "The specified resource does not exist.")
        if match["capture"]:
            return self._capture(order)
        return 200, order

    def _create(self, body: dict) -> tuple[int, dict]:
        unit = body["purchase_units"][0]
        if not re.fullmatch(r"\d+(\.\d{2})?", unit["amount"]["value"]) or (
                unit["amount"]["currency_code"] == "JPY" and "." in unit["amount"]["value"]):
            return 422, _issue("DECIMAL_PRECISION", "The value of the field should not have more decimals.")
        order_id = f"5O{next(self.ids):015d}"
        self.orders[order_id] = {
            "id": order_id, "intent": body["intent"], "status": "PAYER_ACTION_REQUIRED",
            "purchase_units": [{**unit, "payments": {}}],
            "links": [{"rel": "self", "href": f"{self.server.url_for('/v2/checkout/orders/')}{order_id}"},
                      {"rel": "payer-action", "href": f"https://www.sandbox.paypal.com/checkoutnow?token={order_id}"}],
        }
        return 200, self.orders[order_id]

    def _capture(self, order: dict) -> tuple[int, dict]:
        if order["status"] == "COMPLETED":
            return 422, _issue("ORDER_ALREADY_CAPTURED", "Order already captured.")
        if order["status"] != "APPROVED":
            return 422, _issue("ORDER_NOT_APPROVED", "Payer has not yet approved the Order for payment.")
        if self.capture_outcome not in ("COMPLETED", "PENDING", "DECLINED"):
            return 422, _issue(self.capture_outcome, "The instrument presented was either declined or not usable.")
        capture = {"id": f"8{next(self.ids):016d}",
                   "status": self.capture_outcome, "amount": order["purchase_units"][0]["amount"],
                   "custom_id": order["purchase_units"][0].get("custom_id"), "final_capture": True}
        if self.capture_outcome == "PENDING":
            capture["status_details"] = {"reason": "PENDING_REVIEW"}
        order["purchase_units"][0]["payments"] = {"captures": [capture]}
        self.captures[capture["id"]] = {**capture, "refunded": Decimal(0)}
        order["status"] = "COMPLETED"
        return 201, order


    def _refund(self, capture_id: str, body: dict) -> tuple[int, dict]:
        capture = self.captures.get(capture_id)
        if capture is None:
            return 404, _issue("RESOURCE_NOT_FOUND", "The specified resource does not exist.")
        amount = body.get("amount") or capture["amount"]
        if amount["currency_code"] != capture["amount"]["currency_code"]:
            return 422, _issue("CURRENCY_MISMATCH", "Refund must be in the same currency as the capture.")
        if not re.fullmatch(r"\d+(\.\d{2})?", amount["value"]):
            return 422, _issue("DECIMAL_PRECISION", "The value of the field should not have more decimals.")
        left = Decimal(capture["amount"]["value"]) - capture["refunded"]
        if Decimal(amount["value"]) > left:
            issue = "CAPTURE_FULLY_REFUNDED" if left <= 0 else "REFUND_AMOUNT_EXCEEDED"
            return 422, _issue(issue, "The refund amount exceeds what is left of the capture.")
        if self.refund_outcome not in ("COMPLETED", "PENDING", "FAILED"):
            return 422, _issue(self.refund_outcome, "The request was refused.")
        refund = {"id": f"1R{next(self.ids):015d}", "status": self.refund_outcome, "amount": amount,
                  "invoice_id": body.get("invoice_id"), "note_to_payer": body.get("note_to_payer"),
                  "links": [{"rel": "up", "href": f"/v2/payments/captures/{capture_id}"}]}
        if self.refund_outcome == "PENDING":
            refund["status_details"] = {"reason": "ECHECK"}
        if self.refund_outcome != "FAILED":
            capture["refunded"] += Decimal(amount["value"])
        self.refunds[refund["id"]] = refund
        return 201, refund


def _json(status: int, body: dict) -> Response:
    return Response(json.dumps(body), status=status, content_type="application/json")


def _issue(issue: str, description: str) -> dict:
    name = "RESOURCE_NOT_FOUND" if issue == "RESOURCE_NOT_FOUND" else "UNPROCESSABLE_ENTITY"
    return {"name": name, "message": "The requested action could not be performed.",
            "debug_id": secrets.token_hex(6), "details": [{"issue": issue, "description": description}]}


@pytest.fixture(scope="session")
def paypal_server():
    server = HTTPServer(host="127.0.0.1", port=0)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def fake_paypal(app: Flask, paypal_server: HTTPServer, monkeypatch) -> FakePayPal:
    """The app pointed at a fresh fake PayPal for one test, with its credentials and receiver address."""
    paypal_server.clear()
    fake = FakePayPal(paypal_server)
    paypal_server.expect_request(re.compile(".*")).respond_with_handler(fake.handle)
    settings = {"PAYPAL_CLIENT_ID": CLIENT_ID, "PAYPAL_CLIENT_SECRET": SECRET, "PAYPAL_RECEIVER_EMAIL": RECEIVER,
                "PAYPAL_API_BASE": paypal_server.url_for("").rstrip("/"),
                "PAYPAL_IPN_VERIFY_URL": paypal_server.url_for("/cgi-bin/webscr")}
    for key, value in settings.items():
        monkeypatch.setitem(app.config, key, value)
    monkeypatch.setitem(app.extensions, "paypal_tokens", {})
    monkeypatch.setattr(paypal_gateway, "RETRY_DELAYS", (0.01, 0.01))
    yield fake
    paypal_server.clear()


@pytest.fixture(autouse=True)
def flush_errors(app: Flask):
    """Errors captured while a test's transaction was open are written before the tables are emptied."""
    yield
    error_capture.flush_deferred()


# Test data and helpers shared by the PayPal tests.

def recorded_errors() -> list[ErrorEvent]:
    """What error capture recorded so far (on SQLite it waits for the session's transaction to end)."""
    error_capture.flush_deferred()
    return list(db.session.query(ErrorEvent).order_by(ErrorEvent.id))


def paypal_booking(reference: str = "MID-7KQ3X9", total: int = 425000, currency: str = "EUR",
                   status: str = "pending_payment", days_ahead: int = 10) -> Booking:
    """A booking in Monaco that the IPN fixtures (custom/invoice MID-7KQ3X9, 4250.00 EUR) are about."""
    code = "MCM" if currency == "EUR" else currency
    location = factories.location(code, name="Monaco Port Hercule", city="Monaco", country="MC",
                                  timezone="Europe/Monaco", currency=currency)
    item = factories.item(location, name="Riva Aquarama", category="yacht", daily_rate=total)
    booking = factories.booking(item, starts_at=utcnow() + timedelta(days=days_ahead), days=1, status=status)
    booking.reference, booking.total_amount = reference, total
    if status == "pending_payment":
        booking.hold_expires_at = utcnow() + timedelta(minutes=30)
    db.session.commit()
    return booking


def ipn_body(name: str, **changes: str) -> bytes:
    """A fixture message with some fields replaced in place (order and encoding of the rest untouched)."""
    body = (IPN_DIR / f"{name}.txt").read_bytes().strip()
    for key, value in changes.items():
        body, count = re.subn(rb"(^|&)" + key.encode() + rb"=[^&]*", rb"\g<1>" + key.encode() + b"=" + value.encode(),
                              body)
        assert count == 1, f"{key} is not in {name}.txt"
    return body


def run_jobs() -> None:
    """With Redis, run what is queued on a real worker (as production does); in-process it already ran."""
    if queue.redis_configured():
        run_worker(burst=True, with_scheduler=False)
    db.session.rollback()
