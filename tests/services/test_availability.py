"""Availability and booking creation: buffers and blackouts count, and nothing is ever booked twice."""

from __future__ import annotations

import random
import re
import threading
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import delete, select

from midas.extensions import db
from midas.models import (
    BLOCKING_STATUSES,
    AuditEntry,
    Blackout,
    Booking,
    BookingLine,
    BookingStatus,
    Customer,
    Item,
    LineKind,
    Location,
    Notification,
    StaffUser,
    utcnow,
)
from midas.services import DomainError, NotFound, PermissionDenied
from midas.services.availability import (
    BookingConflict,
    available_items,
    block_range,
    conflicts_for,
    ensure_free,
    local_period,
)
from midas.services.bookings import create_booking
from tests.conftest import make_staff

PARIS = ZoneInfo("Europe/Paris")


def paris(*args) -> datetime:
    return datetime(*args, tzinfo=PARIS)


def make_location(code: str = "PAR", timezone: str = "Europe/Paris", currency: str = "EUR") -> Location:
    return Location(code=code, name=f"Midas {code}", city=code.title(), country="FR", timezone=timezone,
                    currency=currency, tax_rate_bp=2000, service_fee_bp=500)


def make_item(location: Location, name: str = "Ferrari SF90 Stradale", before: int = 2, after: int = 4,
              category: str = "car", **fields) -> Item:
    return Item(location=location, category=category, name=name, currency=location.currency,
                daily_rate=fields.pop("daily_rate", 250000), security_deposit=fields.pop("security_deposit", 1000000),
                insurance_rate_bp=fields.pop("insurance_rate_bp", 300), buffer_before_hours=before,
                buffer_after_hours=after, min_days=fields.pop("min_days", 1), **fields)


class Fleet:
    """A Paris location with a Ferrari (2 h before, 4 h after), a premium customer and a concierge."""

    def __init__(self) -> None:
        self.location = make_location()
        self.ferrari = make_item(self.location)
        self.customer = Customer(name="Grace Hopper", email="grace@example.com", tier="premium")
        db.session.add_all([self.location, self.ferrari, self.customer])
        db.session.commit()
        self.concierge = make_staff("concierge")

    def book(self, starts: datetime, ends: datetime, item: Item | None = None, **kwargs) -> Booking:
        return create_booking(self.concierge, self.customer.id, (item or self.ferrari).id, starts, ends, **kwargs)


@pytest.fixture
def fleet(app) -> Fleet:
    return Fleet()


# Creating a booking -----------------------------------------------------------------------------------------------

def test_a_new_booking_is_priced_held_and_audited(fleet):
    now = datetime(2026, 3, 1, 12, tzinfo=UTC)
    booking = fleet.book(paris(2026, 3, 12, 10), paris(2026, 3, 15, 10), notes="VIP arrival", now=now)
    assert re.fullmatch(r"MID-[2-9A-HJKMNP-Z]{6}", booking.reference)
    assert booking.status == "pending_payment" and booking.hold_expires_at == now + timedelta(minutes=30)
    assert (booking.block_starts_at, booking.block_ends_at) == (paris(2026, 3, 12, 8), paris(2026, 3, 15, 14))
    assert len(booking.checkout_token) >= 43 and booking.concierge_id == fleet.concierge.id
    assert [line.kind for line in booking.lines] == [LineKind.RENTAL, LineKind.TIER, LineKind.INSURANCE,
                                                     LineKind.SERVICE_FEE, LineKind.TAX]
    assert booking.lines[1].description == "Premium service tier (+30%)"  # the customer's tier is priced in
    assert booking.total_amount == sum(line.amount for line in booking.lines) and booking.currency == "EUR"
    assert booking.deposit_amount == 1000000 and booking.notes == "VIP arrival"
    entry = db.session.scalar(select(AuditEntry).where(AuditEntry.action == "booking.created"))
    assert entry.actor_id == fleet.concierge.id and entry.after["reference"] == booking.reference


def test_a_confirmed_booking_has_no_payment_hold(fleet):
    booking = fleet.book(paris(2026, 3, 12, 10), paris(2026, 3, 15, 10), status="confirmed")
    assert booking.status == "confirmed" and booking.hold_expires_at is None


