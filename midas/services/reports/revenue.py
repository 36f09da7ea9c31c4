"""Revenue: captured payments less their refunds, per currency, by month, category and location."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Select, func, select

from midas.extensions import db
from midas.models import Booking, Item, Location, Payment, PaymentKind, PaymentStatus
from midas.services.reports.base import Chart, Column, ReportFilters, Table, scoped, stream

NOTE = ("Charges and late fees that succeeded in the period (UTC days), less what was refunded on them. Deposits "
        "are not revenue. Currencies are never added together: converting them needs an exchange-rate table the "
        "owner maintains, which Midas does not have yet.")
AMOUNTS = [Column("gross", "Captured", "money"), Column("refunded", "Refunded", "money"),
           Column("net", "Net revenue", "money"), Column("payments", "Payments", "int")]


def tables(filters: ReportFilters) -> list[Table]:
    return [
        Table("by_month", "Net revenue by month (local month of the location)",
              [Column("currency", "Currency"), Column("month", "Month"), *AMOUNTS],
              lambda: by_month(filters), _net_chart("month"), NOTE),
        Table("by_category", "Net revenue by category",
              [Column("currency", "Currency"), Column("category", "Category"), *AMOUNTS],
              lambda: by_group(filters, Item.category, "category"), _net_chart("category")),
        Table("by_location", "Net revenue by location",
              [Column("currency", "Currency"), Column("location", "Location"), *AMOUNTS],
              lambda: by_group(filters, Location.name, "location"), _net_chart("location")),
    ]


def _net_chart(label: str) -> Chart:
    return Chart(label, "net", "Net revenue", split="currency")


def _revenue_payments(filters: ReportFilters, *columns) -> Select:
    start, end = filters.window
    stmt = (select(*columns).select_from(Payment).join(Booking, Payment.booking_id == Booking.id)
            .join(Item, Booking.item_id == Item.id).join(Location, Item.location_id == Location.id)
            .where(Payment.status == PaymentStatus.SUCCEEDED.value, Payment.kind != PaymentKind.DEPOSIT.value,
                   Payment.succeeded_at >= start, Payment.succeeded_at < end))
    return scoped(stmt, filters, Booking.item_id)


def by_month(filters: ReportFilters) -> list[dict[str, Any]]:
    """Per currency and local month, oldest first; grouped in Python over a batched stream (portable)."""
    stmt = _revenue_payments(filters, Payment.succeeded_at, Location.timezone, Payment.currency,
                             Payment.amount_captured, Payment.amount_refunded)
    totals: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0, 0])
    zones: dict[str, ZoneInfo] = {}
    for succeeded_at, tz, currency, captured, refunded in stream(stmt):
        zone = zones.setdefault(tz, ZoneInfo(tz))
        total = totals[(currency, f"{succeeded_at.astimezone(zone):%Y-%m}")]
        total[0] += captured
        total[1] += refunded
        total[2] += 1
    return [_amounts({"currency": currency, "month": month}, *total)
            for (currency, month), total in sorted(totals.items())]


def by_group(filters: ReportFilters, column, name: str) -> Iterator[dict[str, Any]]:
    """Per currency and `column` (category, location), largest net first."""
    gross, refunded = func.sum(Payment.amount_captured), func.sum(Payment.amount_refunded)
    stmt = (_revenue_payments(filters, Payment.currency, column, gross, refunded, func.count(Payment.id))
            .group_by(Payment.currency, column).order_by(Payment.currency, (gross - refunded).desc(), column))
    for currency, label, captured, refunds, count in db.session.execute(stmt):
        yield _amounts({"currency": currency, name: label}, captured, refunds, count)


def _amounts(row: dict[str, Any], captured: int, refunded: int, count: int) -> dict[str, Any]:
    return {**row, "gross": int(captured), "refunded": int(refunded), "net": int(captured) - int(refunded),
            "payments": count}
