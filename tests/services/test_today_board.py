"""The "today" board: pickups and returns of each location's own local day."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from midas.extensions import db
from midas.services.today import today_board
from tests import factories

NOW = datetime(2026, 3, 10, 10, 0, tzinfo=UTC)  # 19:00 in Tokyo, 10:00 in London


def tokyo():
    return factories.location("TYO", name="Tokyo Ginza", city="Tokyo", country="JP", timezone="Asia/Tokyo",
                              currency="JPY")


def booking(location, starts_at: datetime, status: str = "confirmed", hours: int = 24):
    """A booking of its own item (so none overlaps another), lasting `hours`."""
    made = factories.booking(factories.item(location, name=f"Item {starts_at:%d %H%M} {status}"), starts_at,
                             days=1, status=status)
    made.ends_at = made.starts_at + timedelta(hours=hours)
    made.block_ends_at = made.ends_at
    db.session.commit()
    return made


def board_of(code: str):
    return next(day for day in today_board(NOW) if day.location.code == code)


def test_a_booking_at_2330_utc_is_tomorrow_in_tokyo_but_today_in_london(app):
    london = factories.location()
    tokyo_late = booking(tokyo(), datetime(2026, 3, 10, 23, 30, tzinfo=UTC))
    london_late = booking(london, datetime(2026, 3, 10, 23, 30, tzinfo=UTC))
    tokyo_morning = booking(tokyo(), datetime(2026, 3, 10, 1, 0, tzinfo=UTC))  # 10:00 in Tokyo
    tokyo_day, london_day = board_of("TYO"), board_of("LON")
    assert tokyo_day.day.isoformat() == "2026-03-10" and london_day.day.isoformat() == "2026-03-10"
    assert [b.reference for b in tokyo_day.pickups] == [tokyo_morning.reference]
    assert tokyo_late not in tokyo_day.pickups
    assert [b.reference for b in london_day.pickups] == [london_late.reference]


def test_local_today_follows_the_location_clock(app):
    tokyo()
    late_evening = datetime(2026, 3, 10, 16, 0, tzinfo=UTC)  # already 11 March, 01:00, in Tokyo
    assert next(day for day in today_board(late_evening)).day.isoformat() == "2026-03-11"


def test_returns_are_bookings_out_with_the_customer_ending_today(app):
    loc = tokyo()
    due = booking(loc, datetime(2026, 3, 8, 14, 0, tzinfo=UTC), "in_progress", hours=48)  # ends 23:00 local
    booking(loc, datetime(2026, 3, 8, 15, 30, tzinfo=UTC), "in_progress", hours=48)  # ends 00:30 tomorrow
    booking(loc, datetime(2026, 3, 8, 9, 0, tzinfo=UTC), "completed", hours=48)  # already back
    assert [b.reference for b in board_of("TYO").returns] == [due.reference]


def test_only_confirmed_bookings_are_pickups(app):
    loc = tokyo()
    confirmed = booking(loc, datetime(2026, 3, 10, 3, 0, tzinfo=UTC))
    for status in ("pending_payment", "quote", "cancelled", "in_progress"):
        booking(loc, datetime(2026, 3, 10, 2, 0, tzinfo=UTC), status)
    assert [b.reference for b in board_of("TYO").pickups] == [confirmed.reference]


def test_pickups_are_in_time_order(app):
    loc = factories.location()
    later = booking(loc, datetime(2026, 3, 10, 15, 0, tzinfo=UTC))
    earlier = booking(loc, datetime(2026, 3, 10, 8, 0, tzinfo=UTC))
    assert [b.reference for b in board_of("LON").pickups] == [earlier.reference, later.reference]
