"""Keyset ("seek") pagination: a page starts after the last row seen, so page 8,000 costs what page 1 does.

A cursor is the sort key plus the (sort value, id) of a boundary row, as URL-safe text. A cursor made under
another sort, or damaged, is ignored: the list starts again at its first page.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, func, select, tuple_

from midas.extensions import db

PER_PAGE = 25
COUNT_CAP = 10_000  # above this the page says "more than 10,000" instead of counting every row
MAX_ID = 2**31 - 1
MAX_INT = 2**63 - 1
MAX_TEXT = 240
MIN_YEAR, MAX_YEAR = 1900, 2999


@dataclass
class KeysetPage:
    items: list[Any]
    sort: str
    next_cursor: str | None
    prev_cursor: str | None
    total: int
    total_capped: bool = False

    @property
    def has_next(self) -> bool:
        return self.next_cursor is not None

    @property
    def has_prev(self) -> bool:
        return self.prev_cursor is not None

    @property
    def count_text(self) -> str:
        return f"More than {self.total - 1:,}" if self.total_capped else f"{self.total:,}"


@dataclass(frozen=True)
class _Order:
    key: str  # "starts_at" or "-starts_at"
    column: Any
    tiebreak: Any

    @property
    def descending(self) -> bool:
        return self.key.startswith("-")


def seek(stmt: Select, sort: str, columns: dict[str, Any], default: str, tiebreak: Any, *, after: str = "",
         before: str = "", per_page: int = PER_PAGE, count_cap: int = COUNT_CAP,
         count_stmt: Select | None = None) -> KeysetPage:
    """The page of `stmt` after cursor `after` (or before `before`) in the chosen order, plus a capped count.

    `count_stmt`, when given, selects the same rows more cheaply (without joins only display needs)."""
    key = sort if sort and sort.lstrip("-") in columns else default
    order = _Order(key, columns[key.lstrip("-")], tiebreak)
    page = _page_before(stmt, order, before, per_page) or _page_after(stmt, order, after, per_page)
    if not page.items and after:  # past the end (the rows were deleted meanwhile): start again
        page = _page_after(stmt, order, "", per_page)
    # A single page is its own count: a narrow search needs no second pass over the table.
    page.total = len(page.items) if not (page.has_next or page.has_prev) else capped_count(
        stmt if count_stmt is None else count_stmt, count_cap)
    page.total_capped = page.total > count_cap
    return page


def capped_count(stmt: Select, cap: int = COUNT_CAP) -> int:
    """How many rows `stmt` has, counting no further than cap + 1."""
    limited = stmt.order_by(None).limit(cap + 1).subquery()
    return db.session.scalar(select(func.count()).select_from(limited)) or 0


def _page_after(stmt: Select, order: _Order, cursor: str, per_page: int) -> KeysetPage:
    boundary = decode_cursor(cursor, order)
    rows = _fetch(stmt, order, boundary, order.descending, per_page + 1)
    more, rows = len(rows) > per_page, rows[:per_page]
    return KeysetPage(rows, order.key, encode_cursor(order, rows[-1]) if more else None,
                      encode_cursor(order, rows[0]) if boundary and rows else None, total=0)


def _page_before(stmt: Select, order: _Order, cursor: str, per_page: int) -> KeysetPage | None:
    """Walk back from the cursor; a short walk means the start is near, so show the first page instead."""
    boundary = decode_cursor(cursor, order)
    if boundary is None:
        return None
    rows = _fetch(stmt, order, boundary, not order.descending, per_page + 1)
    if len(rows) <= per_page:
        return None
    rows = list(reversed(rows[:per_page]))
    return KeysetPage(rows, order.key, encode_cursor(order, rows[-1]), encode_cursor(order, rows[0]), total=0)


def _fetch(stmt: Select, order: _Order, boundary: tuple | None, descending: bool, limit: int) -> list[Any]:
    keys = tuple_(order.column, order.tiebreak)
    if boundary is not None:
        stmt = stmt.where(keys < boundary if descending else keys > boundary)
    if descending:
        stmt = stmt.order_by(order.column.desc(), order.tiebreak.desc())
    else:
        stmt = stmt.order_by(order.column.asc(), order.tiebreak.asc())
    return list(db.session.scalars(stmt.limit(limit)))


def encode_cursor(order: _Order, row: Any) -> str:
    """The cursor of a boundary row: its sort value and id under this order, as URL-safe text."""
    value = getattr(row, order.column.key)
    value = value.isoformat() if isinstance(value, datetime) else value
    raw = json.dumps([order.key, value, getattr(row, order.tiebreak.key)], separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str, order: _Order) -> tuple[Any, int] | None:
    """(sort value, id) from a cursor made under this order; None for no cursor, another sort or a bad one."""
    if not cursor or len(cursor) > 1000:
        return None
    try:
        key, value, row_id = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        value = _typed(value, _python_type(order.column))
    except (ValueError, TypeError, binascii.Error, UnicodeDecodeError):
        return None
    if key != order.key or type(row_id) is not int or not 0 < row_id <= MAX_ID:
        return None
    return value, row_id


def _python_type(column: Any) -> type:
    column_type = column.type
    return getattr(column_type, "impl_instance", column_type).python_type  # a TypeDecorator: its underlying type


def _typed(value: Any, python_type: type) -> Any:
    if python_type is datetime:
        parsed = datetime.fromisoformat(value)
        if parsed.tzinfo is None or not MIN_YEAR <= parsed.year <= MAX_YEAR:  # out there, UTC conversion overflows
            raise ValueError(f"cursor time {value!r} out of range")
        return parsed
    if python_type is int and type(value) is int and abs(value) <= MAX_INT:
        return value
    if python_type is str and isinstance(value, str) and len(value) <= MAX_TEXT and "\x00" not in value:
        return value
    raise ValueError(f"cursor value {value!r} is not a {python_type.__name__}")
