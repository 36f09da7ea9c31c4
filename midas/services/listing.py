"""Shared list-page plumbing: validated sorting and pagination that keeps the filters."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, Select, func, or_, select

from midas.extensions import db

PER_PAGE = 25


@dataclass
class Page:
    items: list[Any]
    page: int
    per_page: int
    total: int

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.per_page))

    @property
    def has_prev(self) -> bool:
        return self.page > 1

    @property
    def has_next(self) -> bool:
        return self.page < self.pages

    @property
    def prev_num(self) -> int:
        return self.page - 1

    @property
    def next_num(self) -> int:
        return self.page + 1


def paginate(stmt: Select, page: int, per_page: int = PER_PAGE) -> Page:
    """One page of `stmt`'s rows plus the total count."""
    page = max(1, page)
    total = db.session.scalar(select(func.count()).select_from(stmt.order_by(None).subquery())) or 0
    rows = db.session.scalars(stmt.limit(per_page).offset((page - 1) * per_page)).all()
    return Page(items=list(rows), page=page, per_page=per_page, total=total)


def order_by(
    stmt: Select, sort: str | None, columns: dict[str, Any], default: str, tiebreak: Any
) -> tuple[Select, str]:
    """Apply `sort` ("name" or "-name") if it names a known column; unknown keys fall back to the default."""
    key = sort if sort and sort.lstrip("-") in columns else default
    column = columns[key.lstrip("-")]
    direction = column.desc() if key.startswith("-") else column.asc()
    return stmt.order_by(direction, tiebreak.desc() if key.startswith("-") else tiebreak.asc()), key


def like(text: str) -> str:
    """A LIKE pattern for a search box, with the user's wildcards escaped (backslash is the escape)."""
    escaped = text.strip().lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def matches(text: str, *columns: Any) -> ColumnElement[bool]:
    """Case-insensitive "contains" over any of the columns, the user's % and _ taken literally."""
    pattern = like(text)
    return or_(*(column.ilike(pattern, escape="\\") for column in columns))
