"""Charging a late return's fee: from the deposit hold when it covers the fee, else as a balance payment.

The fee is the sum of the booking's late-fee price lines (added by `booking_states.complete`). Money
captured from a completed booking's deposit hold pays that fee first: the hold secures what the customer
owes after the return. When no open hold covers the fee, a balance payment (a card payment of kind
`late_fee`) is opened and the customer is sent their checkout link to pay it.

Every step is safe to repeat, so a double click, a retried job and the periodic sweep together charge
once: the capture carries an idempotency key derived from the booking and the fee, the balance payment
row a unique key (`booking:<id>:late_fee:<amount>`) written under the booking's row lock, and its
message a dedupe key.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from sqlalchemy import exists, func, or_, select

from midas.database import in_write
from midas.extensions import db
from midas.integrations.stripe_gateway import ProviderError, stripe_configured
from midas.models import (
    Booking,
    BookingLine,
    BookingStatus,
    LineKind,
    Payment,
    PaymentKind,
    PaymentStatus,
    Provider,
    utcnow,
)
from midas.services import DomainError, audit, deposits, notifications

P = PaymentStatus
STRIPE, LATE_FEE = Provider.STRIPE.value, PaymentKind.LATE_FEE.value
OPEN = (P.PENDING.value, P.REQUIRES_ACTION.value, P.FAILED.value)  # the customer can still pay it (again)
HOLD_CANNOT_PAY = {"charge_expired_for_capture", "card_declined", "expired_card"}  # Stripe's word: it never will
SWEEP_WINDOW = timedelta(days=7)  # the periodic sweep retries fees of bookings returned this recently
log = logging.getLogger("midas.payments")


@dataclass(frozen=True)
class LateFeeCharge:
    """Where a booking's late fee stands.

    status: "none" (no fee), "uncharged" (nothing taken or asked for yet), "captured" (taken from the
    deposit hold), "balance_due" (a balance payment awaits the customer), "processing" (they are paying
    it), "paid" (the balance was paid).
    """

    fee: int
    currency: str
    status: str
    from_hold: int = 0
    paid: int = 0
    balance: Payment | None = None

    @property
    def outstanding(self) -> int:
        return max(self.fee - self.from_hold - self.paid, 0)


def charge_for(booking: Booking) -> LateFeeCharge:
    """The late fee's charge status, read from the booking's lines and payments."""
    fee = sum(line.amount for line in booking.lines if line.kind == LineKind.LATE_FEE.value)
    if fee <= 0:
        return LateFeeCharge(0, booking.currency, "none")
    from_hold = min(_captured_from_holds(booking.id), fee)
    paid = _balance_paid(booking.id)
    balance = open_balance(booking.id)
    charge = LateFeeCharge(fee, booking.currency, "uncharged", from_hold, paid, balance)
    return replace(charge, status=_status(charge))


def _status(charge: LateFeeCharge) -> str:
    if charge.outstanding == 0:
        return "paid" if charge.paid else "captured"
    if charge.balance is not None:
        return "processing" if charge.balance.status == P.PROCESSING.value else "balance_due"
    return "uncharged"


def open_balance(booking_id: int) -> Payment | None:
    """The booking's balance payment the customer can still pay (or is paying), if any."""
    return db.session.scalar(select(Payment).where(
        Payment.booking_id == booking_id, Payment.kind == LATE_FEE, Payment.provider == STRIPE,
        Payment.status.in_((*OPEN, P.PROCESSING.value))).order_by(Payment.id.desc()).limit(1))


# A refund given back later does not make the fee uncharged again (paid() includes refunded states).

def _captured_from_holds(booking_id: int) -> int:
    return int(db.session.scalar(select(func.coalesce(func.sum(Payment.amount_captured), 0)).where(
        Payment.booking_id == booking_id, Payment.kind == PaymentKind.DEPOSIT.value,
        Payment.status.in_(P.paid()))))


def _balance_paid(booking_id: int) -> int:
    return int(db.session.scalar(select(func.coalesce(func.sum(Payment.amount), 0)).where(
        Payment.booking_id == booking_id, Payment.kind == LATE_FEE, Payment.status.in_(P.paid()))))


# Charging (a job after the return, and the periodic sweep).

