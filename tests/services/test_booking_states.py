"""The booking lifecycle: every legal move works, every illegal one is refused and changes nothing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from midas.extensions import db
from midas.models import AuditEntry, Booking, BookingStatus, utcnow
from midas.services import InvalidInput, booking_states, bookings
from midas.services.availability import BookingConflict
from midas.services.booking_states import TRANSITIONS, IllegalTransition
from tests import factories
from tests.conftest import make_staff

S = BookingStatus


@pytest.fixture
def staff(app):
    return make_staff("admin")


def booked(staff, status: str = "pending_payment", start_in_days: float = 7, days: int = 3, **item_fields) -> Booking:
    item = factories.item(**item_fields)
    start = utcnow() + timedelta(days=start_in_days)
    return bookings.create_booking(staff, factories.customer().id, item.id, start, start + timedelta(days=days),
                                   status=status)


def move(staff, booking: Booking, target: BookingStatus) -> Booking:
    ref = booking.reference
    actions = {
        S.PENDING_PAYMENT: lambda: booking_states.send_for_payment(staff, ref),
        S.CONFIRMED: lambda: booking_states.confirm(staff, ref),
        S.IN_PROGRESS: lambda: booking_states.hand_over(staff, ref, now=booking.starts_at),
        S.COMPLETED: lambda: booking_states.complete(staff, ref, returned_at=booking.ends_at),
        S.CANCELLED: lambda: booking_states.cancel(staff, ref, "customer changed plans"),
        S.NO_SHOW: lambda: booking_states.mark_no_show(staff, ref, now=booking.starts_at + timedelta(hours=1)),
        S.QUOTE: lambda: booking_states.release_expired_holds(now=booking.hold_expires_at + timedelta(seconds=1)),
    }
    actions[target]()
    db.session.expire_all()
    return db.session.get(Booking, booking.id)


def reach(staff, status: BookingStatus) -> Booking:
    """A booking brought to `status` along legal moves only."""
    paths = {S.QUOTE: [], S.PENDING_PAYMENT: [S.PENDING_PAYMENT], S.CONFIRMED: [S.CONFIRMED],
             S.IN_PROGRESS: [S.CONFIRMED, S.IN_PROGRESS], S.COMPLETED: [S.CONFIRMED, S.IN_PROGRESS, S.COMPLETED],
             S.CANCELLED: [S.CANCELLED], S.NO_SHOW: [S.CONFIRMED, S.NO_SHOW]}
    booking = booked(staff, status="quote")
    for step in paths[status]:
        booking = move(staff, booking, step)
    assert booking.status == status.value
    return booking


LEGAL = [(source, target) for source, targets in TRANSITIONS.items() for target in targets]
ILLEGAL = [(source, target) for source in S for target in S if target not in TRANSITIONS[source] and target != source
           and target != S.QUOTE]


@pytest.mark.parametrize(("source", "target"), LEGAL, ids=[f"{s.value}->{t.value}" for s, t in LEGAL])
def test_every_legal_transition_moves_and_is_audited(staff, source, target):
    booking = reach(staff, source)
    if target is S.QUOTE:
        booking = move(staff, booking, S.PENDING_PAYMENT) if source is not S.PENDING_PAYMENT else booking
    moved = move(staff, booking, target)
    assert moved.status == target.value
    entry = db.session.query(AuditEntry).filter_by(entity_id=str(booking.id), action=f"booking.{target.value}").first()
    assert entry is not None and entry.before["status"] in (source.value, S.PENDING_PAYMENT.value)


@pytest.mark.parametrize(("source", "target"), ILLEGAL, ids=[f"{s.value}->{t.value}" for s, t in ILLEGAL])
def test_every_illegal_transition_is_refused_and_changes_nothing(staff, source, target):
    booking = reach(staff, source)
    audits = db.session.query(AuditEntry).count()
    with pytest.raises((IllegalTransition, InvalidInput)) as refused:
        move(staff, booking, target)
    assert "cannot become" in str(refused.value) or "possible next" in str(refused.value) or target is S.NO_SHOW
    db.session.rollback()
    assert db.session.get(Booking, booking.id).status == source.value
    assert db.session.query(AuditEntry).count() == audits


def test_an_expired_hold_releases_the_slot_for_someone_else(staff):
    booking = booked(staff)
    assert booking.hold_expires_at is not None
    second_customer = factories.customer()
    with pytest.raises(BookingConflict):
        bookings.create_booking(staff, second_customer.id, booking.item_id, booking.starts_at, booking.ends_at)
    released = booking_states.release_expired_holds(now=booking.hold_expires_at + timedelta(seconds=1))
    assert released == [booking.reference]
    assert db.session.get(Booking, booking.id).status == "quote"
    other = bookings.create_booking(staff, second_customer.id, booking.item_id, booking.starts_at, booking.ends_at)
    assert other.status == "pending_payment"


def test_a_live_hold_is_not_released(staff):
    booking = booked(staff)
    assert booking_states.release_expired_holds(now=booking.hold_expires_at - timedelta(minutes=1)) == []


def test_quote_whose_slot_was_taken_cannot_be_held_again(staff):
    quote = booked(staff, status="quote")
    bookings.create_booking(staff, factories.customer().id, quote.item_id, quote.starts_at, quote.ends_at)
    with pytest.raises(BookingConflict):
        booking_states.send_for_payment(staff, quote.reference)
    assert db.session.get(Booking, quote.id).status == "quote"


def test_cancel_needs_a_reason(staff):
    booking = booked(staff)
    with pytest.raises(InvalidInput, match="Say why"):
        booking_states.cancel(staff, booking.reference, "  ")


def test_no_show_only_after_the_start(staff):
    booking = reach(staff, S.CONFIRMED)
    with pytest.raises(IllegalTransition, match="after the booking's start"):
        booking_states.mark_no_show(staff, booking.reference, now=booking.starts_at - timedelta(minutes=1))


def test_early_return_frees_the_rest_of_the_slot(staff):
    booking = reach(staff, S.IN_PROGRESS)
    back = booking.starts_at + timedelta(days=1)
    done = booking_states.complete(staff, booking.reference, returned_at=back)
    assert done.ends_at == back and done.block_ends_at == back + timedelta(hours=2)
    assert done.total_amount == booking.total_amount  # an early return is not refunded automatically


def test_late_return_adds_a_capped_late_fee_line(staff):
    booking = reach(staff, S.IN_PROGRESS)  # a car: 15% of the daily rate per started hour, 30 minutes' grace
    late = booking.ends_at + timedelta(hours=2, minutes=31)
    done = booking_states.complete(staff, booking.reference, returned_at=late)
    fee_line = done.lines[-1]
    assert fee_line.kind == "late_fee" and fee_line.amount == 180000 * 1500 * 3 // 10000
    assert done.total_amount == sum(line.amount for line in done.lines)
    very_late = reach(staff, S.IN_PROGRESS)
    done = booking_states.complete(staff, very_late.reference, returned_at=very_late.ends_at + timedelta(days=3))
    assert done.lines[-1].amount == 180000 * 2  # capped at 200% of the daily rate


def test_return_within_the_grace_period_costs_nothing(staff):
    booking = reach(staff, S.IN_PROGRESS)
    done = booking_states.complete(staff, booking.reference, returned_at=booking.ends_at + timedelta(minutes=29))
    assert [line.kind for line in done.lines if line.kind == "late_fee"] == []


def test_hand_over_is_refused_more_than_a_day_early(staff):
    booking = reach(staff, S.CONFIRMED)
    with pytest.raises(IllegalTransition, match="24 hours"):
        booking_states.hand_over(staff, booking.reference, now=booking.starts_at - timedelta(days=2))


def test_concierge_cannot_confirm_without_payment(app):
    concierge = make_staff("concierge")
    booking = booked(concierge)
    from midas.services import PermissionDenied

    with pytest.raises(PermissionDenied):
        booking_states.confirm(concierge, booking.reference)


def test_times_stay_utc_across_the_lifecycle(staff):
    booking = booked(staff, start_in_days=0.5)
    assert booking.starts_at.tzinfo is not None and booking.starts_at.utcoffset() == timedelta(0)
    assert isinstance(booking.created_at, datetime) and booking.created_at.tzinfo == UTC
