"""The "today" board: each location's pickups and returns for its own local day."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import select
from sqlalchemy.orm import contains_eager, joinedload

from midas.extensions import db
from midas.models import Booking, BookingStatus, Item, Location, utcnow
from midas.timeutil import day_bounds, to_local


@dataclass
class LocationDay:
    location: Location
    day: date  # today at the location
    pickups: list[Booking]  # confirmed bookings starting today
    returns: list[Booking]  # bookings out with the customer that end today


def today_board(now: datetime | None = None) -> list[LocationDay]:
    """Every location's local today, with the bookings handed over and coming back during it."""
    now = now or utcnow()
    return [_location_day(location, now)
            for location in db.session.scalars(select(Location).order_by(Location.name))]


def _location_day(location: Location, now: datetime) -> LocationDay:
    day = to_local(now, location.timezone).date()
    start, end = day_bounds(day, location.timezone)
    pickups = _bookings(location.id, BookingStatus.CONFIRMED, Booking.starts_at, start, end)
    returns = _bookings(location.id, BookingStatus.IN_PROGRESS, Booking.ends_at, start, end)
    return LocationDay(location, day, pickups, returns)


def _bookings(location_id: int, status: BookingStatus, column, start: datetime, end: datetime) -> list[Booking]:
    return list(db.session.scalars(
        select(Booking).join(Booking.item)
        .where(Item.location_id == location_id, Booking.status == status.value, column >= start, column < end)
        .options(contains_eager(Booking.item), joinedload(Booking.customer))
        .order_by(column, Booking.id)
    ))
