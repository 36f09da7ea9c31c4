"""Availability: when an item is free, what is in the way when it is not, and free items for a search.

An item is busy from each blocking booking's start minus its buffer-before hours to its end plus its
buffer-after hours (stored on the booking as block_starts_at / block_ends_at) and during its
maintenance blackouts. Periods are half-open: a booking may start exactly when another one's block ends.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import case, literal, select

from midas.extensions import db
from midas.formatting import local_time
from midas.models import BLOCKING_STATUSES, Blackout, Booking, Item, ItemStatus
from midas.models.types import UTCDateTime
from midas.services import DomainError


class BookingConflict(DomainError):
    """The item is not free then: a booking or a maintenance blackout is in the way."""

    status_code = 409


def block_range(item: Item, starts_at: datetime, ends_at: datetime) -> tuple[datetime, datetime]:
    """The period widened by the item's buffer hours: the time no other booking may touch."""
    _check_period(starts_at, ends_at)
    return (starts_at - timedelta(hours=item.buffer_before_hours),
            ends_at + timedelta(hours=item.buffer_after_hours))


def conflicts_for(item_id: int, block_start: datetime, block_end: datetime,
                  exclude_booking_id: int | None = None) -> list[Booking | Blackout]:
    """Blocking bookings and blackouts of the item that overlap [block_start, block_end), earliest first."""
    bookings = select(Booking).where(
        Booking.item_id == item_id, Booking.status.in_([s.value for s in BLOCKING_STATUSES]),
        Booking.block_starts_at < block_end, Booking.block_ends_at > block_start,
    )
    if exclude_booking_id is not None:
        bookings = bookings.where(Booking.id != exclude_booking_id)
    blackouts = select(Blackout).where(
        Blackout.item_id == item_id, Blackout.starts_at < block_end, Blackout.ends_at > block_start
    )
    found = [*db.session.scalars(bookings), *db.session.scalars(blackouts)]
    return sorted(found, key=lambda c: c.block_starts_at if isinstance(c, Booking) else c.starts_at)


def ensure_free(item: Item, block_start: datetime, block_end: datetime,
                exclude_booking_id: int | None = None) -> None:
    """Raise BookingConflict, naming what is in the way, unless the item is free for the whole block."""
    conflicts = conflicts_for(item.id, block_start, block_end, exclude_booking_id)
    if conflicts:
        raise BookingConflict(conflict_message(item, conflicts))


def conflict_message(item: Item, conflicts: list[Booking | Blackout]) -> str:
    """'Ferrari SF90 is not free then: booking MID-7KQ3X9 (12 Mar 10:00 – 15 Mar 10:00 CET, …) overlaps.'"""
    zone = item.location.timezone
    reasons = [
        f"booking {c.reference} ({_span(c.block_starts_at, c.block_ends_at, zone)}, buffers included) overlaps"
        if isinstance(c, Booking) else f"maintenance ({c.reason}, {_span(c.starts_at, c.ends_at, zone)}) overlaps"
        for c in conflicts
    ]
    return f"{item.name} is not free then: {'; '.join(reasons)}."


def _span(start: datetime, end: datetime, zone: str) -> str:
    first, last = local_time(start, zone, "%d %b %H:%M"), local_time(end, zone, "%d %b %H:%M")
    first_text, _, first_zone = first.rpartition(" ")
    # The zone is named once, unless a DST change falls in between (CET → CEST).
    return f"{first_text if last.endswith(' ' + first_zone) else first} – {last}"


def available_items(category: str | None, location_id: int | None, starts_at: datetime,
                    ends_at: datetime) -> list[Item]:
    """Active items free for the whole period with their own buffers counted, by name."""
    _check_period(starts_at, ends_at)
    filters = [Item.status == ItemStatus.ACTIVE.value]
    if category:
        filters.append(Item.category == category)
    if location_id:
        filters.append(Item.location_id == location_id)
    buffers = db.session.execute(select(Item.buffer_before_hours, Item.buffer_after_hours).where(*filters).distinct())
    befores, afters = _distinct_columns(buffers.all())
    if not befores:
        return []
    # Date arithmetic in SQL differs between SQLite and PostgreSQL, so each item's window is worked out
    # here, exactly, for each distinct buffer value (a handful, read just above) and picked per item with
    # CASE: one availability query, the same SQL on both backends, and bounds the item/period indexes can use.
    window_start = case({b: _at(starts_at - timedelta(hours=b)) for b in befores}, value=Item.buffer_before_hours)
    window_end = case({a: _at(ends_at + timedelta(hours=a)) for a in afters}, value=Item.buffer_after_hours)
    busy = select(Booking.id).where(
        Booking.item_id == Item.id, Booking.status.in_([s.value for s in BLOCKING_STATUSES]),
        Booking.block_starts_at < window_end, Booking.block_ends_at > window_start,
    )
    down = select(Blackout.id).where(
        Blackout.item_id == Item.id, Blackout.starts_at < window_end, Blackout.ends_at > window_start
    )
    # An item whose buffers changed since the first read has no window: leave it out rather than call it free.
    stmt = select(Item).where(*filters, Item.buffer_before_hours.in_(befores), Item.buffer_after_hours.in_(afters))
    return list(db.session.scalars(stmt.where(~busy.exists(), ~down.exists()).order_by(Item.name, Item.id)))


def _distinct_columns(pairs: list[tuple[int, int]]) -> tuple[list[int], list[int]]:
    return sorted({before for before, _ in pairs}), sorted({after for _, after in pairs})


def _at(moment: datetime):
    return literal(moment, UTCDateTime)


def local_period(location_timezone: str, start_date: date, end_date: date, hour: int = 10) -> tuple[datetime, datetime]:
    """From local dates (hand-over at `hour` in the location's zone) to aware UTC times, DST included."""
    if end_date <= start_date:
        raise DomainError("The end date must be after the start date.")
    zone = ZoneInfo(location_timezone)
    return tuple(datetime.combine(day, time(hour), tzinfo=zone).astimezone(UTC) for day in (start_date, end_date))


def _check_period(starts_at: datetime, ends_at: datetime) -> None:
    if starts_at.tzinfo is None or ends_at.tzinfo is None:
        raise DomainError("Rental times must carry a time zone (a naive time is ambiguous).")
    if ends_at <= starts_at:
        raise DomainError("The end of the rental must be after its start.")
