"""Column types and helpers shared by the models."""

from __future__ import annotations

import enum
from datetime import UTC, datetime

from sqlalchemy import BigInteger, CheckConstraint, DateTime, String
from sqlalchemy.types import TypeDecorator


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator):
    """Timezone-aware UTC in, aware UTC out, on PostgreSQL and on SQLite (which has no zones)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given; Midas stores aware UTC times only")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


# Amounts are minor units; BigInteger so a long jet charter in JPY never overflows.
Amount = BigInteger


class StrEnum(enum.StrEnum):
    """An enum whose values are stored as plain strings with a CHECK constraint."""

    def __str__(self) -> str:
        return self.value

    @classmethod
    def values(cls) -> list[str]:
        return [member.value for member in cls]


def check_in(column: str, enum_cls: type[StrEnum], name: str | None = None) -> CheckConstraint:
    """CHECK (column IN (...)) from an enum, so the database refuses unknown states."""
    allowed = ", ".join(f"'{value}'" for value in enum_cls.values())
    return CheckConstraint(f"{column} IN ({allowed})", name=name or f"{column}_valid")


def enum_column(enum_cls: type[StrEnum]):
    """A VARCHAR column sized for the enum's longest value."""
    return String(max(len(v) for v in enum_cls.values()))
