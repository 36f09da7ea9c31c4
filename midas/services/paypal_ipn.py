"""PayPal IPN: keep exactly what arrived, verify it with PayPal, apply each (txn_id, payment_status) once.

Storage: `raw_body` is the delivered bytes decoded as latin-1 — one character per byte, so
`raw_body.encode("latin-1")` gives back the very bytes PayPal must see again, whatever the `charset`;
`payload` holds the fields decoded in the message's own charset. `event_id` is
"<txn_id>:<payment_status>:<first 16 hex of the body's SHA-256>": a byte-identical resend hits the unique
(provider, event_id) and is stored once; another body with the same pair is stored as well and marked a
duplicate when processed. So a forged message that arrives first (and is rejected) can never shadow the
genuine one, and the Pending → Completed messages of one txn are two events, both applied.
"""

from __future__ import annotations

import codecs
import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qsl

from flask import current_app
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from midas.extensions import db
from midas.integrations import paypal_gateway
from midas.integrations.paypal_gateway import PayPalError
from midas.models import (
    Booking,
    Dispute,
    DisputeStatus,
    ErrorCategory,
    EventStatus,
    Payment,
    PaymentKind,
    PaymentStatus,
    Provider,
    Refund,
    RefundStatus,
    Severity,
    WebhookEvent,
    utcnow,
)
from midas.money import format_money
from midas.services import DomainError, notifications, refunds
from midas.services.error_capture import record_error
from midas.services.paypal_payments import (
    amount_due,
    can_move,
    confirm_if_paid,
    fail,
    in_write,
    locked_booking,
    succeed,
)

P = PaymentStatus
PAYPAL = Provider.PAYPAL.value
DONE = {EventStatus.PROCESSED.value, EventStatus.IGNORED.value}
# A rejected (INVALID) message is kept, marked ignored with the reason: the event log has no "rejected" state.
REJECTED = EventStatus.IGNORED.value
DEFAULT_CHARSET = "windows-1252"  # PayPal's own default when a message names none
PAYPAL_ZONES = {"PST": -8, "PDT": -7}


class MalformedIpn(DomainError):
    status_code = 400


class RetryLater(Exception):
    """PayPal could not be asked, or the message is about a transaction we do not know yet: try again later."""


class Unappliable(Exception):
    """A verified message that must not change our records (not our account, wrong amount): staff look at it."""


@dataclass(frozen=True)
class Ipn:
    fields: dict[str, str]

    def __getitem__(self, key: str) -> str:
        return (self.fields.get(key) or "").strip()

    @property
    def status(self) -> str:
        return self["payment_status"]

    @property
    def currency(self) -> str:
        return self["mc_currency"].upper()

    def amount(self) -> int:
        """mc_gross in minor units of mc_currency (negative for refunds and reversals); never a float."""
        if len(self.currency) != 3:
            raise Unappliable(f"mc_currency {self['mc_currency']!r} is not a currency code")
        try:
            return paypal_gateway.minor_units(self["mc_gross"], self.currency)
        except ValueError as exc:
            raise Unappliable(f"mc_gross {self['mc_gross']!r} is not an amount in {self.currency or '(none)'}") from exc

    def describe(self, amount: int | None = None) -> str:
        return f"{self['mc_gross'] if amount is None else amount} {self.currency}"


# Receiving: store first.

def parse(raw: bytes) -> dict[str, str]:
    """The form fields, decoded in the charset the message names."""
    text = raw.decode("latin-1")
    charset = dict(parse_qsl(text)).get("charset", "").strip() or DEFAULT_CHARSET
    try:
        codecs.lookup(charset)
    except LookupError:
        charset = DEFAULT_CHARSET
    return dict(parse_qsl(text, keep_blank_values=True, encoding=charset, errors="replace"))


def event_key(fields: dict[str, str], raw: bytes) -> str:
    pair = f"{fields.get('txn_id') or '-'}:{fields.get('payment_status') or fields.get('txn_type') or '-'}"
    return f"{pair[:200]}:{hashlib.sha256(raw).hexdigest()[:16]}"