def test_items_out_of_service_and_unknown_records_cannot_be_booked(fleet):
    fleet.ferrari.status = "maintenance"
    db.session.commit()
    with pytest.raises(DomainError, match="Ferrari SF90 Stradale is maintenance and cannot be booked"):
        fleet.book(paris(2026, 3, 12, 10), paris(2026, 3, 15, 10))
    with pytest.raises(NotFound, match="No such item"):
        create_booking(fleet.concierge, fleet.customer.id, 9999, paris(2026, 3, 12, 10), paris(2026, 3, 15, 10))
    fleet.ferrari.status = "active"
    db.session.commit()
    with pytest.raises(NotFound, match="No such customer"):
        create_booking(fleet.concierge, 9999, fleet.ferrari.id, paris(2026, 3, 12, 10), paris(2026, 3, 15, 10))
    fleet.customer.erased_at = utcnow()
    db.session.commit()
    with pytest.raises(DomainError, match="erased"):
        fleet.book(paris(2026, 3, 12, 10), paris(2026, 3, 15, 10))
    assert db.session.scalar(select(Booking.id)) is None


def test_deactivated_staff_and_odd_states_cannot_create_bookings(fleet):
    former = make_staff("concierge", email="former@midas.test", active=False)
    with pytest.raises(PermissionDenied):
        create_booking(former, fleet.customer.id, fleet.ferrari.id, paris(2026, 3, 12, 10), paris(2026, 3, 15, 10))
    with pytest.raises(DomainError, match="not 'completed'"):
        fleet.book(paris(2026, 3, 12, 10), paris(2026, 3, 15, 10), status="completed")


def test_a_backwards_period_is_refused_with_a_reason(fleet):
    with pytest.raises(DomainError, match="after its start"):
        fleet.book(paris(2026, 3, 15, 10), paris(2026, 3, 12, 10))
    with pytest.raises(DomainError, match="time zone"):
        fleet.book(datetime(2026, 3, 12, 10), datetime(2026, 3, 15, 10))


# The conflict rule ------------------------------------------------------------------------------------------------

def test_the_conflict_message_names_the_booking_in_the_way_in_local_time(fleet):
    first = fleet.book(paris(2026, 3, 12, 10), paris(2026, 3, 15, 10))
    with pytest.raises(BookingConflict) as caught:
        fleet.book(paris(2026, 3, 14, 10), paris(2026, 3, 16, 10))
    assert str(caught.value) == (f"Ferrari SF90 Stradale is not free then: booking {first.reference} "
                                 "(12 Mar 08:00 – 15 Mar 14:00 CET, buffers included) overlaps.")
    assert caught.value.status_code == 409


def test_buffer_hours_count_and_a_booking_may_start_when_the_last_block_ends(fleet):
    fleet.book(paris(2026, 3, 12, 10), paris(2026, 3, 15, 10))  # blocks until 15 Mar 14:00 (4 h after)
    with pytest.raises(BookingConflict):
        fleet.book(paris(2026, 3, 15, 15), paris(2026, 3, 16, 10))  # its own 2 h before starts at 13:00
    assert fleet.book(paris(2026, 3, 15, 16), paris(2026, 3, 16, 10)).block_starts_at == paris(2026, 3, 15, 14)
    with pytest.raises(BookingConflict):
        fleet.book(paris(2026, 3, 11, 10), paris(2026, 3, 12, 5))  # ends 05:00, +4 h = 09:00 > 08:00


def test_touching_periods_do_not_overlap(fleet):
    tender = make_item(fleet.location, "Riva tender", before=0, after=0, category="yacht")
    db.session.add(tender)
    db.session.commit()
    fleet.book(paris(2026, 3, 12, 10), paris(2026, 3, 15, 10), item=tender)
    fleet.book(paris(2026, 3, 15, 10), paris(2026, 3, 17, 10), item=tender)
    fleet.book(paris(2026, 3, 10, 10), paris(2026, 3, 12, 10), item=tender)
    assert len(conflicts_for(tender.id, paris(2026, 3, 10, 10), paris(2026, 3, 17, 10))) == 3
    assert conflicts_for(tender.id, paris(2026, 3, 17, 10), paris(2026, 3, 18, 10)) == []


