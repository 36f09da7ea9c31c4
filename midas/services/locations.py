"""Locations and their season rules: where the fleet is and what each place adds to a price."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from zoneinfo import available_timezones

from sqlalchemy import select

from midas.extensions import db
from midas.models import Category, Item, Location, Role, SeasonRule, StaffUser
from midas.services import InvalidInput, NotFound, audit
from midas.services.auth import require_role

# Currencies the house trades in (Stripe supports them all); the list is deliberately short.
CURRENCIES = ("AED", "AUD", "BHD", "CAD", "CHF", "EUR", "GBP", "HKD", "JPY", "KRW", "KWD", "MXN", "QAR", "SAR",
              "SGD", "THB", "USD")
LOCATION_FIELDS = ["code", "name", "city", "country", "timezone", "currency", "tax_rate_bp", "service_fee_bp"]
SEASON_FIELDS = ["name", "location_id", "category", "starts_on", "ends_on", "multiplier_bp", "priority"]


@dataclass
class LocationInput:
    code: str
    name: str
    city: str
    country: str
    timezone: str
    currency: str
    tax_rate_bp: int = 0
    service_fee_bp: int = 0


def list_locations() -> list[Location]:
    return list(db.session.scalars(select(Location).order_by(Location.name)))


def get_location(location_id: int) -> Location:
    location = db.session.get(Location, location_id)
    if location is None:
        raise NotFound("No such location.")
    return location


def save_location(actor: StaffUser, data: LocationInput, location_id: int | None = None) -> Location:
    """Create or change a location (owner only); its currency is fixed once items are priced in it."""
    require_role(actor, Role.OWNER)
    location = get_location(location_id) if location_id else Location()
    _check_location(data, location)
    return _save(actor, location, data, LOCATION_FIELDS, "location")


def _check_location(data: LocationInput, location: Location) -> None:
    data.code, data.currency, data.country = data.code.strip().upper(), data.currency.upper(), data.country.upper()
    if not data.code.isalnum() or not 2 <= len(data.code) <= 8:
        raise InvalidInput("Use 2 to 8 letters or digits, e.g. LON.", "code")
    clash = db.session.scalar(select(Location.id).where(Location.code == data.code, Location.id != location.id))
    if clash:
        raise InvalidInput(f"Another location already uses the code {data.code}.", "code")
    if data.timezone not in available_timezones():
        raise InvalidInput(f"{data.timezone!r} is not an IANA time zone such as Europe/London.", "timezone")
    if data.currency not in CURRENCIES:
        raise InvalidInput(f"Choose one of {', '.join(CURRENCIES)}.", "currency")
    if location.id and data.currency != location.currency and _has_items(location.id):
        raise InvalidInput("Items are priced in this location's currency: it can't change now.", "currency")
    for name in ("tax_rate_bp", "service_fee_bp"):
        if not 0 <= getattr(data, name) <= 10000:
            raise InvalidInput("Between 0 and 10,000 basis points (100%).", name)


def _has_items(location_id: int) -> bool:
    return db.session.scalar(select(Item.id).where(Item.location_id == location_id).limit(1)) is not None


@dataclass
class SeasonInput:
    name: str
    starts_on: date
    ends_on: date
    multiplier_bp: int
    location_id: int | None = None
    category: str | None = None
    priority: int = 0


def list_seasons() -> list[SeasonRule]:
    return list(db.session.scalars(select(SeasonRule).order_by(SeasonRule.starts_on, SeasonRule.id)))


def save_season(actor: StaffUser, data: SeasonInput, season_id: int | None = None) -> SeasonRule:
    """Create or change a season rule (owner only): a price multiplier over a date range."""
    require_role(actor, Role.OWNER)
    rule = get_season(season_id) if season_id else SeasonRule()
    _check_season(data)
    return _save(actor, rule, data, SEASON_FIELDS, "season", entity_type="season_rule")


def _save(actor: StaffUser, record, data, fields: list[str], noun: str, entity_type: str | None = None):
    """Copy the checked fields onto a new or existing record, audit before and after, commit."""
    existing = record.id is not None
    before = audit.snapshot(record, fields) if existing else None
    for name in fields:
        setattr(record, name, getattr(data, name))
    db.session.add(record)
    db.session.flush()
    audit.record(f"{noun}.{'changed' if existing else 'created'}", entity_type or noun, record.id, actor=actor,
                 before=before, after=audit.snapshot(record, fields))
    db.session.commit()
    return record


def delete_season(actor: StaffUser, season_id: int) -> None:
    require_role(actor, Role.OWNER)
    rule = get_season(season_id)
    audit.record("season.deleted", "season_rule", rule.id, actor=actor, before=audit.snapshot(rule, SEASON_FIELDS))
    db.session.delete(rule)
    db.session.commit()


def get_season(season_id: int) -> SeasonRule:
    rule = db.session.get(SeasonRule, season_id)
    if rule is None:
        raise NotFound("No such season rule.")
    return rule


def _check_season(data: SeasonInput) -> None:
    if not data.name.strip():
        raise InvalidInput("Name the season, e.g. Monaco Grand Prix week.", "name")
    if data.ends_on < data.starts_on:
        raise InvalidInput("The season must end on or after its first day.", "ends_on")
    if not 1 <= data.multiplier_bp <= 100000:
        raise InvalidInput("Between 1 and 100,000 basis points (10,000 = normal price).", "multiplier_bp")
    if data.category and data.category not in Category.values():
        raise InvalidInput("Choose a category or leave it empty for all.", "category")
    if data.location_id and db.session.get(Location, data.location_id) is None:
        raise InvalidInput("Choose a location or leave it empty for all.", "location_id")