def receive(raw: bytes, source_ip: str | None) -> tuple[int, bool]:
    """Store one IPN message exactly as delivered; returns its event id and whether it still needs processing."""
    if not raw.strip() or b"\x00" in raw or b"=" not in raw:
        raise MalformedIpn("An IPN message is a form-encoded body.")
    fields = parse(raw)
    status = fields.get("payment_status") or fields.get("txn_type") or "unknown"
    event = WebhookEvent(provider=PAYPAL, event_id=event_key(fields, raw), type=f"ipn.{status.lower()}"[:80],
                         payload=fields, raw_body=raw.decode("latin-1"), source_ip=source_ip,
                         occurred_at=payment_time(fields.get("payment_date", "")))
    db.session.add(event)
    try:
        db.session.flush()
        event_id = event.id
        db.session.commit()
        return event_id, True
    except IntegrityError:  # the very same message again: PayPal resending
        db.session.rollback()
        stored = db.session.scalar(select(WebhookEvent).where(WebhookEvent.provider == PAYPAL,
                                                              WebhookEvent.event_id == event.event_id))
        return stored.id, stored.status not in DONE


def payment_time(value: str) -> datetime | None:
    """PayPal's "10:22:51 Mar 03, 2026 PST" as aware UTC; None when it is missing or odd."""
    text, _, zone = value.strip().rpartition(" ")
    try:
        local = datetime.strptime(text, "%H:%M:%S %b %d, %Y")
    except ValueError:
        return None
    return (local - timedelta(hours=PAYPAL_ZONES.get(zone, 0))).replace(tzinfo=UTC)


# Processing: verify, then apply once.

def process(event_id: int) -> str:
    """Verify a stored message with PayPal and apply it; returns the event's final status (safe to run twice)."""
    event = db.session.get(WebhookEvent, event_id)
    if event is None or event.status in DONE:
        return event.status if event else "missing"
    event.attempts += 1
    raw = event.raw_body.encode("latin-1")
    db.session.commit()  # no transaction stays open while PayPal is asked
    try:
        verdict = paypal_gateway.from_app().verify_ipn(raw)
    except PayPalError as exc:
        _finish(event_id, EventStatus.FAILED, f"verification failed: {exc}")
        raise RetryLater(str(exc)) from exc
    if verdict != "VERIFIED":
        return _reject(event_id)
    return _apply(event_id)


def _reject(event_id: int) -> str:
    event = _finish(event_id, REJECTED, "rejected: PayPal answered INVALID (not a genuine PayPal message)")
    record_error(ErrorCategory.WEBHOOK, Severity.HIGH, f"PayPal IPN {event.event_id} rejected: INVALID",
                 error_type="IpnRejected", context={"source_ip": event.source_ip, "event": event.id})
    return event.status


def _finish(event_id: int, status: EventStatus | str, error: str | None = None,
            booking_id: int | None = None) -> WebhookEvent:
    def change() -> WebhookEvent:
        event = db.session.get(WebhookEvent, event_id)
        event.status, event.last_error = str(status), error
        event.booking_id = booking_id or event.booking_id
        event.processed_at = utcnow() if str(status) in DONE else event.processed_at
        return event

    return in_write(change)


def _apply(event_id: int) -> str:
    msg = Ipn(db.session.get(WebhookEvent, event_id).payload)
    if msg.status not in HANDLERS:
        return _finish(event_id, EventStatus.IGNORED, f"payment_status {msg.status or '(none)'} is not handled").status
    booking_id = _booking_id(msg)
    try:
        _check_receiver(msg)
        if booking_id is None:
            raise Unappliable(f"no booking matches custom {msg['custom']!r} or invoice {msg['invoice']!r}")
        received = in_write(lambda: _apply_locked(event_id, booking_id, msg))
    except Unappliable as exc:
        return _unappliable(event_id, booking_id, msg, str(exc))
    except RetryLater as exc:
        _finish(event_id, EventStatus.FAILED, str(exc), booking_id)
        raise
    if received:
        confirm_if_paid(booking_id, "paid by PayPal")
    return db.session.get(WebhookEvent, event_id).status


