"""Stripe behind a small interface: built lazily from app.config, short timeouts, our own idempotency keys.

The SDK's defaults do not suit a web request behind a 30-second router: an 80-second timeout and
random per-call idempotency keys that a crash or a job retry would lose. Here every call has a short
timeout, network errors and 5xx answers are retried twice by the SDK with the *same* key, and every
money-moving call takes a key the caller derived from our records and stored with them. Objects come
back as plain dicts, so the services that apply them never depend on SDK types.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import stripe
from flask import current_app

from midas.services import DomainError
from midas.services.error_capture import record_error

# Connect, read. Three tries (two retries plus their short sleeps) stay well inside the 30 s router limit.
TIMEOUT = (2.0, 6.0)
MAX_NETWORK_RETRIES = 2
PAGE_SIZE = 100
EXTENSION_KEY = "midas_stripe_gateway"
UNREACHABLE = "The card payment service could not be reached. Please try again in a moment."
log = logging.getLogger("midas.payments.stripe")


class StripeUnavailable(DomainError):
    """Card payments are switched off (no secret key configured)."""

    status_code = 503


class ProviderError(DomainError):
    """Stripe refused or could not be reached; `code` is Stripe's own (card_declined, resource_missing …)."""

    status_code = 502

    def __init__(self, message: str, code: str | None = None, decline_code: str | None = None,
                 http_status: int | None = None, retryable: bool = False) -> None:
        super().__init__(message)
        self.code, self.decline_code, self.http_status, self.retryable = code, decline_code, http_status, retryable


@dataclass(frozen=True)
class ListPage:
    """One page of a Stripe list: its objects, and whether another page follows."""

    items: list[dict]
    has_more: bool

    @property
    def last_id(self) -> str | None:
        return self.items[-1]["id"] if self.items else None


class StripeGateway:
    """The Stripe calls Midas makes; every method returns plain dicts or raises ProviderError."""

    def __init__(self, client: stripe.StripeClient) -> None:
        self._client = client

    def create_payment_intent(self, *, amount: int, currency: str, idempotency_key: str, metadata: dict[str, str],
                              manual_capture: bool = False, description: str | None = None) -> dict:
        """A card PaymentIntent; `manual_capture` makes it an authorisation hold (security deposit)."""
        params: dict[str, Any] = {"amount": amount, "currency": currency.lower(), "metadata": metadata,
                                  "payment_method_types": ["card"]}
        if description:
            params["description"] = description
        if manual_capture:
            params["capture_method"] = "manual"
            # Long rentals outlive a standard 7-day hold; cards that support it keep theirs for up to 30 days.
            params["payment_method_options"] = {"card": {"request_extended_authorization": "if_available"}}
        return self._call("create_payment_intent", self._client.v1.payment_intents.create, params,
                          {"idempotency_key": idempotency_key})

    def retrieve_payment_intent(self, intent_id: str) -> dict:
        return self._call("retrieve_payment_intent", self._client.v1.payment_intents.retrieve, intent_id)

    def capture_payment_intent(self, intent_id: str, amount: int, idempotency_key: str) -> dict:
        """Capture part (or all) of a hold; the rest of it is released by Stripe."""
        return self._call("capture_payment_intent", self._client.v1.payment_intents.capture, intent_id,
                          {"amount_to_capture": amount}, {"idempotency_key": idempotency_key})

    def cancel_payment_intent(self, intent_id: str, idempotency_key: str) -> dict:
        """Cancel an intent; for a hold, this releases it."""
        return self._call("cancel_payment_intent", self._client.v1.payment_intents.cancel, intent_id,
                          {"cancellation_reason": "requested_by_customer"}, {"idempotency_key": idempotency_key})

    def create_refund(self, *, payment_intent: str, amount: int, idempotency_key: str,
                      metadata: dict[str, str]) -> dict:
        """Refund part or all of a captured PaymentIntent; the key is the refund row's own."""
        params = {"payment_intent": payment_intent, "amount": amount, "metadata": metadata}
        return self._call("create_refund", self._client.v1.refunds.create, params,
                          {"idempotency_key": idempotency_key})

    def retrieve_charge(self, charge_id: str) -> dict:
        return self._call("retrieve_charge", self._client.v1.charges.retrieve, charge_id)

    def retrieve_refund(self, refund_id: str) -> dict:
        return self._call("retrieve_refund", self._client.v1.refunds.retrieve, refund_id)

    def retrieve_dispute(self, dispute_id: str) -> dict:
        return self._call("retrieve_dispute", self._client.v1.disputes.retrieve, dispute_id)

    def list_payment_intents(self, since: datetime | None = None, until: datetime | None = None,
                             starting_after: str | None = None, limit: int = PAGE_SIZE) -> ListPage:
        """One page of PaymentIntents created in [since, until), newest first, after `starting_after`."""
        params = _list_params(since, until, starting_after, limit)
        return self._page("list_payment_intents", self._client.v1.payment_intents.list, params)

    def list_refunds(self, since: datetime | None = None, until: datetime | None = None,
                     starting_after: str | None = None, limit: int = PAGE_SIZE) -> ListPage:
        """One page of Refunds created in [since, until), newest first, after `starting_after`."""
        params = _list_params(since, until, starting_after, limit)
        return self._page("list_refunds", self._client.v1.refunds.list, params)

    def iter_payment_intents(self, since: datetime | None = None, until: datetime | None = None) -> Iterator[dict]:
        """Every PaymentIntent of the period, paging through `has_more` (for reconciliation)."""
        return _every(lambda after: self.list_payment_intents(since, until, after))

    def iter_refunds(self, since: datetime | None = None, until: datetime | None = None) -> Iterator[dict]:
        """Every Refund of the period, paging through `has_more` (for reconciliation)."""
        return _every(lambda after: self.list_refunds(since, until, after))

    def _page(self, operation: str, method: Callable, params: dict) -> ListPage:
        listed = self._call(operation, method, params)
        return ListPage(items=listed.get("data") or [], has_more=bool(listed.get("has_more")))

    def _call(self, operation: str, method: Callable, *args: Any) -> dict:
        try:
            return method(*args).to_dict()
        except stripe.StripeError as exc:
            raise _provider_error(operation, exc) from exc


