"""Error groups as staff see them: what keeps failing, how often, what it puts at risk, and what staff did about it."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import BigInteger, Select, case, cast, delete, distinct, func, select

from midas.database import begin_write
from midas.extensions import db
from midas.models import (
    Booking,
    ErrorCategory,
    ErrorEvent,
    ErrorGroup,
    GroupStatus,
    Role,
    Setting,
    Severity,
    StaffUser,
    utcnow,
)
from midas.services import DomainError, InvalidInput, NotFound, audit
from midas.services.auth import require_role
from midas.services.listing import Page, paginate

PERIODS = {"1h": timedelta(hours=1), "24h": timedelta(hours=24), "7d": timedelta(days=7), "30d": timedelta(days=30)}
TREND_BUCKETS = {"1h": 12, "24h": 24, "7d": 28, "30d": 30}  # 5 minutes, 1 hour, 6 hours, 1 day each
DEFAULT_TREND = "24h"
EVENTS_PER_PAGE = 20
SNOOZE_PERIODS = {"1h": timedelta(hours=1), "8h": timedelta(hours=8), "24h": timedelta(hours=24),
                  "7d": timedelta(days=7)}
MAX_SNOOZE_EVENTS = 1_000_000
PRUNE_BATCH = 5000
GROUP_FIELDS = ["status", "regression", "resolved_at", "resolved_by_id"]


@dataclass
class GroupFilters:
    category: str = ""
    severity: str = ""
    status: str = ""
    period: str = ""
    page: int = 1


@dataclass
class Impact:
    """What a group puts at risk: money per currency (minor units), and how many bookings and customers."""

    revenue: dict[str, int] = field(default_factory=dict)
    bookings: int = 0
    customers: int = 0


@dataclass(frozen=True)
class Snooze:
    """Alerts for a group stay quiet until a time, or until its count reaches `until_count`."""

    until: datetime | None = None
    until_count: int | None = None

    def active(self, occurrences: int, now: datetime) -> bool:
        return bool(self.until and now < self.until) or bool(self.until_count and occurrences < self.until_count)


@dataclass
class GroupRow:
    group: ErrorGroup
    trend: list[int]
    impact: Impact
    snooze: Snooze | None


@dataclass
class GroupDetail:
    group: ErrorGroup
    trend: list[int]
    impact: Impact
    snooze: Snooze | None
    events: Page
    references: dict[int, str]  # booking id → reference, for links
    resolved_by: str | None


# Reading: the dashboard.

def trend_period(period: str) -> str:
    """The span the sparklines cover: the filter's period, or the last 24 hours."""
    return period if period in PERIODS else DEFAULT_TREND


def list_groups(filters: GroupFilters, now: datetime | None = None) -> Page:
    """One page of groups matching the filters, most recently seen first, each with its trend and impact."""
    now = now or utcnow()
    page = paginate(_filtered(filters, now).order_by(ErrorGroup.last_seen_at.desc(), ErrorGroup.id.desc()),
                    filters.page)
    ids = [group.id for group in page.items]
    trends = trends_by_group(ids, trend_period(filters.period), now)
    impacts, snoozes = impact_by_group(ids), snoozes_by_group(ids)
    page.items = [GroupRow(g, trends[g.id], impacts[g.id], _active(snoozes.get(g.id), g, now)) for g in page.items]
    return page


def _filtered(filters: GroupFilters, now: datetime) -> Select:
    stmt = select(ErrorGroup)
    if filters.category in ErrorCategory.values():
        stmt = stmt.where(ErrorGroup.category == filters.category)
    if filters.severity in Severity.values():
        stmt = stmt.where(ErrorGroup.severity == filters.severity)
    if filters.status in GroupStatus.values():
        stmt = stmt.where(ErrorGroup.status == filters.status)
    if filters.period in PERIODS:
        stmt = stmt.where(ErrorGroup.last_seen_at >= now - PERIODS[filters.period])
    return stmt


def group_detail(group_id: int, page: int = 1, period: str = DEFAULT_TREND, now: datetime | None = None) -> GroupDetail:
    """A group with its impact, trend, snooze and one page of its events (newest first)."""
    now, group = now or utcnow(), get_group(group_id)
    events = paginate(select(ErrorEvent).where(ErrorEvent.group_id == group_id)
                      .order_by(ErrorEvent.occurred_at.desc(), ErrorEvent.id.desc()), page, EVENTS_PER_PAGE)
    booking_ids = {event.booking_id for event in events.items if event.booking_id}
    references = dict(db.session.execute(select(Booking.id, Booking.reference).where(Booking.id.in_(booking_ids))
                                         ).all()) if booking_ids else {}
    resolver = db.session.get(StaffUser, group.resolved_by_id) if group.resolved_by_id else None
    return GroupDetail(group=group, trend=trends_by_group([group_id], trend_period(period), now)[group_id],
                       impact=impact_by_group([group_id])[group_id], snooze=snooze_for(group, now), events=events,
                       references=references, resolved_by=resolver.name if resolver else None)


