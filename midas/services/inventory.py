"""The fleet: finding, creating and changing items, and their maintenance blackouts."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime

from sqlalchemy import Select, func, select
from sqlalchemy.orm import joinedload

from midas.extensions import db
from midas.models import Blackout, Booking, Category, Item, ItemStatus, Location, Role, StaffUser
from midas.money import parse_major
from midas.services import InvalidInput, NotFound, audit
from midas.services.auth import require_role
from midas.services.listing import Page, matches, order_by, paginate
from midas.timeutil import localize

ITEM_FIELDS = ["name", "category", "location_id", "currency", "daily_rate", "security_deposit", "insurance_rate_bp",
               "buffer_before_hours", "buffer_after_hours", "min_days", "status", "description", "specs"]
MAX_AMOUNT = 10**12  # minor units; anything larger is a typo, not a supercar

SORTS = {"name": Item.name, "category": Item.category, "daily_rate": Item.daily_rate, "status": Item.status}


@dataclass
class ItemFilters:
    q: str = ""
    category: str = ""
    location_id: int | None = None
    status: str = ""
    sort: str = "name"
    page: int = 1


def list_items(filters: ItemFilters) -> tuple[Page, str]:
    """One page of the fleet under the filters, with each item's location loaded."""
    stmt = item_query(filters).options(joinedload(Item.location))
    return paginate(stmt, filters.page), _sort_key(filters.sort)


def item_query(filters: ItemFilters) -> Select:
    """Every item matching the filters, in the list's order (the list, the export and bulk changes share it)."""
    stmt = select(Item)
    if filters.q:
        stmt = stmt.where(matches(filters.q, Item.name))
    if filters.category in Category.values():
        stmt = stmt.where(Item.category == filters.category)
    if filters.location_id:
        stmt = stmt.where(Item.location_id == filters.location_id)
    if filters.status in ItemStatus.values():
        stmt = stmt.where(Item.status == filters.status)
    stmt, _ = order_by(stmt, filters.sort, SORTS, "name", Item.id)
    return stmt


def _sort_key(sort: str) -> str:
    return sort if sort and sort.lstrip("-") in SORTS else "name"


def category_counts() -> dict[str, int]:
    rows = db.session.execute(select(Item.category, func.count()).group_by(Item.category))
    return {category: count for category, count in rows}


def bookable_items(location_id: int) -> list[Item]:
    """Active items at a location, by name (what a booking may move to)."""
    return list(db.session.scalars(select(Item).where(Item.location_id == location_id,
                                                      Item.status == ItemStatus.ACTIVE.value).order_by(Item.name)))


def list_locations() -> list[Location]:
    return list(db.session.scalars(select(Location).order_by(Location.name)))


def get_item(item_id: int) -> Item:
    item = db.session.get(Item, item_id, options=[joinedload(Item.location)])
    if item is None:
        raise NotFound("No such item.")
    return item


@dataclass
class ItemInput:
    """An item as typed by staff: amounts in major units of the location's currency."""

    name: str
    category: str
    location_id: int
    daily_rate: str
    security_deposit: str = "0"
    insurance_rate_bp: int = 0
    buffer_before_hours: int = 0
    buffer_after_hours: int = 0
    min_days: int = 1
    status: str = ItemStatus.ACTIVE.value
    description: str = ""
    specs: dict = field(default_factory=dict)


def create_item(actor: StaffUser, data: ItemInput) -> Item:
    """Add an item to the fleet (admin or owner); its currency is its location's."""
    require_role(actor, Role.ADMIN)
    item = Item()
    _apply(item, data)
    db.session.add(item)
    db.session.flush()
    audit.record("item.created", "item", item.id, actor=actor, after=audit.snapshot(item, ITEM_FIELDS))
    db.session.commit()
    return item


def update_item(actor: StaffUser, item_id: int, data: ItemInput) -> Item:
    """Change an item's details (admin or owner), audited with before and after."""
    require_role(actor, Role.ADMIN)
    item = get_item(item_id)
    before = audit.snapshot(item, ITEM_FIELDS)
    _apply(item, data)
    audit.record("item.updated", "item", item.id, actor=actor, before=before, after=audit.snapshot(item, ITEM_FIELDS))
    db.session.commit()
    return item


def set_status(actor: StaffUser, item_id: int, status: str) -> Item:
    """Move an item between active, maintenance and retired (admin or owner)."""
    require_role(actor, Role.ADMIN)
    if status not in ItemStatus.values():
        raise InvalidInput(f"Unknown status {status!r}.", "status")
    item = get_item(item_id)
    before = item.status
    item.status = status
    audit.record("item.status_changed", "item", item.id, actor=actor, before={"status": before},
                 after={"status": status})
    db.session.commit()
    return item


