"""What every report shares: filters, the table shape (page and CSV), the period in UTC, portable SQL helpers."""

from __future__ import annotations

import csv
import io
import sqlite3
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Date, Float, Select, String, event, select
from sqlalchemy.engine import Engine
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.functions import FunctionElement

from midas.extensions import db
from midas.models import Booking, Category, Item, Location, Payment, utcnow
from midas.money import format_money
from midas.services.inventory_bulk import csv_line, major_units, neutralise

STREAM_BATCH = 2000  # rows fetched per round trip when a table is streamed


@dataclass(frozen=True)
class ReportFilters:
    """A period of UTC days (both ends included), optionally one location and one category."""

    period_from: date
    period_to: date
    location_id: int | None = None
    category: str | None = None

    @property
    def window(self) -> tuple[datetime, datetime]:
        """[start, end) in aware UTC."""
        return (datetime.combine(self.period_from, time(), UTC),
                datetime.combine(self.period_to + timedelta(days=1), time(), UTC))


def default_period(today: date | None = None) -> tuple[date, date]:
    """The last twelve months: from the first day of the month eleven months back to today (UTC)."""
    today = today or utcnow().date()
    month_index = today.year * 12 + today.month - 1 - 11
    return date(month_index // 12, month_index % 12 + 1, 1), today


@dataclass(frozen=True)
class Column:
    key: str
    label: str
    kind: str = "text"  # text | int | money (needs the row's "currency") | bp (basis points, shown as %) | days


@dataclass
class Table:
    """One report table: `rows` re-runs its query each call, so the page lists it and the CSV streams it."""

    slug: str
    title: str
    columns: list[Column]
    rows: Callable[[], Iterable[dict[str, Any]]]
    chart: Chart | None = None
    note: str = ""
    preview: Callable[[], Iterable[dict[str, Any]]] | None = None  # a shorter list for the page; the CSV has all

    def page_rows(self) -> list[dict[str, Any]]:
        return list((self.preview or self.rows)())


@dataclass(frozen=True)
class Chart:
    """A horizontal bar per row: `label` names it, `value` sizes it; one chart per `split` value (currency)."""

    label: str
    value: str
    axis: str
    split: str | None = None


def csv_lines(table: Table) -> Iterator[str]:
    """The table as CSV: amounts in major units beside their currency, rates as percentages, text neutralised."""
    yield "\ufeff" + csv_line([column.label for column in table.columns])
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    for row in table.rows():
        writer.writerow([csv_cell(column, row) for column in table.columns])
        yield buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()


def csv_cell(column: Column, row: dict[str, Any]) -> str:
    """Numbers as Midas formats them (a refund may make one negative: it stays a number); text neutralised,
    since a name or a code typed by anyone could start with what a spreadsheet runs as a formula."""
    value = row.get(column.key)
    if value is None:
        return ""
    if column.kind == "money":
        return major_units(value, row["currency"])
    if column.kind == "bp":
        return percent(value)
    if column.kind == "days":
        return f"{value:.1f}"
    if column.kind == "int":
        return str(int(value))
    return neutralise(str(value))


def display_cell(column: Column, row: dict[str, Any]) -> str:
    """A cell as the page shows it: money with its symbol, rates with %, counts with thousands separators."""
    value = row.get(column.key)
    if value is None:
        return "—"
    if column.kind == "money":
        return format_money(value, row["currency"])
    if column.kind == "bp":
        return f"{percent(value)}%"
    if column.kind == "days":
        return f"{value:,.1f}"
    if column.kind == "int":
        return f"{value:,}"
    return str(value).replace("_", " ")


def percent(bp: int) -> str:
    """1234 basis points → '12.34'."""
    return f"{bp // 100}.{bp % 100:02d}"


def ratio_bp(part: int | float, whole: int | float) -> int | None:
    """part ÷ whole in basis points, rounded half-up; None when there is nothing to divide by."""
    if not whole:
        return None
    return int((part * 20000 // whole + 1) // 2)


def scoped(stmt: Select, filters: ReportFilters, item_column) -> Select:
    """Narrow a statement to the filters' location and category through the booked item."""
    if filters.location_id:
        stmt = stmt.where(item_column.in_(select(Item.id).where(Item.location_id == filters.location_id)))
    if filters.category:
        stmt = stmt.where(item_column.in_(select(Item.id).where(Item.category == filters.category)))
    return stmt


def scoped_payments(stmt: Select, filters: ReportFilters) -> Select:
    """Narrow a statement over payments to the filters through their booking's item.

    Unfiltered, payments are read alone: joining 200,000 bookings only to ignore them costs most of the query."""
    if not (filters.location_id or filters.category):
        return stmt
    return stmt.where(Payment.booking_id.in_(scoped(select(Booking.id), filters, Booking.item_id)))


REPORT_WORK_MEM = "32MB"


def reporting_memory() -> None:
    """Give this transaction's sorts and hashes room (PostgreSQL only; undone when the transaction ends).

    With the default 4 MB, grouping 140,000 payments by month, category and location sorts on disk and costs
    twice the CPU of grouping them in a hash table: measured on the 200,000-booking benchmark."""
    connection = db.session.connection()
    if connection.dialect.name == "postgresql":
        connection.exec_driver_sql(f"SET LOCAL work_mem = '{REPORT_WORK_MEM}'")


def stream(stmt: Select) -> Iterator[Any]:
    """Rows of a statement fetched in batches, never all at once."""
    yield from db.session.execute(stmt.execution_options(yield_per=STREAM_BATCH))


def filter_choices() -> dict[str, list[tuple[str, str]]]:
    locations = db.session.execute(select(Location.id, Location.name).order_by(Location.name))
    return {"locations": [(str(id_), name) for id_, name in locations],
            "categories": [(value, value.capitalize()) for value in Category.values()]}


class epoch(FunctionElement):  # noqa: N801 - reads like the SQL function it stands for
    """Seconds since 1970 of a UTC timestamp column, on PostgreSQL and SQLite alike."""

    type = Float()
    inherit_cache = True


@compiles(epoch, "postgresql")
def _epoch_postgresql(element, compiler, **kw) -> str:
    return f"EXTRACT(EPOCH FROM {compiler.process(element.clauses, **kw)})"


@compiles(epoch)
def _epoch_sqlite(element, compiler, **kw) -> str:
    # SQLite keeps naive UTC text; julianday() reads it, and day 2440587.5 is 1970-01-01T00:00.
    return f"((julianday({compiler.process(element.clauses, **kw)}) - 2440587.5) * 86400.0)"


class local_month(FunctionElement):  # noqa: N801 - reads like the SQL function it stands for
    """'YYYY-MM' of a UTC timestamp column in the time zone named by another column, computed in SQL."""

    type = String()
    inherit_cache = True


@compiles(local_month, "postgresql")
def _local_month_postgresql(element, compiler, **kw) -> str:
    timestamp, zone = element.clauses
    return f"to_char(timezone({compiler.process(zone, **kw)}, {compiler.process(timestamp, **kw)}), 'YYYY-MM')"


@compiles(local_month)
def _local_month_sqlite(element, compiler, **kw) -> str:
    return f"midas_local_month({compiler.process(element.clauses, **kw)})"


def _sqlite_local_month(stored: str | None, zone: str | None) -> str | None:
    # SQLite has no time zones: the same conversion PostgreSQL does, in Python, row by row (test-sized data).
    if stored is None or zone is None:
        return None
    return f"{datetime.fromisoformat(stored).replace(tzinfo=UTC).astimezone(_zone(zone)):%Y-%m}"


@lru_cache(maxsize=64)
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def _register_sqlite_functions(dbapi_connection, _record) -> None:
    if isinstance(dbapi_connection, sqlite3.Connection):
        dbapi_connection.create_function("midas_local_month", 2, _sqlite_local_month, deterministic=True)


if not event.contains(Engine, "connect", _register_sqlite_functions):
    event.listen(Engine, "connect", _register_sqlite_functions)


class utc_day(FunctionElement):  # noqa: N801 - reads like the SQL function it stands for
    """The UTC day (a date) a timestamp column falls on."""

    type = Date()
    inherit_cache = True


@compiles(utc_day, "postgresql")
def _utc_day_postgresql(element, compiler, **kw) -> str:
    # A date, not to_char(…) text: grouping 70,000 rows by it costs half as much.
    return f"CAST(timezone('UTC', {compiler.process(element.clauses, **kw)}) AS DATE)"


@compiles(utc_day)
def _utc_day_sqlite(element, compiler, **kw) -> str:
    return f"substr({compiler.process(element.clauses, **kw)}, 1, 10)"  # stored as naive UTC ISO text