def stripe_configured() -> bool:
    """True when the Stripe API can be called (a secret key is set)."""
    return bool(current_app.config.get("STRIPE_SECRET_KEY"))


def card_payments_enabled() -> bool:
    """True when customers can pay by card: both the secret and the publishable key are set."""
    return stripe_configured() and bool(current_app.config.get("STRIPE_PUBLISHABLE_KEY"))


def stripe_gateway() -> StripeGateway:
    """The app's gateway, built on first use from its config (rebuilt if the config or process changes)."""
    config = current_app.config
    if not config.get("STRIPE_SECRET_KEY"):
        raise StripeUnavailable("Card payments are not available at the moment. Your concierge will be glad to help.")
    fingerprint = (os.getpid(), config["STRIPE_SECRET_KEY"], config.get("STRIPE_API_BASE"),
                   config.get("STRIPE_TIMEOUT_SECONDS"))
    cached = current_app.extensions.get(EXTENSION_KEY)
    if cached is None or cached[0] != fingerprint:
        cached = (fingerprint, StripeGateway(_client(config)))
        current_app.extensions[EXTENSION_KEY] = cached
    return cached[1]


def _client(config) -> stripe.StripeClient:
    timeout = config.get("STRIPE_TIMEOUT_SECONDS") or TIMEOUT
    return stripe.StripeClient(
        config["STRIPE_SECRET_KEY"],
        base_addresses={"api": config.get("STRIPE_API_BASE") or stripe.DEFAULT_API_BASE},
        http_client=stripe.RequestsClient(timeout=timeout),
        max_network_retries=MAX_NETWORK_RETRIES,
    )


def _list_params(since: datetime | None, until: datetime | None, starting_after: str | None, limit: int) -> dict:
    params: dict[str, Any] = {"limit": limit}
    created = {key: int(moment.timestamp()) for key, moment in (("gte", since), ("lt", until)) if moment}
    if created:
        params["created"] = created
    if starting_after:
        params["starting_after"] = starting_after
    return params


def _every(fetch: Callable[[str | None], ListPage]) -> Iterator[dict]:
    after = None
    while True:
        page = fetch(after)
        yield from page.items
        if not page.has_more or page.last_id is None:
            return
        after = page.last_id


def _provider_error(operation: str, exc: stripe.StripeError) -> ProviderError:
    """Log the failure as a PAYMENT error with Stripe's code (never card data), and translate it."""
    error = getattr(exc, "error", None)
    decline_code = getattr(error, "decline_code", None) if error else None
    retryable = isinstance(exc, stripe.APIConnectionError | stripe.RateLimitError) or (exc.http_status or 0) >= 500
    fields = {"category": "PAYMENT", "provider": "stripe", "operation": operation, "code": exc.code,
              "decline_code": decline_code, "http_status": exc.http_status, "request_id": exc.request_id,
              "retryable": retryable}
    log.warning("Stripe %s failed: %s", operation, exc.user_message or type(exc).__name__, extra={"fields": fields})
    # An outage or a declined card is expected now and then; a request Stripe calls invalid is our bug.
    severity = "MEDIUM" if retryable or isinstance(exc, stripe.CardError) else "HIGH"
    record_error("PAYMENT", severity, f"Stripe {operation} failed: {exc.code or type(exc).__name__}", context=fields)
    message = exc.user_message if exc.user_message and not retryable else UNREACHABLE
    return ProviderError(message, code=exc.code, decline_code=decline_code, http_status=exc.http_status,
                         retryable=retryable)
