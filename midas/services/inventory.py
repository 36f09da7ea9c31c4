"""The fleet: finding items and reading one item's record."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import joinedload

from midas.extensions import db
from midas.models import Category, Item, ItemStatus, Location
from midas.services import NotFound
from midas.services.listing import Page, like, order_by, paginate

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
    stmt = select(Item).options(joinedload(Item.location))
    if filters.q:
        stmt = stmt.where(Item.name.ilike(like(filters.q)))
    if filters.category in Category.values():
        stmt = stmt.where(Item.category == filters.category)
    if filters.location_id:
        stmt = stmt.where(Item.location_id == filters.location_id)
    if filters.status in ItemStatus.values():
        stmt = stmt.where(Item.status == filters.status)
    stmt, sort = order_by(stmt, filters.sort, SORTS, "name", Item.id)
    return paginate(stmt, filters.page), sort


def category_counts() -> dict[str, int]:
    rows = db.session.execute(select(Item.category, func.count()).group_by(Item.category))
    return {category: count for category, count in rows}


def list_locations() -> list[Location]:
    return list(db.session.scalars(select(Location).order_by(Location.name)))


def get_item(item_id: int) -> Item:
    item = db.session.get(Item, item_id, options=[joinedload(Item.location)])
    if item is None:
        raise NotFound("No such item.")
    return item
