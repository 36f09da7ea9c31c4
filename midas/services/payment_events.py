"""The single code path that applies a Stripe object to our records.

Webhook jobs, the checkout, staff deposit actions and reconciliation all hand Stripe's current
object (a dict) to these functions. Each owns its transaction, locks the Payment row first (so
concurrent events about one payment apply one after the other), never moves a state backwards, and
is safe to call any number of times with the same object.

Payment states only move up this order (RANK); `processing` and `failed` share a rung because a
card can be declined after processing and the customer can retry after a decline. Succeeded,
canceled and released are final; a deposit hold moves from authorized to succeeded (captured) or
released.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from sqlalchemy import func, select

from midas.database import begin_write
from midas.extensions import db
from midas.models import (
    Booking,
    BookingStatus,
    Dispute,
    DisputeStatus,
    Payment,
    PaymentKind,
    PaymentStatus,
    Provider,
    Refund,
    RefundStatus,
    utcnow,
)
from midas.services import DomainError, audit, booking_states, notifications
from midas.services.availability import BookingConflict
from midas.services.error_capture import record_error

log = logging.getLogger("midas.payments")
P, D, R = PaymentStatus, DisputeStatus, RefundStatus
STRIPE = Provider.STRIPE.value
CHARGE_KINDS = (PaymentKind.CHARGE.value, PaymentKind.LATE_FEE.value)
CONFIRMABLE = (BookingStatus.QUOTE.value, BookingStatus.PENDING_PAYMENT.value)

RANK = {P.PENDING: 0, P.REQUIRES_ACTION: 1, P.PROCESSING: 2, P.FAILED: 2, P.AUTHORIZED: 3,
        P.SUCCEEDED: 4, P.CANCELED: 4, P.RELEASED: 5, P.PARTIALLY_REFUNDED: 5, P.REFUNDED: 5}
# Once paid, a payment's state follows its refunds (services.refunds.settle), never Stripe's intent.
FINAL = frozenset({P.SUCCEEDED, P.CANCELED, P.RELEASED, P.PARTIALLY_REFUNDED, P.REFUNDED})
INTENT_STATUS = {
    "requires_payment_method": P.PENDING, "requires_confirmation": P.PENDING, "requires_action": P.REQUIRES_ACTION,
    "processing": P.PROCESSING, "requires_capture": P.AUTHORIZED, "succeeded": P.SUCCEEDED, "canceled": P.CANCELED,
}
# An inquiry (warning_*) may close or escalate to a chargeback; a chargeback ends won, lost or prevented.
DISPUTE_RANK = {D.WARNING_NEEDS_RESPONSE: 0, D.WARNING_UNDER_REVIEW: 1, D.WARNING_CLOSED: 2, D.NEEDS_RESPONSE: 3,
                D.UNDER_REVIEW: 4, D.WON: 5, D.LOST: 5, D.PREVENTED: 5}
REFUND_STATUS = {"pending": R.PROCESSING, "requires_action": R.PROCESSING, "succeeded": R.SUCCEEDED,
                 "failed": R.FAILED, "canceled": R.CANCELED}
# A refund can still fail after it succeeded (a closed card account); nothing comes after failed or canceled.
REFUND_RANK = {R.PENDING_APPROVAL: 0, R.APPROVED: 1, R.PROCESSING: 2, R.SUCCEEDED: 3, R.FAILED: 4, R.CANCELED: 4,
               R.REJECTED: 4}


class UnknownObject(DomainError):
    """Stripe told us about something we cannot place yet (its payment is not recorded): try again later."""

    status_code = 404


class PaymentMismatch(DomainError):
    """Stripe's amount, currency or booking differs from ours: flagged, and the booking is not confirmed."""

    status_code = 409


class PaidButNotConfirmed(DomainError):
    """The money arrived but the booking cannot be confirmed (its slot went to someone else)."""

    status_code = 409


# Payments.

def can_move(current: str, target: str) -> bool:
    """May a payment go from `current` to `target`? Never backwards, never out of a final state."""
    now, new = P(current), P(target)
    if now == new or now in FINAL:
        return False
    if new == P.RELEASED:
        return now == P.AUTHORIZED
    return RANK[new] > RANK[now] or {now, new} == {P.PROCESSING, P.FAILED}