def _apply_locked(event_id: int, booking_id: int, msg: Ipn) -> bool:
    """Apply the message under the booking's lock; True when it is the news that money arrived."""
    booking = locked_booking(booking_id)
    event = db.session.get(WebhookEvent, event_id)
    event.booking_id, event.processed_at = booking.id, utcnow()
    twin = _earlier_twin(event, msg)
    if twin is not None:
        event.status, event.last_error = EventStatus.IGNORED.value, f"duplicate of event {twin}"
        return False
    received = HANDLERS[msg.status](booking, msg)
    event.status, event.last_error = EventStatus.PROCESSED.value, None
    return bool(received)


def _unappliable(event_id: int, booking_id: int | None, msg: Ipn, reason: str) -> str:
    event = _finish(event_id, EventStatus.FAILED, reason, booking_id)
    record_error(ErrorCategory.PAYMENT, Severity.HIGH, f"PayPal IPN {msg['txn_id'] or event.event_id} not applied: "
                 f"{reason}", error_type="IpnNotApplied", booking_id=booking_id, currency=msg.currency[:3] or None,
                 context={"event": event.id, "payment_status": msg.status})
    return event.status


def _check_receiver(msg: Ipn) -> None:
    ours = (current_app.config.get("PAYPAL_RECEIVER_EMAIL") or "").strip().lower()
    if not ours:
        raise Unappliable("PAYPAL_RECEIVER_EMAIL is not set, so no message can be checked as ours")
    if msg["receiver_email"].lower() != ours:
        raise Unappliable(f"receiver_email {msg['receiver_email']!r} is not our PayPal account")


def _booking_id(msg: Ipn) -> int | None:
    for reference in (msg["custom"], msg["invoice"]):
        if reference:
            found = db.session.scalar(select(Booking.id).where(Booking.reference == reference.upper()[:16]))
            if found is not None:
                return found
    parent = _payment(msg["parent_txn_id"]) if msg["parent_txn_id"] else None
    return parent.booking_id if parent else None


def _earlier_twin(event: WebhookEvent, msg: Ipn) -> int | None:
    """An earlier applied message with the same (txn_id, payment_status): this one is a duplicate."""
    if not msg["txn_id"]:
        return None
    prefix = f"{msg['txn_id']}:{msg.status}:"
    return db.session.scalar(select(WebhookEvent.id).where(
        WebhookEvent.provider == PAYPAL, WebhookEvent.id != event.id,
        WebhookEvent.status == EventStatus.PROCESSED.value,
        WebhookEvent.event_id.startswith(prefix, autoescape=True)).limit(1))


def _payment(txn_id: str) -> Payment | None:
    return db.session.scalar(select(Payment).where(Payment.provider == PAYPAL, Payment.provider_ref == txn_id))


# One handler per payment_status, inside the booking's lock.

def _completed(booking: Booking, msg: Ipn) -> bool:
    payment = _known_or_new(booking, msg, P.SUCCEEDED)
    if not can_move(payment, P.SUCCEEDED):
        return False
    succeed(payment)
    return True


def _pending(booking: Booking, msg: Ipn) -> None:
    payment = _known_or_new(booking, msg, P.PROCESSING)
    if can_move(payment, P.PROCESSING):
        payment.status = P.PROCESSING.value
        payment.failure_message = f"Pending at PayPal: {msg['pending_reason']}" if msg["pending_reason"] else None


def _known_or_new(booking: Booking, msg: Ipn, target: PaymentStatus) -> Payment:
    """The payment this txn_id already is, or a new one; either way the amount must be what is owed."""
    payment = _payment(msg["txn_id"])
    if payment is not None and payment.booking_id != booking.id:
        raise Unappliable(f"txn {msg['txn_id']} belongs to another booking")
    expected = payment.amount if payment else amount_due(booking)
    currency = payment.currency if payment else booking.currency
    if msg.currency != currency or msg.amount() != expected:
        raise Unappliable(f"PayPal reported {msg.describe()}, expected {format_money(expected, currency)}")
    if payment is None:
        payment = Payment(booking=booking, provider=PAYPAL, kind=PaymentKind.CHARGE.value, status=P.PENDING.value,
                          amount=expected, currency=currency, provider_ref=msg["txn_id"], method="paypal",
                          idempotency_key=f"paypal-txn:{msg['txn_id']}")
        db.session.add(payment)
    return payment


