"""Reports: numbers an owner can trust, never summed across currencies; each table is also a streamed CSV."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from midas.services.reports import customers, funnel, payments, revenue, utilization
from midas.services.reports.base import (
    Column,
    ReportFilters,
    Table,
    csv_lines,
    default_period,
    display_cell,
    filter_choices,
    reporting_memory,
)

REPORTS: dict[str, tuple[str, str, Callable[[ReportFilters], list[Table]]]] = {
    "revenue": ("Revenue", "Net revenue by month, category and location, per currency.", revenue.tables),
    "utilization": ("Utilization", "Booked days ÷ available days per item and category.", utilization.tables),
    "funnel": ("Booking funnel", "Quotes → pending payment → confirmed → completed; cancellations and no-shows.",
               funnel.tables),
    "payments": ("Payments", "Success rates, failure reasons, refund rate and disputes.", payments.tables),
    "customers": ("Customers", "Lifetime value, new vs repeat, tier mix and loyalty points.", customers.tables),
}

__all__ = ["REPORTS", "Column", "ReportFilters", "Table", "default_period", "display_cell", "export_csv",
           "filter_choices", "report_tables"]


def report_tables(name: str, filters: ReportFilters) -> list[Table]:
    """The tables of one report under the filters; KeyError for an unknown report."""
    tables = REPORTS[name][2](filters)
    reporting_memory()
    return tables


def export_csv(name: str, table_slug: str, filters: ReportFilters) -> tuple[str, Iterator[str]]:
    """(slug, CSV lines streamed from its query) of one report table, the first when no slug is given.

    KeyError for an unknown report or table, raised before anything is streamed."""
    tables = {table.slug: table for table in report_tables(name, filters)}
    table = tables[table_slug or next(iter(tables))]
    return table.slug, csv_lines(table)