def status_for_intent(payment: Payment, intent: dict) -> PaymentStatus:
    """Our status for a PaymentIntent: a declined attempt is `failed`, a cancelled hold is `released`."""
    status = intent.get("status")
    if status == "requires_payment_method" and intent.get("last_payment_error"):
        return P.FAILED
    if status == "canceled" and payment.kind == PaymentKind.DEPOSIT.value and payment.status == P.AUTHORIZED:
        return P.RELEASED
    return INTENT_STATUS.get(status, P(payment.status))


def apply_payment_intent(intent: dict, source: str) -> Payment | None:
    """Bring our Payment in line with Stripe's PaymentIntent; confirm its booking once paid in full.

    Returns None when the intent belongs to nothing we know (the caller retries later). Raises
    PaymentMismatch or PaidButNotConfirmed (after recording the payment) when the booking must not be
    confirmed silently.
    """
    begin_write(db.session())
    try:
        payment = _payment_for_intent(intent)
        if payment is None:
            db.session.rollback()
            return None
        moved = _update_payment(payment, intent, source)
        problem = _mismatch(payment, intent)
        db.session.commit()
    except BaseException:
        db.session.rollback()
        raise
    if moved and payment.status == P.FAILED:
        flag("PAYMENT", "MEDIUM", f"Card payment declined ({payment.failure_code}): {payment.failure_message}",
             booking_id=payment.booking_id, payment_id=payment.id, amount=payment.amount, currency=payment.currency,
             provider_code=payment.failure_code, source=source)
    if problem:
        _refuse(payment, problem, source)
    if payment.status in P.paid() and payment.kind in CHARGE_KINDS:
        _confirm_booking(payment, source)
    return payment


def amount_paid(booking_id: int) -> int:
    """What the customer has paid towards the booking total (succeeded charges and late fees)."""
    paid = db.session.scalar(select(func.coalesce(func.sum(Payment.amount), 0)).join(Payment.booking).where(
        Payment.booking_id == booking_id, Payment.kind.in_(CHARGE_KINDS), Payment.status.in_(P.paid()),
        Payment.currency == Booking.currency))
    return int(paid)  # PostgreSQL sums a bigint as numeric


def _payment_for_intent(intent: dict) -> Payment | None:
    payment = db.session.scalar(select(Payment).where(
        Payment.provider == STRIPE, Payment.provider_ref == intent["id"]).with_for_update())
    return payment or _payment_from_metadata(intent)


def _payment_from_metadata(intent: dict) -> Payment | None:
    """Our row when a crash lost its provider_ref, or a new row for an intent made outside Midas for a booking."""
    metadata = intent.get("metadata") or {}
    payment_id = str(metadata.get("payment_id") or "")
    if payment_id.isdigit():
        payment = db.session.get(Payment, int(payment_id), with_for_update=True)
        if payment is not None and payment.provider == STRIPE and payment.provider_ref in (None, intent["id"]):
            return payment
    booking = db.session.scalar(select(Booking).where(Booking.reference == str(metadata.get("booking_reference"))))
    if booking is None:
        return None
    return _adopt(booking, intent)


def _adopt(booking: Booking, intent: dict) -> Payment:
    manual = intent.get("capture_method") == "manual"
    payment = Payment(
        booking=booking, provider=STRIPE, provider_ref=intent["id"], idempotency_key=f"stripe:{intent['id']}",
        kind=PaymentKind.DEPOSIT.value if manual else PaymentKind.CHARGE.value, status=P.PENDING.value,
        amount=int(intent.get("amount") or 0), currency=str(intent.get("currency") or "").upper(),
        amount_captured=0, amount_refunded=0, method="card",
    )
    db.session.add(payment)
    db.session.flush()
    audit.record("payment.recorded", "payment", payment.id, actor_label="stripe",
                 after={"provider_ref": intent["id"], "amount": payment.amount, "currency": payment.currency})
    return payment


def _update_payment(payment: Payment, intent: dict, source: str) -> bool:
    before, target = payment.status, status_for_intent(payment, intent)
    payment.provider_ref = payment.provider_ref or intent["id"]
    payment.method = _card_brand(intent) or payment.method or "card"
    received = int(intent.get("amount_received") or 0)
    if received > payment.amount_captured:
        payment.amount_captured = min(received, payment.amount)
    if not can_move(before, target):
        return False
    payment.status = target.value
    if target == P.FAILED:
        payment.failure_code, payment.failure_message = _failure(intent)
    if target == P.SUCCEEDED:
        payment.succeeded_at = payment.succeeded_at or utcnow()
        _refunds().settle(payment)  # a charge.refunded that came first now shows in the state
    audit.record(f"payment.{target.value}", "payment", payment.id, actor_label="stripe",
                 before={"status": before}, after={"status": target.value, "source": source})
    _notify(payment, target)
    return True