def _apply(item: Item, data: ItemInput) -> None:
    location = db.session.get(Location, data.location_id)
    if location is None:
        raise InvalidInput("Choose a location.", "location_id")
    if data.category not in Category.values():
        raise InvalidInput("Choose a category.", "category")
    if data.status not in ItemStatus.values():
        raise InvalidInput("Choose a status.", "status")
    item.daily_rate = _amount(data.daily_rate, location.currency, "daily_rate", minimum=1)
    item.security_deposit = _amount(data.security_deposit, location.currency, "security_deposit", minimum=0)
    item.name = data.name.strip()
    item.category, item.status, item.location, item.currency = data.category, data.status, location, location.currency
    item.insurance_rate_bp, item.min_days = data.insurance_rate_bp, data.min_days
    item.buffer_before_hours, item.buffer_after_hours = data.buffer_before_hours, data.buffer_after_hours
    item.description, item.specs = data.description.strip(), dict(data.specs)
    if not item.name:
        raise InvalidInput("A name is required.", "name")


def _amount(text: str, currency: str, field_name: str, minimum: int) -> int:
    try:
        amount = parse_major(text, currency)
    except ValueError as exc:
        raise InvalidInput(f"{text!r} is not an amount in {currency}.", field_name) from exc
    if not minimum <= amount <= MAX_AMOUNT:
        raise InvalidInput("Must be more than zero." if minimum else "Cannot be negative.", field_name)
    return amount


def add_blackout(actor: StaffUser, item_id: int, local_start: datetime, local_end: datetime, reason: str) -> Blackout:
    """Take an item out of service for a period typed in its location's local time."""
    require_role(actor, Role.ADMIN)
    item = get_item(item_id)
    blackout = Blackout(item_id=item.id, created_by_id=actor.id)
    _place_blackout(blackout, item, local_start, local_end, reason)
    db.session.add(blackout)
    db.session.flush()
    audit.record("blackout.added", "item", item.id, actor=actor, after=_blackout_facts(blackout))
    db.session.commit()
    return blackout


def update_blackout(actor: StaffUser, blackout_id: int, local_start: datetime, local_end: datetime,
                    reason: str) -> Blackout:
    require_role(actor, Role.ADMIN)
    blackout = get_blackout(blackout_id)
    before = _blackout_facts(blackout)
    _place_blackout(blackout, blackout.item, local_start, local_end, reason)
    audit.record("blackout.changed", "item", blackout.item_id, actor=actor, before=before,
                 after=_blackout_facts(blackout))
    db.session.commit()
    return blackout


def remove_blackout(actor: StaffUser, blackout_id: int) -> Item:
    require_role(actor, Role.ADMIN)
    blackout = get_blackout(blackout_id)
    item = blackout.item
    audit.record("blackout.removed", "item", item.id, actor=actor, before=_blackout_facts(blackout))
    db.session.delete(blackout)
    db.session.commit()
    return item


def get_blackout(blackout_id: int) -> Blackout:
    blackout = db.session.get(Blackout, blackout_id)
    if blackout is None:
        raise NotFound("No such blackout.")
    return blackout


def _place_blackout(blackout: Blackout, item: Item, local_start: datetime, local_end: datetime, reason: str) -> None:
    from midas.services.availability import conflicts_for

    starts_at, ends_at = localize(local_start, item.location.timezone), localize(local_end, item.location.timezone)
    if ends_at <= starts_at:
        raise InvalidInput("The blackout must end after it starts.", "ends_at")
    if not reason.strip():
        raise InvalidInput("Say why the item is out of service.", "reason")
    clashes = [c for c in conflicts_for(item.id, starts_at, ends_at) if isinstance(c, Booking)]
    if clashes:
        refs = ", ".join(booking.reference for booking in clashes)
        raise InvalidInput(f"This period overlaps booking{'s' if len(clashes) > 1 else ''} {refs}: "
                           "move or cancel them first.", "starts_at")
    blackout.starts_at, blackout.ends_at, blackout.reason = starts_at, ends_at, reason.strip()


def _blackout_facts(blackout: Blackout) -> dict:
    return {"starts_at": blackout.starts_at, "ends_at": blackout.ends_at, "reason": blackout.reason}


@dataclass
class AvailabilitySearch:
    category: str = ""
    location_id: int | None = None
    starts_on: date | None = None
    ends_on: date | None = None


@dataclass
class AvailabilityResult:
    items: list[Item] = field(default_factory=list)
    problem: str | None = None
    searched: bool = False


def search_available(search: AvailabilitySearch) -> AvailabilityResult:
    """Items free over the local dates at one location (day boundaries in its zone), or why none can be shown."""
    from midas.services import DomainError, availability

    location = db.session.get(Location, search.location_id) if search.location_id else None
    if not (location and search.starts_on and search.ends_on):
        return AvailabilityResult()
    try:
        starts_at, ends_at = availability.local_period(location.timezone, search.starts_on, search.ends_on)
        items = availability.available_items(search.category or None, location.id, starts_at, ends_at)
    except DomainError as exc:
        return AvailabilityResult(problem=str(exc), searched=True)
    return AvailabilityResult(items=items, searched=True)