def test_maintenance_blackouts_block_bookings_and_say_why(fleet):
    db.session.add(Blackout(item=fleet.ferrari, starts_at=paris(2026, 3, 20), ends_at=paris(2026, 3, 22),
                            reason="Brake service"))
    db.session.commit()
    with pytest.raises(BookingConflict) as caught:
        fleet.book(paris(2026, 3, 21, 10), paris(2026, 3, 23, 10))
    assert str(caught.value) == ("Ferrari SF90 Stradale is not free then: maintenance (Brake service, "
                                 "20 Mar 00:00 – 22 Mar 00:00 CET) overlaps.")
    with pytest.raises(BookingConflict):
        fleet.book(paris(2026, 3, 18, 10), paris(2026, 3, 19, 21))  # the 4 h after-buffer reaches 01:00 on the 20th
    fleet.book(paris(2026, 3, 18, 10), paris(2026, 3, 19, 20))


def test_a_cancelled_booking_frees_the_slot(fleet):
    first = fleet.book(paris(2026, 3, 12, 10), paris(2026, 3, 15, 10))
    first.status = BookingStatus.CANCELLED.value
    db.session.commit()
    second = fleet.book(paris(2026, 3, 12, 10), paris(2026, 3, 15, 10))
    assert second.reference != first.reference and second.is_blocking


def test_rebooking_may_ignore_the_booking_being_changed(fleet):
    first = fleet.book(paris(2026, 3, 12, 10), paris(2026, 3, 15, 10))
    block = block_range(fleet.ferrari, paris(2026, 3, 13, 10), paris(2026, 3, 16, 10))
    with pytest.raises(BookingConflict):
        ensure_free(fleet.ferrari, *block)
    ensure_free(fleet.ferrari, *block, exclude_booking_id=first.id)


def test_day_boundaries_follow_the_location_across_the_spring_clock_change(fleet):
    starts, ends = local_period("Europe/Paris", date(2026, 3, 28), date(2026, 3, 31))
    assert (starts, ends) == (datetime(2026, 3, 28, 9, tzinfo=UTC), datetime(2026, 3, 31, 8, tzinfo=UTC))
    booking = fleet.book(starts, ends)
    assert booking.lines[0].description == "3 days × €2,500.00"  # 71 real hours are 3 local days
    after = fleet.book(*local_period("Europe/Paris", date(2026, 3, 31), date(2026, 4, 2), hour=16))
    assert after.block_starts_at == booking.block_ends_at  # 31 Mar 14:00 CEST: touching, allowed
    with pytest.raises(BookingConflict, match=r"28 Mar 08:00 CET – 31 Mar 14:00 CEST"):
        fleet.book(*local_period("Europe/Paris", date(2026, 3, 30), date(2026, 3, 31), hour=12))


def test_local_period_is_refused_when_the_dates_are_backwards():
    with pytest.raises(DomainError, match="end date"):
        local_period("Asia/Tokyo", date(2026, 5, 2), date(2026, 5, 2))


def test_postgres_constraint_catching_a_missed_overlap_is_a_conflict_not_a_500(fleet, monkeypatch):
    if db.engine.dialect.name != "postgresql":
        pytest.skip("only PostgreSQL has the exclusion constraint behind the service's own check")
    first = fleet.book(paris(2026, 3, 12, 10), paris(2026, 3, 15, 10))
    monkeypatch.setattr("midas.services.availability.ensure_free", lambda *args, **kwargs: None)
    with pytest.raises(BookingConflict, match=f"booking {first.reference} .* overlaps"):
        fleet.book(paris(2026, 3, 14, 10), paris(2026, 3, 16, 10))
    assert db.session.scalars(select(Booking.reference)).all() == [first.reference]
    assert fleet.book(paris(2026, 3, 20, 10), paris(2026, 3, 21, 10)).is_blocking  # the session is usable again


# Searching free items -----------------------------------------------------------------------------------------------

