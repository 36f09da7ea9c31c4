"""The Stripe event log: verify, store before acknowledging, apply once, retry what cannot be placed yet.

`receive_stripe` verifies the signature and commits the event (unique on provider + event id) before
the view answers 2xx; a duplicate delivery is only acknowledged. `process_event` (the job) re-fetches
the current object from Stripe when the API is configured, hands it to `payment_events`, and records
the outcome. An event that cannot be placed yet (its payment is not recorded, Stripe unreachable) stays
`received`: attempt n+1 is due RETRY_AFTER[n] after the event arrived, and `retry_due_events` (a
periodic job) runs the due ones, including events whose first job was lost. After MAX_ATTEMPTS it is
`failed`, with its last error, on /webhooks/events. Types we do not handle are stored as `ignored`.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import stripe
from flask import current_app
from sqlalchemy import and_, or_, select

from midas.database import begin_write, insert_unless_present
from midas.extensions import db
from midas.integrations.stripe_gateway import ProviderError, stripe_configured, stripe_gateway
from midas.models import EventStatus, WebhookEvent, utcnow
from midas.services import DomainError, NotFound, payment_events
from midas.services.payment_events import UnknownObject, flag

MAX_BODY = 1024 * 1024
TOLERANCE = 300  # seconds: older signatures are refused (replays)
# Seconds after arrival when attempt n + 1 is due, n being the attempts made so far (n = 0: the job was lost).
RETRY_AFTER = (60, 300, 900, 3600, 3 * 3600, 6 * 3600, 12 * 3600, 24 * 3600)
MAX_ATTEMPTS = len(RETRY_AFTER)
SWEEP_BATCH = 200
STRIPE = "stripe"
# Event type → the kind of object it carries.
HANDLED = {
    "payment_intent.succeeded": "payment_intent", "payment_intent.payment_failed": "payment_intent",
    "payment_intent.processing": "payment_intent", "payment_intent.canceled": "payment_intent",
    "payment_intent.amount_capturable_updated": "payment_intent", "payment_intent.requires_action": "payment_intent",
    "charge.refunded": "charge", "refund.created": "refund", "refund.updated": "refund", "refund.failed": "refund",
    "charge.refund.updated": "refund",
    "charge.dispute.created": "dispute", "charge.dispute.updated": "dispute", "charge.dispute.closed": "dispute",
    "charge.dispute.funds_withdrawn": "dispute", "charge.dispute.funds_reinstated": "dispute",
}
REDACTED = "[redacted]"
log = logging.getLogger("midas.webhooks")


class Rejected(DomainError):
    """A delivery we refuse before storing anything: bad signature, stale, malformed."""

    status_code = 400


class TooLarge(Rejected):
    status_code = 413


class RetryLater(DomainError):
    """Nothing wrong with the event, but it cannot be applied now."""


@dataclass(frozen=True)
class Receipt:
    event_id: int  # our WebhookEvent.id
    duplicate: bool
    to_process: bool  # a new event of a handled type: the caller enqueues its job


# Receiving.

def check_size(length: int | None, source_ip: str | None) -> None:
    """Refuse a body over 1 MB before reading it."""
    try:
        _check_size(length)
    except Rejected as exc:
        _log_refusal(exc, source_ip)
        raise


def receive_stripe(body: bytes, signature: str | None, source_ip: str | None) -> Receipt:
    """Verify a delivery and store it (committed before the caller acknowledges); a duplicate is only noted."""
    try:
        _check_size(len(body))
        event = _parse(_verified_payload(body, signature))
    except Rejected as exc:
        _log_refusal(exc, source_ip)
        raise
    return _store(event, source_ip)


def _check_size(length: int | None) -> None:
    if length is not None and length > MAX_BODY:
        raise TooLarge(f"The body is {length} bytes; at most {MAX_BODY} are accepted.")


def _log_refusal(exc: Rejected, source_ip: str | None) -> None:
    flag("WEBHOOK", "MEDIUM", f"Stripe webhook refused: {exc}", provider=STRIPE, source_ip=source_ip,
         status=exc.status_code)


def _verified_payload(body: bytes, signature: str | None) -> str:
    secrets = current_app.config.get("STRIPE_WEBHOOK_SECRETS") or []
    if not secrets:
        raise Rejected("Stripe webhooks are not configured here (no signing secret).")
    if not signature:
        raise Rejected("The Stripe-Signature header is missing.")
    try:
        payload = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise Rejected("The body is not UTF-8 text.") from exc
    stale = False
    for secret in secrets:  # during a rotation, any configured secret may have signed it
        try:
            stripe.WebhookSignature.verify_header(payload, signature, secret, tolerance=TOLERANCE)
        except stripe.SignatureVerificationError as exc:
            stale = stale or "tolerance" in str(exc)
            continue
        _refuse_future(signature)
        return payload
    raise Rejected("The signature is older than 5 minutes." if stale else "The signature does not match.")


def _refuse_future(signature: str) -> None:
    # The SDK only bounds the past; a signature dated ahead (a skewed or forged clock) would stay
    # replayable for as long as it is early, so the window is bounded on both sides.
    stamps = [part[2:] for part in signature.split(",") if part.startswith("t=")]
    if not stamps or not stamps[0].isdigit() or int(stamps[0]) > time.time() + TOLERANCE:
        raise Rejected("The signature is dated in the future.")


def _parse(payload: str) -> dict:
    try:
        event = json.loads(payload)
    except ValueError as exc:
        raise Rejected("The body is not valid JSON.") from exc
    event = event if isinstance(event, dict) else {}
    data = event.get("data") if isinstance(event.get("data"), dict) else {}
    obj = data.get("object")
    if not (isinstance(event.get("id"), str) and isinstance(event.get("type"), str) and isinstance(obj, dict)):
        raise Rejected("The body is not a Stripe event (id, type and data.object are required).")
    if not isinstance(obj.get("id"), str) or not 0 < len(event["id"]) <= 255:
        raise Rejected("The event or its object has no usable id.")
    return event


def _store(event: dict, source_ip: str | None) -> Receipt:
    # Insert first: a new event (the common case) costs one statement, and a repeat, even two
    # deliveries racing, is recognised by the unique (provider, event_id) without a constraint error.
    handled = event["type"] in HANDLED
    event_pk = insert_unless_present(WebhookEvent, ("provider", "event_id"), {
        "provider": STRIPE, "event_id": event["id"], "type": event["type"][:80], "payload": _redacted(event),
        "status": EventStatus.RECEIVED.value if handled else EventStatus.IGNORED.value, "attempts": 0,
        "source_ip": (source_ip or "")[:45] or None, "occurred_at": _timestamp(event.get("created")),
        "received_at": utcnow(), "processed_at": None if handled else utcnow(),
    })
    if event_pk is None:  # stored by an earlier (or a concurrent) delivery
        event_pk = _existing(event["id"])
        db.session.rollback()
        return Receipt(event_pk, duplicate=True, to_process=False)
    db.session.commit()  # read nothing after it: on SQLite an open transaction holds the write lock
    return Receipt(event_pk, duplicate=False, to_process=handled)


def _existing(event_id: str) -> int | None:
    return db.session.scalar(select(WebhookEvent.id).where(
        WebhookEvent.provider == STRIPE, WebhookEvent.event_id == event_id))


def _redacted(event: dict) -> dict:
    """The event as stored: a PaymentIntent's client secret lets anyone confirm it, so it is never kept."""
    obj = event["data"]["object"]
    if "client_secret" in obj:
        event = {**event, "data": {**event["data"], "object": {**obj, "client_secret": REDACTED}}}
    return event


