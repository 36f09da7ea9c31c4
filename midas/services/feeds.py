"""Calendar feeds: an item's or a concierge's bookings as iCalendar, behind a secret URL a calendar app can poll."""

from __future__ import annotations

import hashlib
import hmac
from datetime import datetime, timedelta

from flask import current_app, url_for
from sqlalchemy import select
from sqlalchemy.orm import joinedload

from midas import ical
from midas.extensions import db
from midas.formatting import humanize
from midas.models import Blackout, Booking, BookingStatus, Item, StaffUser, utcnow
from midas.services import NotFound
from midas.services.calendar import SHOWN_STATUSES
from midas.services.keyset import MAX_ID

FEEDS = {"item": ("feeds.item", "item_id"), "staff": ("feeds.staff", "staff_id")}
HISTORY = timedelta(days=180)  # a feed carries what ended in this long, and everything ahead
TOKEN_LENGTH = 32
NO_FEED = "No such calendar feed."


def feed_token(kind: str, entity_id: int) -> str:
    """HMAC-SHA256 of "<kind>:<id>" under SECRET_KEY, hex, first 32 characters."""
    key = current_app.config["SECRET_KEY"].encode()
    return hmac.new(key, f"{kind}:{entity_id}".encode(), hashlib.sha256).hexdigest()[:TOKEN_LENGTH]


def feed_url(kind: str, entity_id: int) -> str:
    """The secret subscribe URL of an item's ("item") or a staff member's ("staff") calendar feed."""
    endpoint, argument = FEEDS[kind]
    return url_for(endpoint, **{argument: entity_id}, token=feed_token(kind, entity_id), _external=True)


def item_feed(item_id: int, token: str, now: datetime | None = None) -> str:
    """The item's bookings and maintenance as iCalendar text; NotFound for a wrong token or no such item."""
    _check_token("item", item_id, token)
    item = db.session.get(Item, item_id, options=[joinedload(Item.location)])
    if item is None:
        raise NotFound(NO_FEED)
    bookings = _bookings(Booking.item_id == item_id, now)
    blackouts = db.session.scalars(select(Blackout).where(
        Blackout.item_id == item_id, Blackout.ends_at > (now or utcnow()) - HISTORY).order_by(Blackout.starts_at))
    events = [_booking_event(b) for b in bookings] + [_blackout_event(b, item) for b in blackouts]
    return ical.calendar(f"Midas · {item.name}", events)


def staff_feed(staff_id: int, token: str, now: datetime | None = None) -> str:
    """The bookings a staff member looks after, as iCalendar text; NotFound for a wrong token or no active user."""
    _check_token("staff", staff_id, token)
    staff = db.session.get(StaffUser, staff_id)
    if staff is None or not staff.is_active:
        raise NotFound(NO_FEED)
    events = [_booking_event(b) for b in _bookings(Booking.concierge_id == staff_id, now)]
    return ical.calendar(f"Midas · {staff.name}", events)


def _check_token(kind: str, entity_id: int, token: str) -> None:
    if not 0 < entity_id <= MAX_ID or not hmac.compare_digest(feed_token(kind, entity_id).encode(), token.encode()):
        raise NotFound(NO_FEED)


def _bookings(condition, now: datetime | None) -> list[Booking]:
    since = (now or utcnow()) - HISTORY
    return list(db.session.scalars(
        select(Booking).where(condition, Booking.status.in_(SHOWN_STATUSES), Booking.ends_at > since)
        .options(joinedload(Booking.customer), joinedload(Booking.item).joinedload(Item.location))
        .order_by(Booking.starts_at, Booking.id)
    ))


def _booking_event(booking: Booking) -> ical.Event:
    location = booking.item.location
    return ical.Event(
        uid=f"booking-{booking.id}@midas", starts_at=booking.starts_at, ends_at=booking.ends_at,
        stamp=booking.updated_at, summary=f"{booking.item.name} · {booking.customer.name} ({booking.reference})",
        description=f"{booking.reference}: {humanize(booking.status)}\nCustomer: {booking.customer.name}\n"
                    f"Item: {booking.item.name}",
        location=f"{location.name}, {location.city}",
        url=url_for("bookings.show", reference=booking.reference, _external=True),
        status="TENTATIVE" if booking.status == BookingStatus.PENDING_PAYMENT else "CONFIRMED",
    )


def _blackout_event(blackout: Blackout, item: Item) -> ical.Event:
    return ical.Event(
        uid=f"blackout-{blackout.id}@midas", starts_at=blackout.starts_at, ends_at=blackout.ends_at,
        stamp=blackout.created_at, summary=f"Maintenance · {item.name}", description=blackout.reason,
        location=f"{item.location.name}, {item.location.city}",
    )
