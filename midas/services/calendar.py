"""An item's month at a glance, and how much of its time was actually sold."""

from __future__ import annotations

import calendar as cal
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import joinedload

from midas.extensions import db
from midas.models import BLOCKING_STATUSES, Blackout, Booking, BookingStatus, Item, utcnow
from midas.timeutil import day_bounds

SHOWN_STATUSES = [s.value for s in (*BLOCKING_STATUSES, BookingStatus.COMPLETED)]
# Holds awaiting payment occupy the calendar but are not sold time.
SOLD_STATUSES = [s.value for s in (BookingStatus.CONFIRMED, BookingStatus.IN_PROGRESS, BookingStatus.COMPLETED)]


@dataclass
class DayEntry:
    kind: str  # "booking", "buffer" or "blackout"
    label: str
    reference: str | None = None
    status: str | None = None


@dataclass
class Day:
    day: date
    in_month: bool
    entries: list[DayEntry] = field(default_factory=list)


def month_grid(item: Item, year: int, month: int) -> list[list[Day]]:
    """Weeks (Monday first) of the month in the item's local time, each day listing what occupies it."""
    tz = item.location.timezone
    days = [d for week in cal.Calendar().monthdatescalendar(year, month) for d in week]
    window = (day_bounds(days[0], tz)[0], day_bounds(days[-1], tz)[1])
    bookings = _bookings_between(item.id, *window, SHOWN_STATUSES)
    blackouts = _blackouts_between(item.id, *window)
    grid = [Day(d, d.month == month, _entries(d, tz, bookings, blackouts)) for d in days]
    return [grid[i:i + 7] for i in range(0, len(grid), 7)]


def _entries(day: date, tz: str, bookings: list[Booking], blackouts: list[Blackout]) -> list[DayEntry]:
    start, end = day_bounds(day, tz)
    entries = [DayEntry("blackout", b.reason) for b in blackouts if b.starts_at < end and b.ends_at > start]
    for b in bookings:
        if b.starts_at < end and b.ends_at > start:
            entries.append(DayEntry("booking", b.reference, b.reference, b.status))
        elif b.block_starts_at < end and b.block_ends_at > start:
            entries.append(DayEntry("buffer", f"Buffer · {b.reference}", b.reference, b.status))
    return entries


def _bookings_between(item_id: int, start: datetime, end: datetime, statuses: list[str]) -> list[Booking]:
    return list(db.session.scalars(
        select(Booking).where(Booking.item_id == item_id, Booking.status.in_(statuses),
                              Booking.block_starts_at < end, Booking.block_ends_at > start)
        .options(joinedload(Booking.customer)).order_by(Booking.starts_at)
    ))


def _blackouts_between(item_id: int, start: datetime, end: datetime) -> list[Blackout]:
    return list(db.session.scalars(
        select(Blackout).where(Blackout.item_id == item_id, Blackout.starts_at < end, Blackout.ends_at > start)
    ))


def utilization_bp(item: Item, days: int = 90, now: datetime | None = None) -> int | None:
    """Sold hours ÷ available hours over the last `days`, in basis points; blackouts are not available time."""
    end = now or utcnow()
    start = end - timedelta(days=days)
    sold_bookings = _bookings_between(item.id, start, end, SOLD_STATUSES)
    sold = sum(_overlap(b.starts_at, b.ends_at, start, end) for b in sold_bookings)
    dark = sum(_overlap(b.starts_at, b.ends_at, start, end) for b in _blackouts_between(item.id, start, end))
    available = (end - start).total_seconds() - dark
    if available <= 0:
        return None
    return min(10000, int(sold * 10000 // available))


def _overlap(a_start: datetime, a_end: datetime, b_start: datetime, b_end: datetime) -> float:
    return max(0.0, (min(a_end, b_end) - max(a_start, b_start)).total_seconds())


def upcoming_bookings(item_id: int, now: datetime | None = None, limit: int = 10) -> list[Booking]:
    """The next bookings that hold the item, soonest first."""
    now = now or utcnow()
    return list(db.session.scalars(
        select(Booking).where(Booking.item_id == item_id, Booking.ends_at > now,
                              Booking.status.in_([s.value for s in BLOCKING_STATUSES]))
        .options(joinedload(Booking.customer)).order_by(Booking.starts_at).limit(limit)
    ))
