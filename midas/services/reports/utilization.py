"""Utilization: sold time ÷ available time per item and category, summed in SQL across the fleet."""

from __future__ import annotations

from collections import defaultdict
from functools import cache
from typing import Any

from sqlalchemy import case, func, literal, select

from midas.extensions import db
from midas.models import Blackout, Booking, Item, ItemStatus, Location
from midas.services.calendar import SOLD_STATUSES
from midas.services.reports.base import Chart, Column, ReportFilters, Table, epoch, ratio_bp

DAY = 86400.0
NOTE = ("Booked days are the confirmed, in-progress and completed bookings' time inside the period (UTC days); "
        "holds awaiting payment are not sold time. Available days are the period less maintenance blackouts. "
        "Retired items are left out.")
ITEMS_SHOWN = 30
ITEMS_NOTE = (f"The page shows the {ITEMS_SHOWN} least utilized items, where capacity sits idle; the CSV lists every "
              "item.")
COLUMNS = [Column("booked_days", "Booked days", "days"), Column("available_days", "Available days", "days"),
           Column("utilization", "Utilization", "bp")]


def tables(filters: ReportFilters) -> list[Table]:
    items = cache(lambda: per_item(filters))  # the category table adds up the item rows: one query per page
    return [
        Table("by_item", "Utilization per item, least utilized first",
              [Column("item", "Item"), Column("category", "Category"), Column("location", "Location"), *COLUMNS],
              items, Chart("item", "utilization", "Utilization (%)"), f"{NOTE} {ITEMS_NOTE}",
              preview=lambda: items()[:ITEMS_SHOWN]),
        Table("by_category", "Utilization per category", [Column("category", "Category"), *COLUMNS],
              lambda: per_category(filters, items()), Chart("category", "utilization", "Utilization (%)")),
    ]


def _overlap_seconds(starts, ends, window_start: float, window_end: float):
    """Seconds of [starts, ends) inside the window, clamped at zero, in portable SQL (no GREATEST/LEAST)."""
    start, end = epoch(starts), epoch(ends)
    clipped_start = case((start > window_start, start), else_=literal(window_start))
    clipped_end = case((end < window_end, end), else_=literal(window_end))
    return case((clipped_end > clipped_start, clipped_end - clipped_start), else_=literal(0.0))


def per_item(filters: ReportFilters) -> list[dict[str, Any]]:
    """Every non-retired item in the filters, least utilized first."""
    start, end = filters.window
    low, high = start.timestamp(), end.timestamp()
    sold = (select(Booking.item_id, func.sum(_overlap_seconds(Booking.starts_at, Booking.ends_at, low, high))
                   .label("seconds"))
            .where(Booking.status.in_(SOLD_STATUSES), Booking.starts_at < end, Booking.ends_at > start)
            .group_by(Booking.item_id).subquery())
    dark = (select(Blackout.item_id, func.sum(_overlap_seconds(Blackout.starts_at, Blackout.ends_at, low, high))
                   .label("seconds"))
            .where(Blackout.starts_at < end, Blackout.ends_at > start).group_by(Blackout.item_id).subquery())
    stmt = (select(Item.name, Item.category, Location.name, func.coalesce(sold.c.seconds, 0.0),
                   func.coalesce(dark.c.seconds, 0.0))
            .join(Location, Item.location_id == Location.id)
            .outerjoin(sold, sold.c.item_id == Item.id).outerjoin(dark, dark.c.item_id == Item.id)
            .where(Item.status != ItemStatus.RETIRED.value).order_by(Item.name, Item.id))
    if filters.location_id:
        stmt = stmt.where(Item.location_id == filters.location_id)
    if filters.category:
        stmt = stmt.where(Item.category == filters.category)
    span = high - low
    rows = [_row({"item": name, "category": category, "location": location}, float(booked), span - float(blackout))
            for name, category, location, booked, blackout in db.session.execute(stmt)]
    return sorted(rows, key=lambda row: (row["utilization"] is None, row["utilization"] or 0))


def per_category(filters: ReportFilters, items: list[dict[str, Any]] | None = None) -> list[dict[str, Any]]:
    """The per-item seconds added up by category: a fleet-wide ratio, not an average of ratios."""
    totals: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0])
    for row in per_item(filters) if items is None else items:
        totals[row["category"]][0] += row["booked_days"] * DAY
        totals[row["category"]][1] += row["available_days"] * DAY
    return [_row({"category": category}, booked, available) for category, (booked, available) in sorted(totals.items())]


def _row(row: dict[str, Any], booked_seconds: float, available_seconds: float) -> dict[str, Any]:
    available_seconds = max(available_seconds, 0.0)
    return {**row, "booked_days": booked_seconds / DAY, "available_days": available_seconds / DAY,
            "utilization": ratio_bp(round(booked_seconds), round(available_seconds))}
