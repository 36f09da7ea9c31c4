"""A month across the fleet: one row per item, one column per day, each cell what occupies the item that day."""

from __future__ import annotations

import calendar as cal
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime
from functools import lru_cache

from sqlalchemy import false, select
from sqlalchemy.orm import joinedload

from midas.extensions import db
from midas.models import Blackout, Booking, Category, Item, ItemStatus
from midas.services.calendar import SHOWN_STATUSES
from midas.services.keyset import MAX_ID
from midas.timeutil import day_bounds


@dataclass
class Entry:
    kind: str  # "booking" or "blackout"
    label: str
    title: str  # the longer description a tooltip shows
    reference: str | None = None
    status: str | None = None


@dataclass
class ItemRow:
    item: Item
    cells: list[list[Entry]] = field(default_factory=list)  # one list per day of the month


@dataclass
class FleetMonth:
    first: date
    days: list[date]
    rows: list[ItemRow]

    @property
    def prev_month(self) -> str:
        return shift_month(self.first, -1)

    @property
    def next_month(self) -> str:
        return shift_month(self.first, 1)


def fleet_month(first: date, location_id: int | None = None, category: str = "") -> FleetMonth:
    """Bookings (holding the item, or completed) and maintenance of every item in service, day by day."""
    days = [date(first.year, first.month, d) for d in range(1, cal.monthrange(first.year, first.month)[1] + 1)]
    items = _items(location_id, category)
    zones = {item.location.timezone for item in items} or {"UTC"}
    start = min(_bounds(days[0], tz)[0] for tz in zones)
    end = max(_bounds(days[-1], tz)[1] for tz in zones)
    ids = [item.id for item in items]
    bookings, blackouts = _bookings(ids, start, end), _blackouts(ids, start, end)
    rows = [ItemRow(item, [_entries(day, item, bookings[item.id], blackouts[item.id]) for day in days])
            for item in items]
    return FleetMonth(days[0], days, rows)


def shift_month(first: date, months: int) -> str:
    """'YYYY-MM' of the month `months` after (or before) `first`."""
    index = first.year * 12 + first.month - 1 + months
    return f"{index // 12:04d}-{index % 12 + 1:02d}"


def _items(location_id: int | None, category: str) -> list[Item]:
    stmt = select(Item).where(Item.status != ItemStatus.RETIRED.value).options(joinedload(Item.location))
    if location_id is not None:
        stmt = stmt.where(Item.location_id == location_id) if 0 < location_id <= MAX_ID else stmt.where(false())
    if category in Category.values():
        stmt = stmt.where(Item.category == category)
    return list(db.session.scalars(stmt.order_by(Item.location_id, Item.category, Item.name, Item.id)))


def _bookings(item_ids: list[int], start: datetime, end: datetime) -> dict[int, list[Booking]]:
    found = db.session.scalars(
        select(Booking).where(Booking.item_id.in_(item_ids), Booking.status.in_(SHOWN_STATUSES),
                              Booking.starts_at < end, Booking.ends_at > start)
        .options(joinedload(Booking.customer)).order_by(Booking.starts_at, Booking.id)
    )
    return _by_item(found)


def _blackouts(item_ids: list[int], start: datetime, end: datetime) -> dict[int, list[Blackout]]:
    found = db.session.scalars(
        select(Blackout).where(Blackout.item_id.in_(item_ids), Blackout.starts_at < end, Blackout.ends_at > start)
        .order_by(Blackout.starts_at, Blackout.id)
    )
    return _by_item(found)


def _by_item(rows) -> dict[int, list]:
    grouped: dict[int, list] = defaultdict(list)
    for row in rows:
        grouped[row.item_id].append(row)
    return grouped


def _entries(day: date, item: Item, bookings: list[Booking], blackouts: list[Blackout]) -> list[Entry]:
    start, end = _bounds(day, item.location.timezone)
    entries = [Entry("blackout", "Maintenance", f"Maintenance · {b.reason}")
               for b in blackouts if b.starts_at < end and b.ends_at > start]
    entries += [Entry("booking", b.reference, f"{b.reference} · {b.customer.name} · {b.status}", b.reference,
                      b.status)
                for b in bookings if b.starts_at < end and b.ends_at > start]
    return entries


@lru_cache(maxsize=4096)  # the same few zones and days, for every item row
def _bounds(day: date, tz: str) -> tuple[datetime, datetime]:
    return day_bounds(day, tz)
