"""The new-booking flow as a concierge walks it: customer, place and dates, a free item, the live price."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import select

from midas.extensions import db
from midas.models import Booking, Customer, Item, Location, StaffUser
from midas.services import DomainError, availability, bookings, pricing
from midas.services.listing import matches
from midas.timeutil import localize


@dataclass
class Draft:
    """What the form holds so far; times are local to the chosen location."""

    customer_id: int | None = None
    location_id: int | None = None
    category: str | None = None
    local_start: datetime | None = None
    local_end: datetime | None = None
    item_id: int | None = None
    notes: str = ""
    special_requests: str = ""


@dataclass
class Options:
    """What the form can offer next: the chosen customer, free items, and the price of the chosen one."""

    customer: Customer | None = None
    location: Location | None = None
    items: list[Item] = field(default_factory=list)
    quote: pricing.Quote | None = None
    problem: str | None = None


def locations() -> list[Location]:
    return list(db.session.scalars(select(Location).order_by(Location.name)))


def find_customers(text: str, limit: int = 8) -> list[Customer]:
    """Customers whose name, email or phone contains `text` (two characters at least)."""
    if len(text.strip()) < 2:
        return []
    stmt = select(Customer).where(Customer.erased_at.is_(None), matches(text, Customer.name, Customer.email,
                                                                           Customer.phone))
    return list(db.session.scalars(stmt.order_by(Customer.name).limit(limit)))


def options(draft: Draft) -> Options:
    """Free items for the period and, once an item is chosen, its price for this customer's tier."""
    found = Options(customer=_get(Customer, draft.customer_id), location=_get(Location, draft.location_id))
    if not (found.location and draft.local_start and draft.local_end):
        return found
    try:
        starts_at, ends_at = _period(found.location, draft)
        found.items = availability.available_items(draft.category, found.location.id, starts_at, ends_at)
        if draft.item_id in {item.id for item in found.items}:
            tier = found.customer.tier if found.customer else "standard"
            found.quote = pricing.quote_for_item(draft.item_id, starts_at, ends_at, tier)
    except DomainError as exc:
        found.problem = str(exc)
    return found


def create_from_form(actor: StaffUser, draft: Draft, status: str) -> Booking:
    """Create the booking the form describes (the booking service re-checks everything under its lock)."""
    location = _get(Location, draft.location_id)
    if location is None:
        raise DomainError("Choose a location.")
    item = _get(Item, draft.item_id)
    if item is None or item.location_id != location.id:
        raise DomainError("Choose one of the available items at this location.")
    starts_at, ends_at = _period(location, draft)
    return bookings.create_booking(actor, draft.customer_id, item.id, starts_at, ends_at, status=status,
                                   notes=draft.notes, special_requests=draft.special_requests)


def _get(model, ident: int | None):
    """A row by id, or None for ids no row can have (typed into a URL, or beyond a 32-bit key)."""
    return db.session.get(model, ident) if isinstance(ident, int) and 0 < ident < 2**31 else None


def _period(location: Location, draft: Draft) -> tuple[datetime, datetime]:
    starts_at, ends_at = localize(draft.local_start, location.timezone), localize(draft.local_end, location.timezone)
    if ends_at <= starts_at:
        raise DomainError("The return must be after the pick-up.")
    return starts_at, ends_at
