"""Local times of a venue ↔ aware UTC, and day boundaries in the venue's zone."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo


def localize(naive_local: datetime, tz: str) -> datetime:
    """A wall-clock time at the venue (as typed in a form) as aware UTC."""
    return naive_local.replace(tzinfo=ZoneInfo(tz)).astimezone(UTC)


def to_local(value: datetime, tz: str) -> datetime:
    return value.astimezone(ZoneInfo(tz))


def day_bounds(day: date, tz: str) -> tuple[datetime, datetime]:
    """The venue's local midnight-to-midnight for `day`, in UTC (23 or 25 hours long on DST days)."""
    zone = ZoneInfo(tz)
    start = datetime.combine(day, time(), zone)
    end = datetime.combine(day + timedelta(days=1), time(), zone)
    return start.astimezone(UTC), end.astimezone(UTC)
