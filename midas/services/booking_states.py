"""The booking lifecycle as an explicit state machine.

    quote ──► pending_payment ──► confirmed ──► in_progress ──► completed
      │            │   ▲              │
      │            ▼   └─ hold expires (back to quote, slot released)
      └──────► cancelled ◄────────────┤
                                      └──► no_show (after the start time)

Moving into a state that holds the item (pending payment, confirmed) re-checks availability under the
same serialized write as a new booking. Every transition is audited; illegal ones are refused with a
message saying what is possible instead.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from rq import Retry
from sqlalchemy import select

from midas.database import begin_write, in_write
from midas.extensions import db
from midas.models import BLOCKING_STATUSES, Booking, BookingLine, BookingStatus, LineKind, Role, StaffUser, utcnow
from midas.money import apply_bp, round_to_charge_unit
from midas.services import DomainError, InvalidInput, audit, availability, notifications, refunds
from midas.services.auth import require_role
from midas.tasks.queue import enqueue_after_commit
from midas.timeutil import localize

S = BookingStatus
TRANSITIONS: dict[BookingStatus, frozenset[BookingStatus]] = {
    S.QUOTE: frozenset({S.PENDING_PAYMENT, S.CONFIRMED, S.CANCELLED}),
    S.PENDING_PAYMENT: frozenset({S.CONFIRMED, S.QUOTE, S.CANCELLED}),
    S.CONFIRMED: frozenset({S.IN_PROGRESS, S.CANCELLED, S.NO_SHOW}),
    S.IN_PROGRESS: frozenset({S.COMPLETED}),
    S.COMPLETED: frozenset(),
    S.CANCELLED: frozenset(),
    S.NO_SHOW: frozenset(),
}
DEFAULT_HOLD_MINUTES = 30
CHECKOUT_GRACE_MINUTES = 15  # enough to finish paying, including a 3-D Secure check
CHARGE_LATE_FEE_JOB = "midas.tasks.deposits.charge_late_fee"
LATE_FEE_RETRY = Retry(max=3, interval=[30, 120, 600])
RETURN_CLOCK_SKEW = timedelta(minutes=10)  # a typed return may run a little ahead of the server's clock


class IllegalTransition(DomainError):
    status_code = 409


def allowed_next(booking: Booking) -> frozenset[BookingStatus]:
    return TRANSITIONS[BookingStatus(booking.status)]


def _move(booking: Booking, target: BookingStatus, actor: StaffUser | None, **facts) -> None:
    current = BookingStatus(booking.status)
    if target not in TRANSITIONS[current]:
        options = ", ".join(s.value.replace("_", " ") for s in sorted(TRANSITIONS[current])) or "nothing"
        raise IllegalTransition(f"Booking {booking.reference} is {current.value.replace('_', ' ')}: it cannot become "
                                f"{target.value.replace('_', ' ')} (possible next: {options}).")
    booking.status = target.value
    audit.record(f"booking.{target.value}", "booking", booking.id, actor=actor,
                 actor_label=None if actor else "system", before={"status": current.value},
                 after={"status": target.value, **facts})


def _load(reference: str) -> Booking:
    booking = db.session.scalar(select(Booking).where(Booking.reference == reference.upper()).with_for_update())
    if booking is None:
        raise InvalidInput(f"No booking with reference {reference}.")
    return booking


def _hold_slot(booking: Booking) -> None:
    """A booking that starts holding the item must find it free (an expired quote may have lost it)."""
    if BookingStatus(booking.status) in BLOCKING_STATUSES:
        return
    availability.ensure_free(booking.item, booking.block_starts_at, booking.block_ends_at,
                             exclude_booking_id=booking.id)


def send_for_payment(actor: StaffUser, reference: str, hold_minutes: int = DEFAULT_HOLD_MINUTES,
                     now: datetime | None = None) -> Booking:
    """Quote → pending payment: the item is held for `hold_minutes` while the customer pays."""
    require_role(actor, Role.CONCIERGE)

    def change() -> Booking:
        booking = _load(reference)
        _hold_slot(booking)
        booking.hold_expires_at = (now or utcnow()) + timedelta(minutes=hold_minutes)
        _move(booking, S.PENDING_PAYMENT, actor, hold_expires_at=booking.hold_expires_at)
        notifications.booking_held(booking)
        return booking

    return in_write(change)


def hold_for_checkout(reference: str, minutes: int = CHECKOUT_GRACE_MINUTES, now: datetime | None = None) -> Booking:
    """The customer is paying: make sure the item stays held for at least `minutes` more.

    A pending hold is extended when less remains (never shortened). A quote whose hold expired is
    held again, as the system, if the item is still free (BookingConflict otherwise): the customer
    holds a link staff sent them, so the booking was offered to them and the slot is theirs if nobody
    else took it meanwhile.
    """

    def change() -> Booking:
        booking = _load(reference)
        until = (now or utcnow()) + timedelta(minutes=minutes)
        if booking.status == S.PENDING_PAYMENT.value:
            booking.hold_expires_at = max(booking.hold_expires_at or until, until)
            return booking
        _hold_slot(booking)
        booking.hold_expires_at = until
        _move(booking, S.PENDING_PAYMENT, None, hold_expires_at=until, reason="customer opened checkout")
        return booking

    return in_write(change)


def confirm(actor: StaffUser | None, reference: str, reason: str = "") -> Booking:
    """Pending payment (or quote) → confirmed: paid, or confirmed on account by an admin."""
    if actor is not None:
        require_role(actor, Role.ADMIN)

    def change() -> Booking:
        booking = _load(reference)
        _hold_slot(booking)
        booking.hold_expires_at = None
        _move(booking, S.CONFIRMED, actor, reason=reason or "payment received")
        notifications.booking_confirmed(booking)
        return booking

    return in_write(change)


def hand_over(actor: StaffUser, reference: str, now: datetime | None = None) -> Booking:
    """Confirmed → in progress: the customer has the keys (at most a day early)."""
    require_role(actor, Role.CONCIERGE)
    now = now or utcnow()

    def change() -> Booking:
        booking = _load(reference)
        if now < booking.starts_at - timedelta(days=1):
            raise IllegalTransition("Hand-over can be recorded from 24 hours before the start, not earlier.")
        booking.handed_over_at = now
        _move(booking, S.IN_PROGRESS, actor, handed_over_at=now)
        return booking

    return in_write(change)


def cancel(actor: StaffUser, reference: str, reason: str) -> Booking:
    """Cancel with a reason; the slot is released at once and the policy refund of what was paid is recorded."""
    require_role(actor, Role.CONCIERGE)
    if not reason.strip():
        raise InvalidInput("Say why the booking is cancelled.", "reason")

    def change() -> Booking:
        booking = _load(reference)
        previous = booking.status
        booking.cancel_reason = reason.strip()[:240]
        booking.hold_expires_at = None
        _move(booking, S.CANCELLED, actor, reason=booking.cancel_reason)
        refunds.decide_on_cancellation(actor, booking)  # money paid: the policy's refund (even 0) is recorded
        notifications.booking_cancelled(booking, previous)
        return booking

    return in_write(change)


def mark_no_show(actor: StaffUser, reference: str, now: datetime | None = None) -> Booking:
    """Confirmed → no show, once the start time has passed without a hand-over."""
    require_role(actor, Role.CONCIERGE)
    now = now or utcnow()

    def change() -> Booking:
        booking = _load(reference)
        if now < booking.starts_at:
            raise IllegalTransition("A customer can only be a no-show after the booking's start time.")
        _move(booking, S.NO_SHOW, actor)
        return booking

    return in_write(change)


def release_expired_holds(now: datetime | None = None) -> list[str]:
    """Pending-payment holds past their expiry go back to quotes, freeing the item; returns their references."""
    now = now or utcnow()
    begin_write(db.session())
    expired = list(db.session.scalars(
        select(Booking).where(Booking.status == S.PENDING_PAYMENT.value, Booking.hold_expires_at <= now)
        .with_for_update(skip_locked=True)
    ))
    for booking in expired:
        booking.hold_expires_at = None
        _move(booking, S.QUOTE, None, reason="hold expired")
    db.session.commit()
    return [booking.reference for booking in expired]


def record_return(actor: StaffUser, reference: str, local_returned_at: datetime,
                  now: datetime | None = None) -> Booking:
    """Complete a booking from the return time staff typed: a wall-clock time at the item's venue."""
    booking = db.session.scalar(select(Booking).where(Booking.reference == reference.upper()))
    if booking is None:
        raise InvalidInput(f"No booking with reference {reference}.")
    returned_at = localize(local_returned_at.replace(tzinfo=None), booking.item.location.timezone)
    if returned_at > (now or utcnow()) + RETURN_CLOCK_SKEW:
        raise InvalidInput("The return time is in the future: enter when the item came back.", "returned_at")
    db.session.commit()  # only read: complete() takes the lock in its own write
    return complete(actor, reference, returned_at)


