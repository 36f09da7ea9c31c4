"""Inventory area: the fleet of cars, yachts, jets and properties."""

from __future__ import annotations

from flask import request

from midas.htmx import render
from midas.models import Category, ItemStatus
from midas.services import bookings, inventory
from midas.views.guards import staff_blueprint

bp = staff_blueprint("inventory", __name__, url_prefix="/inventory")


@bp.get("")
def index():
    filters = inventory.ItemFilters(
        q=request.args.get("q", ""), category=request.args.get("category", ""),
        location_id=request.args.get("location", type=int), status=request.args.get("status", ""),
        sort=request.args.get("sort", ""), page=request.args.get("page", 1, type=int),
    )
    page, sort = inventory.list_items(filters)
    return render("inventory/index.html", "results", page=page, sort=sort, filters=filters,
                  counts=inventory.category_counts(), locations=inventory.list_locations(),
                  categories=Category.values(), statuses=ItemStatus.values())


@bp.get("/<int:item_id>")
def show(item_id: int):
    item = inventory.get_item(item_id)
    upcoming, _ = bookings.list_bookings(bookings.BookingFilters(item_id=item.id, sort="-starts_at"))
    return render("inventory/show.html", item=item, bookings=upcoming)