def _failed(booking: Booking, msg: Ipn) -> None:
    payment = _payment(msg["txn_id"])
    if payment is None:
        amount = abs(msg.amount())
        if amount == 0:
            return
        payment = Payment(booking=booking, provider=PAYPAL, kind=PaymentKind.CHARGE.value, status=P.PENDING.value,
                          amount=amount, currency=msg.currency, provider_ref=msg["txn_id"], method="paypal",
                          idempotency_key=f"paypal-txn:{msg['txn_id']}")
        db.session.add(payment)
    if can_move(payment, P.FAILED):
        fail(payment, msg.status.lower(), f"PayPal reported the payment {msg.status.lower()}.")
        record_error(ErrorCategory.PAYMENT, Severity.MEDIUM, f"PayPal payment {msg['txn_id']} {msg.status.lower()}",
                     error_type="PayPalPaymentFailed", booking_id=booking.id, amount=payment.amount,
                     currency=payment.currency, context={"provider": "paypal", "code": msg.status.lower()})


def _parent(msg: Ipn) -> Payment:
    parent = _payment(msg["parent_txn_id"]) if msg["parent_txn_id"] else None
    if parent is None:
        raise RetryLater(f"parent transaction {msg['parent_txn_id'] or '(none)'} is not known yet")
    if msg.currency != parent.currency or msg.amount() >= 0:
        raise Unappliable(f"{msg.status} of {msg.describe()} does not fit payment {parent.id} in {parent.currency}")
    return parent


def _refunded(booking: Booking, msg: Ipn) -> None:
    parent = _parent(msg)
    refund = db.session.scalar(select(Refund).where(Refund.provider_ref == msg["txn_id"]))
    if refund is None:  # refunded in PayPal's own dashboard: we learn of it here
        refund = Refund(payment=parent, booking=booking, amount=-msg.amount(), currency=parent.currency,
                        status=RefundStatus.PROCESSING.value, provider_ref=msg["txn_id"],
                        reason=f"Refunded at PayPal ({msg['reason_code'] or 'refund'})",
                        idempotency_key=f"paypal-refund:{msg['txn_id']}")
        db.session.add(refund)
        db.session.flush()
    refunds.move_forward(refund, RefundStatus.SUCCEEDED, "paypal")  # the payment follows; a replay does nothing


def _reversed(booking: Booking, msg: Ipn) -> None:
    parent = _parent(msg)
    if db.session.scalar(select(Dispute.id).where(Dispute.provider == PAYPAL, Dispute.provider_ref == msg["txn_id"])):
        return
    dispute = Dispute(payment=parent, booking=booking, provider=PAYPAL, provider_ref=msg["txn_id"],
                      amount=-msg.amount(), currency=parent.currency, reason=(msg["reason_code"] or "chargeback")[:80],
                      status=DisputeStatus.NEEDS_RESPONSE.value)
    db.session.add(dispute)
    db.session.flush()
    notifications.dispute_opened(dispute)
    record_error(ErrorCategory.PAYMENT, Severity.HIGH, f"PayPal reversed {msg.describe()} on booking "
                 f"{booking.reference}: {dispute.reason}", error_type="PayPalReversal", booking_id=booking.id,
                 payment_id=parent.id, amount=dispute.amount, currency=dispute.currency)


def _canceled_reversal(booking: Booking, msg: Ipn) -> None:
    parent = _payment(msg["parent_txn_id"]) if msg["parent_txn_id"] else None
    dispute = parent and db.session.scalar(select(Dispute).where(
        Dispute.provider == PAYPAL, Dispute.payment_id == parent.id).order_by(Dispute.id.desc()).limit(1))
    if dispute is None:
        raise RetryLater(f"no reversal of {msg['parent_txn_id'] or '(no parent)'} is known yet")
    dispute.status = DisputeStatus.WON.value


HANDLERS = {
    "Completed": _completed, "Pending": _pending, "Denied": _failed, "Failed": _failed,
    "Refunded": _refunded, "Reversed": _reversed, "Canceled_Reversal": _canceled_reversal,
}