def _notify(payment: Payment, status: PaymentStatus) -> None:
    if payment.kind not in CHARGE_KINDS:
        return
    if status == P.SUCCEEDED:
        notifications.payment_received(payment)
    elif status == P.FAILED:
        notifications.payment_failed(payment)


def _failure(intent: dict) -> tuple[str | None, str | None]:
    error = intent.get("last_payment_error") or {}
    code = error.get("decline_code") or error.get("code")
    return (str(code)[:80] if code else None), error.get("message")


def _card_brand(intent: dict) -> str | None:
    charge = intent.get("latest_charge")
    details = (charge.get("payment_method_details") or {}) if isinstance(charge, dict) else {}
    return ((details.get("card") or {}).get("brand") or None) if details else None


def _mismatch(payment: Payment, intent: dict) -> str | None:
    booking = payment.booking
    amount, currency = int(intent.get("amount") or 0), str(intent.get("currency") or "").upper()
    reference = (intent.get("metadata") or {}).get("booking_reference")
    if amount != payment.amount:
        return f"Stripe's amount {amount} differs from the {payment.amount} recorded for payment {payment.id}"
    if currency != payment.currency or payment.currency != booking.currency:
        return f"Stripe's currency {currency} differs from booking {booking.reference}'s {booking.currency}"
    if reference and reference != booking.reference:
        return f"Stripe's intent names booking {reference}, but payment {payment.id} belongs to {booking.reference}"
    return None


def _confirm_booking(payment: Payment, source: str) -> None:
    booking = payment.booking
    if booking.status not in CONFIRMABLE:
        return
    paid = amount_paid(booking.id)
    if paid < booking.total_amount:
        _refuse(payment, f"Booking {booking.reference} is paid {paid} of {booking.total_amount} "
                         f"{booking.currency}; not confirmed", source)
    try:
        booking_states.confirm(None, booking.reference, "paid by card")
    except BookingConflict as exc:
        message = f"Booking {booking.reference} is paid but its slot is taken: refund or rebook. {exc}"
        flag("PAYMENT", "HIGH", message, booking_id=booking.id, payment_id=payment.id, source=source)
        raise PaidButNotConfirmed(message) from exc
    except booking_states.IllegalTransition:
        db.session.refresh(booking)  # a concurrent event confirmed it first
        if booking.status in CONFIRMABLE:
            raise


def _refuse(payment: Payment, problem: str, source: str) -> None:
    flag("PAYMENT", "HIGH", problem, booking_id=payment.booking_id, payment_id=payment.id,
         amount=payment.amount, currency=payment.currency, source=source)
    raise PaymentMismatch(problem)


# Disputes.

def apply_dispute(dispute: dict, source: str) -> Dispute | None:
    """Record or update a Stripe dispute on its payment; admins are alerted when it first appears.

    Returns None when the disputed payment is not known yet (the caller retries later).
    """
    begin_write(db.session())
    try:
        payment = _payment_by_intent(dispute.get("payment_intent"))
        if payment is None:
            db.session.rollback()
            return None
        row = _dispute_row(payment, dispute, source)
        db.session.commit()
        return row
    except BaseException:
        db.session.rollback()
        raise


def _dispute_row(payment: Payment, dispute: dict, source: str) -> Dispute:
    row = db.session.scalar(select(Dispute).where(Dispute.provider == STRIPE, Dispute.provider_ref == dispute["id"]))
    status = _dispute_status(dispute.get("status"))
    if row is None:
        row = Dispute(provider=STRIPE, provider_ref=dispute["id"], payment=payment, booking=payment.booking,
                      status=status.value)
        db.session.add(row)
        _copy_dispute(row, dispute)
        db.session.flush()
        audit.record("dispute.opened", "dispute", row.id, actor_label="stripe",
                     after={"status": row.status, "amount": row.amount, "reason": row.reason, "source": source})
        notifications.dispute_opened(row)
        return row
    if DISPUTE_RANK[status] > DISPUTE_RANK[DisputeStatus(row.status)]:
        audit.record(f"dispute.{status.value}", "dispute", row.id, actor_label="stripe",
                     before={"status": row.status}, after={"status": status.value, "source": source})
        row.status = status.value
        _copy_dispute(row, dispute)
    return row


def _dispute_status(value: str | None) -> DisputeStatus:
    return DisputeStatus(value) if value in DisputeStatus.values() else DisputeStatus.NEEDS_RESPONSE