def _timestamp(value) -> datetime | None:
    return datetime.fromtimestamp(value, UTC) if isinstance(value, int) else None


# Processing.

def process_event(event_pk: int) -> str:
    """Apply one stored event (the job); safe to run twice. Returns the event's status afterwards."""
    claimed = _claim(event_pk)
    if claimed is None:
        return "skipped"
    try:
        booking_id = _apply(claimed)
    except (RetryLater, UnknownObject) as exc:
        return _finish(event_pk, error=str(exc), retry=True)
    except DomainError as exc:  # a mismatch, a paid booking whose slot is gone: staff must look
        return _finish(event_pk, error=str(exc), retry=False)
    except Exception as exc:
        db.session.rollback()
        log.exception("Stripe event %s failed", event_pk)
        return _finish(event_pk, error=f"{type(exc).__name__}: {exc}"[:2000], retry=True)
    return _finish(event_pk, booking_id=booking_id)


@dataclass(frozen=True)
class Claimed:
    event_id: str  # Stripe's
    kind: str
    obj: dict


def _claim(event_pk: int) -> Claimed | None:
    """Count the attempt (committed first, so a crash still counts it); None if the event is settled."""
    begin_write(db.session())
    event = db.session.get(WebhookEvent, event_pk, with_for_update=True)
    if event is None or event.status != EventStatus.RECEIVED.value:
        db.session.rollback()
        return None
    event.attempts += 1
    claimed = Claimed(event.event_id, HANDLED[event.type], event.payload["data"]["object"])
    db.session.commit()
    return claimed