def test_available_items_counts_each_items_own_buffers_and_blackouts(fleet):
    tender = make_item(fleet.location, "Riva tender", before=0, after=0, category="yacht")
    villa = make_item(fleet.location, "Villa Ephrussi", before=24, after=24, category="property")
    retired = make_item(fleet.location, "Old Bentley", before=0, after=0, status="retired")
    db.session.add_all([tender, villa, retired])
    db.session.commit()
    fleet.book(paris(2026, 3, 10, 10), paris(2026, 3, 12, 10))  # Ferrari blocked until 12 Mar 14:00
    fleet.book(paris(2026, 3, 10, 10), paris(2026, 3, 12, 10), item=tender)
    fleet.book(paris(2026, 3, 10, 10), paris(2026, 3, 12, 10), item=villa)
    names = [item.name for item in available_items(None, None, paris(2026, 3, 12, 12), paris(2026, 3, 14, 10))]
    assert names == ["Riva tender"]  # the Ferrari needs 10:00 free (2 h before), the villa a whole day
    later = paris(2026, 3, 14, 10), paris(2026, 3, 15, 10)  # the villa's 24 h before starts as its block ends
    names = [item.name for item in available_items(None, fleet.location.id, *later)]
    assert names == ["Ferrari SF90 Stradale", "Riva tender", "Villa Ephrussi"]
    assert [item.name for item in available_items("yacht", None, *later)] == ["Riva tender"]
    assert available_items("jet", None, *later) == [] and available_items(None, fleet.location.id + 1, *later) == []
    db.session.add(Blackout(item=tender, starts_at=paris(2026, 3, 15, 9), ends_at=paris(2026, 3, 16), reason="Hull"))
    db.session.commit()
    assert available_items("yacht", None, *later) == []


def test_available_items_agrees_with_a_brute_force_check_on_random_calendars(fleet):
    rng = random.Random(20260312)
    locations = [fleet.location, make_location("LON", "Europe/London", "GBP")]
    items = [fleet.ferrari] + [
        make_item(rng.choice(locations), f"Item {n:02d}", before=rng.choice([0, 0, 1, 2, 6, 24]),
                  after=rng.choice([0, 1, 4, 4, 12, 48]), category=rng.choice(["car", "yacht", "jet", "property"]),
                  status=rng.choice(["active"] * 4 + ["maintenance", "retired"]))
        for n in range(15)
    ]
    db.session.add_all(locations + items)
    db.session.commit()
    origin = datetime(2026, 6, 1, tzinfo=UTC)
    bookings = _random_bookings(rng, items, fleet.customer, origin, count=300)
    blackouts = [Blackout(item=rng.choice(items), reason="Service", starts_at=(start := _random_time(rng, origin)),
                          ends_at=start + timedelta(hours=rng.randint(1, 96))) for _ in range(25)]
    db.session.add_all(blackouts)
    db.session.commit()
    for _ in range(150):
        category = rng.choice([None, "car", "yacht", "jet", "property"])
        location_id = rng.choice([None, *(loc.id for loc in locations)])
        starts = _random_time(rng, origin)
        ends = starts + timedelta(hours=rng.randint(1, 24 * 6))
        expected = {item.id for item in items if _brute_force_free(item, category, location_id, starts, ends,
                                                                   bookings, blackouts)}
        assert {item.id for item in available_items(category, location_id, starts, ends)} == expected


def _random_time(rng: random.Random, origin: datetime) -> datetime:
    return origin + timedelta(minutes=30 * rng.randint(0, 2 * 24 * 60))


def _random_bookings(rng: random.Random, items: list[Item], customer: Customer, origin: datetime,
                     count: int) -> list[Booking]:
    """Bookings in every state; a blocking one that would overlap (impossible in real data) is made cancelled."""
    made: list[Booking] = []
    for n in range(count):
        item = rng.choice(items)
        starts = _random_time(rng, origin)
        ends = starts + timedelta(hours=rng.randint(1, 24 * 5))
        block = block_range(item, starts, ends)
        status = rng.choice(list(BookingStatus))
        if status in BLOCKING_STATUSES and any(_overlaps(block, (b.block_starts_at, b.block_ends_at))
                                               for b in made if b.item is item and b.is_blocking):
            status = BookingStatus.CANCELLED
        made.append(Booking(reference=f"MID-T{n:05d}", checkout_token=f"token-{n}", customer=customer, item=item,
                            status=status.value, starts_at=starts, ends_at=ends, block_starts_at=block[0],
                            block_ends_at=block[1], currency=item.currency, total_amount=0))
        db.session.add(made[-1])
    return made


def _overlaps(a: tuple[datetime, datetime], b: tuple[datetime, datetime]) -> bool:
    return a[0] < b[1] and b[0] < a[1]


