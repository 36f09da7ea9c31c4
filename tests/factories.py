"""Small builders for test data: a location, an item, a customer, a booking — valid by default."""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta

from midas.extensions import db
from midas.models import Booking, Customer, Item, Location, utcnow


def location(code: str = "LON", **fields) -> Location:
    """The location with this code, made if it does not exist yet."""
    existing = db.session.query(Location).filter_by(code=code).one_or_none()
    if existing is not None:
        return existing
    defaults = {"name": "London Mayfair", "city": "London", "country": "GB", "timezone": "Europe/London",
                "currency": "GBP", "tax_rate_bp": 2000, "service_fee_bp": 500}
    loc = Location(code=code, **{**defaults, **fields})
    db.session.add(loc)
    db.session.commit()
    return loc


def item(loc: Location | None = None, **fields) -> Item:
    loc = loc or location()
    defaults = {"category": "car", "name": "Ferrari SF90 Stradale", "daily_rate": 180000, "security_deposit": 500000,
                "insurance_rate_bp": 800, "buffer_before_hours": 2, "buffer_after_hours": 2, "min_days": 1}
    new = Item(location=loc, currency=loc.currency, **{**defaults, **fields})
    db.session.add(new)
    db.session.commit()
    return new


def customer(**fields) -> Customer:
    defaults = {"name": "Grace Hopper", "email": f"grace-{secrets.token_hex(3)}@example.com", "tier": "standard"}
    new = Customer(**{**defaults, **fields})
    db.session.add(new)
    db.session.commit()
    return new


def booking(on_item: Item, starts_at: datetime | None = None, days: int = 3, status: str = "confirmed",
            who: Customer | None = None) -> Booking:
    """A booking inserted directly (not through the booking service), for reading screens."""
    starts_at = starts_at or utcnow() + timedelta(days=7)
    ends_at = starts_at + timedelta(days=days)
    new = Booking(
        reference=f"MID-{secrets.token_hex(3).upper()}", checkout_token=secrets.token_urlsafe(24),
        customer=who or customer(), item=on_item, status=status, starts_at=starts_at, ends_at=ends_at,
        block_starts_at=starts_at - timedelta(hours=on_item.buffer_before_hours),
        block_ends_at=ends_at + timedelta(hours=on_item.buffer_after_hours), currency=on_item.currency,
        total_amount=on_item.daily_rate * days, deposit_amount=on_item.security_deposit,
    )
    db.session.add(new)
    db.session.commit()
    return new