def charge_late_fee(booking_id: int) -> LateFeeCharge:
    """Take a completed booking's late fee from its deposit hold, or open a balance the customer pays by link."""
    booking = db.session.get(Booking, booking_id)
    if booking is None or booking.status != BookingStatus.COMPLETED.value:
        db.session.rollback()
        return LateFeeCharge(0, booking.currency if booking else "", "none")
    charge = charge_for(booking)
    if charge.status == "uncharged" and _capture_from_hold(booking, charge.outstanding):
        db.session.expire_all()
        charge = charge_for(db.session.get(Booking, booking_id))
    db.session.commit()  # end the reads before the write below takes the lock
    if charge.status == "uncharged":
        charge = in_write(lambda: _open_balance(booking_id))
    return charge


def _capture_from_hold(booking: Booking, amount: int) -> bool:
    """Capture the fee from an open hold that covers it; False when there is none or it could not pay."""
    hold = deposits.open_hold(booking.id) if stripe_configured() else None
    if hold is None or hold.amount < amount or hold.currency != booking.currency:
        return False
    key = f"booking:{booking.id}:late_fee:{amount}:capture"
    try:
        captured = deposits.capture_hold(hold, amount, key, "late fee")
    except deposits.NotAHold:
        return False  # the hold ended meanwhile: the customer pays a balance instead
    except ProviderError as exc:
        if exc.code not in HOLD_CANNOT_PAY:
            # Unreachable, or busy with this very capture (idempotency_key_in_use): never ask for a balance
            # while the hold may still be paying; the job's retry or the next sweep repeats the same key.
            raise
        log.warning("late fee of booking %s could not be captured from hold %s (%s); asking for a balance",
                    booking.reference, hold.id, exc.code)
        return False
    in_write(lambda: _record_capture(booking.id, captured.id, amount))
    return True


def _record_capture(booking_id: int, payment_id: int, amount: int) -> None:
    audit.record("booking.late_fee_captured", "booking", booking_id, actor_label="system",
                 after={"late_fee": amount, "payment_id": payment_id, "reason": "captured from the deposit hold"})


def _open_balance(booking_id: int) -> LateFeeCharge:
    """Under the booking's lock: open the balance payment (unless another run did) and tell the customer."""
    booking = db.session.scalar(select(Booking).where(Booking.id == booking_id).with_for_update())
    charge = charge_for(booking)
    if charge.status != "uncharged":
        return charge
    payment = Payment(booking_id=booking.id, provider=STRIPE, kind=LATE_FEE, status=P.PENDING.value,
                      amount=charge.outstanding, currency=booking.currency, amount_captured=0, amount_refunded=0,
                      idempotency_key=_balance_key(booking.id, charge.outstanding))
    db.session.add(payment)
    db.session.flush()
    audit.record("booking.late_fee_due", "booking", booking.id, actor_label="system",
                 after={"late_fee": payment.amount, "payment_id": payment.id,
                        "reason": "balance payment sent to the customer"})
    notifications.balance_due(payment)
    return charge_for(booking)


def _balance_key(booking_id: int, amount: int) -> str:
    """The checkout's key scheme for a booking's payments: the first balance of an amount, then `…:2` and on."""
    base = f"booking:{booking_id}:{LATE_FEE}:{amount}"
    earlier = db.session.scalar(select(func.count()).select_from(Payment).where(
        or_(Payment.idempotency_key == base, Payment.idempotency_key.like(f"{base}:%"))))
    return f"{base}:{earlier + 1}" if earlier else base


def charge_outstanding(now: datetime | None = None) -> list[str]:
    """Periodic: charge late fees of recent returns that are still uncharged; returns their references."""
    now = now or utcnow()
    late = exists().where(BookingLine.booking_id == Booking.id, BookingLine.kind == LineKind.LATE_FEE.value)
    candidates = list(db.session.scalars(select(Booking.id).where(
        Booking.status == BookingStatus.COMPLETED.value, Booking.returned_at >= now - SWEEP_WINDOW, late)
        .order_by(Booking.id)))
    charged = []
    for booking_id in candidates:
        booking = db.session.get(Booking, booking_id)
        if charge_for(booking).status != "uncharged":
            continue
        try:
            if charge_late_fee(booking_id).status != "uncharged":
                charged.append(booking.reference)
        except DomainError:
            db.session.rollback()
            log.warning("late fee of booking %s could not be charged; the next run tries again", booking_id)
    db.session.commit()
    return charged