def _apply(claimed: Claimed) -> int | None:
    obj = current_object(claimed.kind, claimed.obj)
    return APPLY[claimed.kind](obj, f"webhook:{claimed.event_id}")


def current_object(kind: str, obj: dict) -> dict:
    """Stripe's object as it is now when the API is configured (events arrive late and out of order)."""
    if not stripe_configured():
        return obj
    gateway = stripe_gateway()
    fetch: dict[str, Callable[[str], dict]] = {
        "payment_intent": gateway.retrieve_payment_intent, "dispute": gateway.retrieve_dispute,
        "charge": gateway.retrieve_charge, "refund": gateway.retrieve_refund,
    }
    try:
        current = fetch[kind](obj["id"])
        if kind == "dispute" and not current.get("payment_intent") and current.get("charge"):
            charge = gateway.retrieve_charge(_id(current["charge"]))
            current["payment_intent"] = charge.get("payment_intent")
        return current
    except ProviderError as exc:
        if exc.retryable:
            raise RetryLater(f"Stripe could not be reached to re-fetch {obj['id']}: {exc}") from exc
        raise


def _on_intent(obj: dict, source: str) -> int:
    payment = payment_events.apply_payment_intent(obj, source)
    if payment is None:
        raise UnknownObject(f"PaymentIntent {obj['id']} belongs to no payment or booking we know yet.")
    return payment.booking_id


def _on_dispute(obj: dict, source: str) -> int | None:
    dispute = payment_events.apply_dispute(obj, source)
    if dispute is None:
        raise UnknownObject(f"Dispute {obj['id']} is about a payment we do not know yet.")
    return dispute.booking_id


def _on_charge(obj: dict, source: str) -> int:
    payment = payment_events.apply_charge_refund(obj, source)
    if payment is None:
        raise UnknownObject(f"Charge {obj['id']} is for a payment we do not know yet.")
    return payment.booking_id


def _on_refund(obj: dict, source: str) -> int | None:
    refund = payment_events.apply_refund(obj, source)
    return refund.booking_id if refund else None


APPLY: dict[str, Callable[[dict, str], int | None]] = {
    "payment_intent": _on_intent, "dispute": _on_dispute, "charge": _on_charge, "refund": _on_refund,
}


def _finish(event_pk: int, booking_id: int | None = None, error: str | None = None, retry: bool = False) -> str:
    db.session.rollback()
    begin_write(db.session())
    event = db.session.get(WebhookEvent, event_pk, with_for_update=True)
    event.booking_id = booking_id or event.booking_id
    event.last_error = error
    if error is None or not retry or event.attempts >= MAX_ATTEMPTS:
        event.status = (EventStatus.PROCESSED if error is None else EventStatus.FAILED).value
        event.processed_at = utcnow()
    status, attempts, stripe_id = event.status, event.attempts, event.event_id
    db.session.commit()
    if status == EventStatus.FAILED.value:
        flag("WEBHOOK", "HIGH", f"Stripe event {stripe_id} failed after {attempts} attempt(s): {error}",
             provider=STRIPE, webhook_event_id=event_pk)
    return status


def _id(value: str | dict) -> str:
    return value["id"] if isinstance(value, dict) else value


# Retrying.

def retry_due_events(now: datetime | None = None, limit: int = SWEEP_BATCH) -> list[int]:
    """Run the received events whose next attempt is due (the periodic job); returns their ids."""
    now = now or utcnow()
    due = [and_(WebhookEvent.attempts == n, WebhookEvent.received_at <= now - timedelta(seconds=delay))
           for n, delay in enumerate(RETRY_AFTER)]
    due.append(and_(WebhookEvent.attempts >= MAX_ATTEMPTS,
                    WebhookEvent.received_at <= now - timedelta(seconds=RETRY_AFTER[-1])))
    ids = list(db.session.scalars(select(WebhookEvent.id).where(
        WebhookEvent.provider == STRIPE, WebhookEvent.status == EventStatus.RECEIVED.value, or_(*due),
    ).order_by(WebhookEvent.received_at, WebhookEvent.id).limit(limit)))
    db.session.rollback()
    for event_pk in ids:
        process_event(event_pk)
    return ids


def reopen_event(event_pk: int) -> None:
    """Give a failed Stripe event a fresh set of attempts (the dashboard's retry); the caller enqueues it."""
    begin_write(db.session())
    event = db.session.get(WebhookEvent, event_pk, with_for_update=True)
    if event is None or event.provider != STRIPE:
        db.session.rollback()
        raise NotFound("No such Stripe event.")
    if event.status == EventStatus.FAILED.value:
        event.status, event.attempts, event.processed_at = EventStatus.RECEIVED.value, 0, None
    db.session.commit()