def complete(actor: StaffUser, reference: str, returned_at: datetime | None = None) -> Booking:
    """In progress → completed. An early return frees the rest of the slot; a late one adds a late-fee line.

    The fee is charged after the commit, by a job (the Stripe call stays out of this transaction):
    from the deposit hold when it covers the fee, else as a balance payment (services.late_fees).
    """
    require_role(actor, Role.CONCIERGE)
    returned_at = returned_at or utcnow()

    def change() -> Booking:
        booking = _load(reference)
        if returned_at <= booking.starts_at:
            raise InvalidInput("The return must be after the booking started.", "returned_at")
        fee = late_fee(booking, returned_at)
        if returned_at < booking.ends_at:
            booking.ends_at = returned_at
            booking.block_ends_at = returned_at + timedelta(hours=booking.item.buffer_after_hours)
        if fee:
            _add_late_fee_line(booking, returned_at, fee)
            enqueue_after_commit(CHARGE_LATE_FEE_JOB, booking.id, queue="high", retry=LATE_FEE_RETRY)
        booking.returned_at = returned_at
        _move(booking, S.COMPLETED, actor, returned_at=returned_at, late_fee=fee)
        notifications.booking_completed(booking)
        return booking

    booking = in_write(change)
    from midas.services import loyalty

    loyalty.award_points(booking.id)
    return booking


def late_fee(booking: Booking, returned_at: datetime) -> int:
    """Each started hour past the end (after the grace period) costs a share of the daily rate, up to a cap."""
    from midas.services.settings import get_late_fee_rules

    rule = get_late_fee_rules()[booking.item.category]
    late_seconds = (returned_at - booking.ends_at).total_seconds() - rule["grace_minutes"] * 60
    if late_seconds <= 0:
        return 0
    hours = -(-int(late_seconds) // 3600)
    fee = apply_bp(booking.item.daily_rate, rule["hourly_bp"] * hours)
    return round_to_charge_unit(min(fee, apply_bp(booking.item.daily_rate, rule["cap_bp"])), booking.currency)


def _add_late_fee_line(booking: Booking, returned_at: datetime, fee: int) -> None:
    hours_late = -(-int((returned_at - booking.ends_at).total_seconds()) // 3600)
    booking.lines.append(BookingLine(position=len(booking.lines), kind=LineKind.LATE_FEE.value, amount=fee,
                                     description=f"Late return: {hours_late} h after the agreed time"))
    booking.total_amount += fee