def _copy_dispute(row: Dispute, dispute: dict) -> None:
    row.amount = max(int(dispute.get("amount") or 0), 0)
    row.currency = str(dispute.get("currency") or row.payment.currency).upper()
    row.reason = str(dispute.get("reason") or "general")[:80]
    due_by = (dispute.get("evidence_details") or {}).get("due_by")
    row.evidence_due_by = datetime.fromtimestamp(int(due_by), UTC) if due_by else row.evidence_due_by


# Refunds (refunds proper belong to the refunds service; here Stripe's word on them is recorded).

def apply_charge_refund(charge: dict, source: str) -> Payment | None:
    """Record how much of a charge Stripe has refunded (charge.refunded): what our refunds do not explain
    becomes a refund row made in Stripe's dashboard; a stale event never lowers the amount.

    Returns None when the charge's payment is not known yet (the caller retries later).
    """
    begin_write(db.session())
    try:
        payment = _payment_by_intent(charge.get("payment_intent"))
        if payment is None:
            db.session.rollback()
            return None
        if charge.get("captured", True):  # a refunded charge was captured, whatever order the events came in
            captured = int(charge.get("amount_captured") or charge.get("amount") or 0)
            payment.amount_captured = max(payment.amount_captured, min(captured, payment.amount))
        _refunds().record_external(payment, int(charge.get("amount_refunded") or 0), STRIPE, source)
        db.session.commit()
        return payment
    except BaseException:
        db.session.rollback()
        raise


def apply_refund(refund: dict, source: str) -> Refund | None:
    """Move our Refund row (if the refunds service made one) to Stripe's status, forwards only.

    Raises UnknownObject when the refunded payment is not known yet; returns None when the payment is
    known but no Refund row of ours matches (a refund made in Stripe's dashboard).
    """
    begin_write(db.session())
    try:
        if _payment_by_intent(refund.get("payment_intent")) is None:
            raise UnknownObject(f"Refund {refund.get('id')} is for a payment we do not know yet.")
        row = _refund_row(refund)
        if row is not None:
            _update_refund(row, refund, source)
        db.session.commit()
        return row
    except BaseException:
        db.session.rollback()
        raise


def _refund_row(refund: dict) -> Refund | None:
    row = db.session.scalar(select(Refund).where(Refund.provider_ref == refund["id"]).with_for_update())
    refund_id = str((refund.get("metadata") or {}).get("refund_id") or "")
    if row is None and refund_id.isdigit():
        row = db.session.get(Refund, int(refund_id), with_for_update=True)
        row = row if row is not None and row.provider_ref in (None, refund["id"]) else None
    return row


def _update_refund(row: Refund, refund: dict, source: str) -> None:
    row.provider_ref = row.provider_ref or refund["id"]
    target = REFUND_STATUS.get(refund.get("status"))
    if target is None or REFUND_RANK[target] <= REFUND_RANK[RefundStatus(row.status)]:
        return
    audit.record(f"refund.{target.value}", "refund", row.id, actor_label="stripe",
                 before={"status": row.status}, after={"status": target.value, "source": source})
    row.status = target.value
    if target == R.SUCCEEDED:
        row.succeeded_at = row.succeeded_at or utcnow()
        notifications.refund_succeeded(row)
    if target == R.FAILED:
        row.failure_reason = refund.get("failure_reason") or "failed at Stripe"
    _refunds().after_provider_update(row)


def _refunds():
    from midas.services import refunds  # refunds imports this module's callers; keep the cycle lazy

    return refunds


def _payment_by_intent(intent: str | dict | None) -> Payment | None:
    intent_id = intent.get("id") if isinstance(intent, dict) else intent
    if not intent_id:
        return None
    return db.session.scalar(select(Payment).where(
        Payment.provider == STRIPE, Payment.provider_ref == intent_id).with_for_update())


def flag(category: str, severity: str, message: str, **context) -> None:
    """A problem staff must see on /errors (category, severity, ids; never card data), and a log line."""
    level = logging.ERROR if severity == "HIGH" else logging.WARNING
    log.log(level, message, extra={"fields": {"category": category, "severity": severity, **context}})
    session = db.session()
    if session.in_transaction() and not (session.new or session.dirty or session.deleted):
        session.commit()  # only reads are open: end them, so the error is written now (SQLite has one writer)
    links = {key: context.pop(key) for key in ("booking_id", "payment_id", "amount", "currency") if key in context}
    record_error(category, severity, message, context=context, **links)
