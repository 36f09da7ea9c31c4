"""Security deposit holds: staff capture part of one or release it; unclaimed holds are released 48 h after return."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from sqlalchemy import and_, or_, select

from midas.extensions import db
from midas.integrations.stripe_gateway import ProviderError, stripe_gateway
from midas.models import Booking, BookingStatus, Payment, PaymentKind, PaymentStatus, Provider, Role, StaffUser, utcnow
from midas.money import format_money
from midas.services import DomainError, InvalidInput, NotFound, audit, payment_events
from midas.services.auth import require_role

RELEASE_AFTER_RETURN = timedelta(hours=48)
log = logging.getLogger("midas.payments")


class NotAHold(DomainError):
    status_code = 409


def capture_deposit(actor: StaffUser, payment_id: int, amount: int) -> Payment:
    """Capture `amount` (minor units) of a deposit hold; Stripe releases the rest. Admins only."""
    require_role(actor, Role.ADMIN)
    payment = _hold(payment_id)
    if not 0 < amount <= payment.amount:
        raise InvalidInput(f"Capture between 0 and {format_money(payment.amount, payment.currency)}.", "amount")
    payment = capture_hold(payment, amount, f"payment:{payment.id}:capture:{amount}", f"staff:{actor.email}")
    _audit(actor, "deposit.captured", payment, {"amount_captured": payment.amount_captured})
    return payment


def capture_hold(hold: Payment, amount: int, idempotency_key: str, source: str) -> Payment:
    """Capture `amount` of an open hold (checked by the caller) under the caller's key; Stripe releases the rest.

    A hold Stripe already ended (expired, released or captured elsewhere) is brought up to date here
    and refused with NotAHold, so the caller knows no money was taken by this call.
    """
    intent_id, gateway = hold.provider_ref, stripe_gateway()
    db.session.commit()  # no transaction stays open across the network call
    try:
        intent = gateway.capture_payment_intent(intent_id, amount, idempotency_key=idempotency_key)
    except ProviderError as exc:
        if exc.code != "payment_intent_unexpected_state":
            raise
        ended = payment_events.apply_payment_intent(gateway.retrieve_payment_intent(intent_id), source)
        raise NotAHold(f"This deposit hold is {ended.status.replace('_', ' ')} at Stripe and cannot be "
                       "captured.") from exc
    return payment_events.apply_payment_intent(intent, source)


def release_deposit(actor: StaffUser | None, payment_id: int) -> Payment:
    """Release a deposit hold in full (cancel its PaymentIntent). Concierges and up, or the system (None)."""
    if actor is not None:
        require_role(actor, Role.CONCIERGE)
    intent_id = _hold(payment_id).provider_ref
    gateway = stripe_gateway()
    db.session.commit()  # no transaction stays open across the network call
    try:
        intent = gateway.cancel_payment_intent(intent_id, idempotency_key=f"payment:{payment_id}:release")
    except ProviderError as exc:
        if exc.code != "payment_intent_unexpected_state":
            raise
        intent = gateway.retrieve_payment_intent(intent_id)  # Stripe already ended it (the hold expired)
    payment = payment_events.apply_payment_intent(intent, f"staff:{actor.email}" if actor else "system")
    _audit(actor, "deposit.released", payment, {"status": payment.status})
    return payment


def release_returned_deposits(now: datetime | None = None) -> list[int]:
    """Release holds nobody captured: 48 h after the return, or at once for a cancelled booking (periodic job)."""
    now = now or utcnow()
    due = select(Payment.id).join(Payment.booking).where(
        Payment.provider == Provider.STRIPE.value, Payment.kind == PaymentKind.DEPOSIT.value,
        Payment.status == PaymentStatus.AUTHORIZED.value,
        or_(and_(Booking.status == BookingStatus.COMPLETED.value, Booking.returned_at <= now - RELEASE_AFTER_RETURN),
            Booking.status == BookingStatus.CANCELLED.value),
    ).order_by(Payment.id)
    released = []
    for payment_id in list(db.session.scalars(due)):
        try:
            release_deposit(None, payment_id)
            released.append(payment_id)
        except DomainError:
            db.session.rollback()
            log.warning("deposit hold %s could not be released; next run tries again", payment_id)
    return released


def open_hold(booking_id: int) -> Payment | None:
    """The booking's card deposit hold that can still be captured, if any."""
    return db.session.scalar(select(Payment).where(
        Payment.booking_id == booking_id, Payment.provider == Provider.STRIPE.value,
        Payment.kind == PaymentKind.DEPOSIT.value, Payment.status == PaymentStatus.AUTHORIZED.value,
        Payment.provider_ref.is_not(None)).order_by(Payment.id.desc()).limit(1))


def _hold(payment_id: int) -> Payment:
    payment = db.session.get(Payment, payment_id)
    if payment is None:
        raise NotFound("No such payment.")
    if payment.kind != PaymentKind.DEPOSIT.value or payment.provider != Provider.STRIPE.value:
        raise NotAHold("Only a card deposit hold can be captured or released.")
    if payment.status != PaymentStatus.AUTHORIZED.value or not payment.provider_ref:
        raise NotAHold(f"This deposit is {payment.status.replace('_', ' ')}, not an open hold.")
    return payment


def _audit(actor: StaffUser | None, action: str, payment: Payment, after: dict) -> None:
    audit.record(action, "payment", payment.id, actor=actor, actor_label=None if actor else "system", after=after)
    db.session.commit()