def get_group(group_id: int) -> ErrorGroup:
    group = db.session.get(ErrorGroup, group_id)
    if group is None:
        raise NotFound("No such error group.")
    return group


def impact_by_group(group_ids: list[int]) -> dict[int, Impact]:
    """Revenue at risk per currency and the bookings and customers each group touched, in two aggregate queries.

    A booking whose payment failed three times puts its amount at risk once: amounts count once per booking
    (the largest), and once per event for failures without a booking.
    """
    impacts = {group_id: Impact() for group_id in group_ids}
    if not group_ids:
        return impacts
    for group_id, currency, amount in db.session.execute(_revenue_at_risk(group_ids)):
        impacts[group_id].revenue[currency] = int(amount)
    customer = func.coalesce(ErrorEvent.customer_id, Booking.customer_id)
    reach = (select(ErrorEvent.group_id, func.count(distinct(ErrorEvent.booking_id)), func.count(distinct(customer)))
             .outerjoin(Booking, Booking.id == ErrorEvent.booking_id)
             .where(ErrorEvent.group_id.in_(group_ids)).group_by(ErrorEvent.group_id))
    for group_id, bookings, customers in db.session.execute(reach):
        impacts[group_id].bookings, impacts[group_id].customers = bookings, customers
    return impacts


def _revenue_at_risk(group_ids: list[int]) -> Select:
    alone = case((ErrorEvent.booking_id.is_(None), ErrorEvent.id), else_=None)
    per_booking = (select(ErrorEvent.group_id, ErrorEvent.currency, func.max(ErrorEvent.amount).label("amount"))
                   .where(ErrorEvent.group_id.in_(group_ids), ErrorEvent.amount.is_not(None),
                          ErrorEvent.currency.is_not(None))
                   .group_by(ErrorEvent.group_id, ErrorEvent.currency, ErrorEvent.booking_id, alone).subquery())
    return (select(per_booking.c.group_id, per_booking.c.currency, func.sum(per_booking.c.amount))
            .group_by(per_booking.c.group_id, per_booking.c.currency)
            .order_by(per_booking.c.group_id, per_booking.c.currency))


