"""Revenue: captured payments less their refunds, per currency, by month, category and location."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from functools import cache
from typing import Any

from sqlalchemy import func, select

from midas.extensions import db
from midas.models import Booking, Item, Location, Payment, PaymentStatus
from midas.services.reports.base import Chart, Column, ReportFilters, Table, local_month, scoped

NOTE = ("Charges and late fees that succeeded in the period (UTC days), less what was refunded on them. Deposits "
        "are not revenue. Currencies are never added together: converting them needs an exchange-rate table the "
        "owner maintains, which Midas does not have yet.")
AMOUNTS = [Column("gross", "Captured", "money"), Column("refunded", "Refunded", "money"),
           Column("net", "Net revenue", "money"), Column("payments", "Payments", "int")]


def tables(filters: ReportFilters) -> list[Table]:
    # The three tables are roll-ups of one aggregate, queried once per page however many tables read it.
    cube = cache(lambda: totals(filters))
    return [
        Table("by_month", "Net revenue by month (local month of the location)",
              [Column("currency", "Currency"), Column("month", "Month"), *AMOUNTS],
              lambda: by_month(filters, cube), _net_chart("month"), NOTE),
        Table("by_category", "Net revenue by category",
              [Column("currency", "Currency"), Column("category", "Category"), *AMOUNTS],
              lambda: by_group(filters, "category", cube), _net_chart("category")),
        Table("by_location", "Net revenue by location",
              [Column("currency", "Currency"), Column("location", "Location"), *AMOUNTS],
              lambda: by_group(filters, "location", cube), _net_chart("location")),
    ]


def _net_chart(label: str) -> Chart:
    return Chart(label, "net", "Net revenue", split="currency")


def totals(filters: ReportFilters) -> list[dict[str, Any]]:
    """Captured, refunded and count per currency, local month, category and location, summed in SQL.

    A few hundred rows at most (months × locations × categories × currencies), whatever the number of payments."""
    start, end = filters.window
    month = local_month(Payment.succeeded_at, Location.timezone)
    gross, refunded = func.sum(Payment.amount_captured), func.sum(Payment.amount_refunded)
    stmt = (select(Payment.currency, month, Item.category, Location.name, gross, refunded, func.count(Payment.id))
            .select_from(Payment).join(Booking, Payment.booking_id == Booking.id)
            .join(Item, Booking.item_id == Item.id).join(Location, Item.location_id == Location.id)
            .where(Payment.status.in_(PaymentStatus.paid()),  # a deposit counts for what was captured of it
                   Payment.succeeded_at >= start, Payment.succeeded_at < end)
            .group_by(Payment.currency, month, Item.category, Location.name))
    return [{"currency": currency, "month": month, "category": category, "location": location,
             "gross": int(captured), "refunded": int(refunds), "payments": count}
            for currency, month, category, location, captured, refunds, count
            in db.session.execute(scoped(stmt, filters, Booking.item_id))]


def by_month(filters: ReportFilters, cube: Callable[[], list[dict[str, Any]]] | None = None) -> list[dict[str, Any]]:
    """Per currency and local month, oldest first."""
    return _roll_up((cube or (lambda: totals(filters)))(), "month",
                    key=lambda row: (row["currency"], row["month"]))


def by_group(filters: ReportFilters, name: str,
             cube: Callable[[], list[dict[str, Any]]] | None = None) -> list[dict[str, Any]]:
    """Per currency and `name` (category or location), largest net first."""
    return _roll_up((cube or (lambda: totals(filters)))(), name,
                    key=lambda row: (row["currency"], -row["net"], row[name]))


def _roll_up(rows: list[dict[str, Any]], name: str, key) -> list[dict[str, Any]]:
    sums: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0, 0])
    for row in rows:
        total = sums[(row["currency"], row[name])]
        total[0] += row["gross"]
        total[1] += row["refunded"]
        total[2] += row["payments"]
    return sorted(({"currency": currency, name: label, "gross": gross, "refunded": refunded, "net": gross - refunded,
                    "payments": count} for (currency, label), (gross, refunded, count) in sums.items()), key=key)