def _brute_force_free(item: Item, category, location_id, starts, ends, bookings, blackouts) -> bool:
    if item.status != "active" or (category and item.category != category) or (
            location_id and item.location_id != location_id):
        return False
    block = block_range(item, starts, ends)
    return not any(b.item is item and b.is_blocking and _overlaps(block, (b.block_starts_at, b.block_ends_at))
                   for b in bookings) and not any(
        o.item is item and _overlaps(block, (o.starts_at, o.ends_at)) for o in blackouts)


# Properties and races -------------------------------------------------------------------------------------------------

attempts = st.lists(
    st.tuples(st.integers(0, 1), st.integers(0, 24 * 20), st.integers(1, 24 * 4), st.booleans()),
    min_size=1, max_size=12,
)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(attempts=attempts)
def test_no_two_blocking_bookings_of_an_item_ever_overlap(fleet, attempts):
    """Random attempts (some later cancelled) succeed exactly when a model calendar says the slot is free."""
    items = _two_items(fleet)
    _clear_bookings()
    model: dict[int, list[tuple[datetime, datetime]]] = {item.id: [] for item in items}
    origin = datetime(2026, 9, 1, tzinfo=UTC)
    for index, offset, hours, cancel in attempts:
        item = items[index]
        starts = origin + timedelta(hours=offset)
        block = block_range(item, starts, starts + timedelta(hours=hours))
        free = not any(_overlaps(block, taken) for taken in model[item.id])
        try:
            booking = fleet.book(starts, starts + timedelta(hours=hours), item=item)
        except BookingConflict:
            assert not free
            continue
        assert free
        if cancel:
            booking.status = BookingStatus.CANCELLED.value
            db.session.commit()
        else:
            model[item.id].append(block)
    for item in items:
        blocking = db.session.scalars(select(Booking).where(
            Booking.item_id == item.id, Booking.status.in_([s.value for s in BLOCKING_STATUSES]))).all()
        blocks = [(b.block_starts_at, b.block_ends_at) for b in blocking]
        assert all((b.block_starts_at, b.block_ends_at) == block_range(item, b.starts_at, b.ends_at) for b in blocking)
        assert not any(_overlaps(a, b) for i, a in enumerate(blocks) for b in blocks[i + 1:])


def _two_items(fleet: Fleet) -> list[Item]:
    tender = db.session.scalar(select(Item).where(Item.name == "Riva tender"))
    if tender is None:
        tender = make_item(fleet.location, "Riva tender", before=0, after=1, category="yacht")
        db.session.add(tender)
        db.session.commit()
    return [fleet.ferrari, tender]


def _clear_bookings() -> None:
    # Bookings leave audit entries and outbox messages behind; only their own rows must go.
    db.session.execute(delete(Notification))
    db.session.execute(delete(BookingLine))
    db.session.execute(delete(Booking))
    db.session.commit()


@pytest.mark.reliability
def test_twenty_concurrent_bookings_of_one_item_yield_exactly_one(app, fleet):
    ids = fleet.concierge.id, fleet.customer.id, fleet.ferrari.id
    db.session.commit()
    barrier = threading.Barrier(20)
    outcomes: list[tuple[str, str]] = []

    def attempt(n: int) -> None:
        with app.app_context():
            try:
                barrier.wait(timeout=30)
                actor = db.session.get(StaffUser, ids[0])
                starts = paris(2026, 7, 1, 10) + timedelta(hours=n)  # every period overlaps every other
                booking = create_booking(actor, ids[1], ids[2], starts, starts + timedelta(days=3))
                outcomes.append(("booked", booking.reference))
            except BookingConflict as exc:
                outcomes.append(("conflict", str(exc)))
            except Exception as exc:  # any other outcome fails the test below, with its reason
                outcomes.append(("error", repr(exc)))
            finally:
                db.session.remove()

    threads = [threading.Thread(target=attempt, args=(n,)) for n in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(thread.is_alive() for thread in threads)
    assert [message for kind, message in outcomes if kind == "error"] == []
    booked = [reference for kind, reference in outcomes if kind == "booked"]
    conflicts = [message for kind, message in outcomes if kind == "conflict"]
    assert len(booked) == 1 and len(conflicts) == 19
    assert all(f"booking {booked[0]} (" in message for message in conflicts)
    assert db.session.scalars(select(Booking.reference)).all() == booked