def trends_by_group(group_ids: list[int], period: str, now: datetime) -> dict[int, list[int]]:
    """Events per time bucket over the period (oldest first), counted by the database."""
    buckets, span = TREND_BUCKETS[period], PERIODS[period]
    trends = {group_id: [0] * buckets for group_id in group_ids}
    if not group_ids:
        return trends
    start = now - span
    width = int(span.total_seconds()) // buckets
    bucket = ((_epoch(ErrorEvent.occurred_at) - int(start.timestamp())) // width).label("bucket")
    rows = db.session.execute(select(ErrorEvent.group_id, bucket, func.count())
                              .where(ErrorEvent.group_id.in_(group_ids), ErrorEvent.occurred_at >= start,
                                     ErrorEvent.occurred_at <= now)
                              .group_by(ErrorEvent.group_id, bucket))
    for group_id, index, count in rows:
        trends[group_id][min(max(int(index), 0), buckets - 1)] += count
    return trends


def _epoch(column):
    """Whole seconds since 1970 of a UTC timestamp column, on PostgreSQL and SQLite alike."""
    if db.session.get_bind().dialect.name == "postgresql":
        return cast(func.floor(func.extract("epoch", column)), BigInteger)
    return cast(func.strftime("%s", column), BigInteger)


def events_since(since: datetime) -> int:
    """How many errors were captured since `since` (the home page's "last hour")."""
    return db.session.scalar(select(func.count(ErrorEvent.id)).where(ErrorEvent.occurred_at >= since)) or 0


# Snoozes: a Setting row per group ("snooze:<id>"), read by the alert rules.

def snooze_key(group_id: int) -> str:
    return f"snooze:{group_id}"


def snoozes_by_group(group_ids: list[int]) -> dict[int, Snooze]:
    keys = [snooze_key(group_id) for group_id in group_ids]
    rows = db.session.scalars(select(Setting).where(Setting.key.in_(keys))) if keys else []
    return {int(row.key.split(":")[1]): _snooze(row.value) for row in rows}


def snooze_for(group: ErrorGroup, now: datetime, session=None) -> Snooze | None:
    """The group's snooze while it lasts; None once its time has passed or its count was reached."""
    row = (session or db.session).get(Setting, snooze_key(group.id))
    return _active(_snooze(row.value) if row else None, group, now)


def _snooze(value: dict) -> Snooze:
    until = value.get("until")
    return Snooze(until=datetime.fromisoformat(until) if until else None, until_count=value.get("until_count"))


def _active(snooze: Snooze | None, group: ErrorGroup, now: datetime) -> Snooze | None:
    return snooze if snooze and snooze.active(group.occurrences, now) else None


# Changing: admins resolve, ignore, snooze and reopen; each change is audited.

def resolve_group(actor: StaffUser, group_id: int) -> ErrorGroup:
    """Mark the problem fixed; if it happens again the group reopens as a regression."""
    def apply(group: ErrorGroup) -> None:
        group.status, group.regression = GroupStatus.RESOLVED.value, False
        group.resolved_at, group.resolved_by_id = utcnow(), actor.id

    return _change(actor, group_id, "resolve", apply)


def ignore_group(actor: StaffUser, group_id: int) -> ErrorGroup:
    """Keep counting, stop asking: an ignored group never alerts and stays ignored when it recurs."""
    def apply(group: ErrorGroup) -> None:
        group.status = GroupStatus.IGNORED.value

    return _change(actor, group_id, "ignore", apply)


def reopen_group(actor: StaffUser, group_id: int) -> ErrorGroup:
    """Back to open (from resolved, ignored or snoozed)."""
    def apply(group: ErrorGroup) -> None:
        group.status, group.resolved_at, group.resolved_by_id = GroupStatus.OPEN.value, None, None

    return _change(actor, group_id, "reopen", apply)


def snooze_group(actor: StaffUser, group_id: int, period: str = "", events: int | None = None) -> ErrorGroup:
    """Quiet an open group's alerts for a period ("1h", "8h", "24h", "7d") or until `events` more happen."""
    if (period in SNOOZE_PERIODS) == bool(events):
        raise InvalidInput("Snooze for a period or until a number of new events (one of the two).", "period")
    if events is not None and not 1 <= events <= MAX_SNOOZE_EVENTS:
        raise InvalidInput(f"Snooze until 1 to {MAX_SNOOZE_EVENTS:,} more events.", "events")

    def apply(group: ErrorGroup) -> dict:
        if group.status != GroupStatus.OPEN.value:
            raise DomainError("Only an open group can be snoozed; reopen it first.")
        until = utcnow() + SNOOZE_PERIODS[period] if period else None
        value = {"until": until.isoformat() if until else None,
                 "until_count": group.occurrences + events if events else None}
        _write_snooze(actor, group.id, value)
        return {"snooze_until": value["until"], "snooze_until_count": value["until_count"]}

    return _change(actor, group_id, "snooze", apply, keep_snooze=True)


def _change(actor: StaffUser, group_id: int, action: str, apply, keep_snooze: bool = False) -> ErrorGroup:
    require_role(actor, Role.ADMIN)
    begin_write(db.session)
    group = db.session.get(ErrorGroup, group_id, with_for_update=True, populate_existing=True)
    if group is None:
        raise NotFound("No such error group.")
    before = audit.snapshot(group, GROUP_FIELDS)
    extra = apply(group) or {}
    if not keep_snooze:
        _clear_snooze(group.id)
    audit.record(f"errors.{action}", "error_group", group.id, actor=actor, before=before,
                 after={**audit.snapshot(group, GROUP_FIELDS), **extra})
    db.session.commit()
    return group


def _write_snooze(actor: StaffUser, group_id: int, value: dict) -> None:
    row = db.session.get(Setting, snooze_key(group_id))
    if row is None:
        db.session.add(Setting(key=snooze_key(group_id), value=value, version=1, updated_by_id=actor.id))
    else:
        row.value, row.version, row.updated_by_id = value, row.version + 1, actor.id


def _clear_snooze(group_id: int) -> None:
    row = db.session.get(Setting, snooze_key(group_id))
    if row is not None:
        db.session.delete(row)


# Housekeeping.

def prune_events(days: int = 90, now: datetime | None = None) -> int:
    """Delete events older than `days`, in batches; groups keep their counts and first/last seen."""
    if days < 1:
        raise InvalidInput("Keep at least one day of error events.", "days")
    cutoff, removed = (now or utcnow()) - timedelta(days=days), 0
    while True:
        batch = select(ErrorEvent.id).where(ErrorEvent.occurred_at < cutoff).limit(PRUNE_BATCH).scalar_subquery()
        deleted = db.session.execute(delete(ErrorEvent).where(ErrorEvent.id.in_(batch))
                                     .execution_options(synchronize_session=False)).rowcount
        db.session.commit()
        removed += deleted
        if deleted < PRUNE_BATCH:
            return removed
