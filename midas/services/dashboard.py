"""The home page: each location's day in its own time, the queues waiting on staff, and 30-day KPI trends."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, and_, case, func, or_, select

from midas.extensions import db
from midas.models import (
    Booking,
    BookingStatus,
    ErrorGroup,
    GroupStatus,
    Item,
    Location,
    Payment,
    Refund,
    RefundStatus,
    Severity,
    utcnow,
)
from midas.money import format_money
from midas.services import errors as error_log
from midas.services import webhooks
from midas.services.payment_kpis import FAILED, OPEN_DISPUTES, PAID, open_disputes
from midas.services.reports.base import percent, ratio_bp, utc_day

# OPEN_DISPUTES moved to payment_kpis (which this module reads); it stays importable from here.
__all__ = ["OPEN_DISPUTES", "HomeBoard", "LocationBoard", "Tile", "Trend", "home_board"]
from midas.timeutil import day_bounds, to_local

HOLD_WARNING = timedelta(hours=1)  # a payment hold this close to lapsing is worth a call to the customer
TREND_DAYS = 30
TICK = timedelta(microseconds=1)  # [start, end) as BETWEEN start AND end - TICK
S = BookingStatus


@dataclass
class Tile:
    key: str
    label: str
    value: int
    endpoint: str
    args: dict
    alert: bool = False


@dataclass
class LocationBoard:
    location: Location
    local_now: datetime  # the time at the location now
    tiles: list[Tile]

    @property
    def day(self) -> date:
        return self.local_now.date()


@dataclass
class Trend:
    """One KPI as a value per UTC day, oldest first, and its figure over the whole window."""

    key: str
    label: str
    kind: str  # money (minor units of `currency`) | int | bp (basis points)
    days: list[date]
    values: list[int | None]  # None: nothing to measure that day (a rate with no decided payment)
    total: int | None
    currency: str | None = None

    def display(self, value: int | None) -> str:
        """A figure as the page prints it: money with its symbol, a rate as a percentage, a count."""
        if value is None:
            return "—"
        if self.kind == "money":
            return format_money(value, self.currency)
        if self.kind == "bp":
            return f"{percent(value)}%"
        return f"{value:,}"

    def segments(self, width: float, height: float) -> list[list[tuple[float, float]]]:
        """SVG points, one run per stretch of days with a value (a day without one breaks the line)."""
        known = [value for value in self.values if value is not None]
        low, high = min(known, default=0), max(known, default=0)
        low = min(low, 0) if self.kind != "bp" else 0  # counts and rates read from zero
        high = 10000 if self.kind == "bp" else high
        span, step = (high - low) or 1, width / max(len(self.values) - 1, 1)
        runs: list[list[tuple[float, float]]] = [[]]
        for index, value in enumerate(self.values):
            if value is None:
                runs.append([])
                continue
            runs[-1].append((round(index * step, 1), round(height - (value - low) / span * height, 1)))
        return [run for run in runs if run]


@dataclass
class HomeBoard:
    now: datetime
    locations: list[LocationBoard]
    queues: list[Tile]
    stale_feeds: list[str]
    trends: list[Trend] = field(default_factory=list)


def home_board(now: datetime | None = None) -> HomeBoard:
    """Everything the home page shows as of `now` (aware UTC): the same few statements for any number of locations."""
    now = now or utcnow()
    locations = list(db.session.scalars(select(Location).order_by(Location.name)))
    return HomeBoard(now, location_boards(locations, now), queue_tiles(now),
                     webhooks.stale_feeds(now), kpi_trends(now))


def location_boards(locations: list[Location], now: datetime) -> list[LocationBoard]:
    """Today at each location, in its own zone: hand-overs, returns, and bookings waiting on a payment.

    One statement for every location: each location's own local day is a condition on its own rows."""
    if not locations:
        return []
    days = {location.id: day_bounds(to_local(now, location.timezone).date(), location.timezone)
            for location in locations}

    def today_there(column):
        return or_(*(and_(Item.location_id == location_id, column.between(start, end - TICK))
                     for location_id, (start, end) in days.items()))

    def count_if(condition):
        return func.coalesce(func.sum(case((condition, 1), else_=0)), 0)

    pending = Booking.status == S.PENDING_PAYMENT.value
    stmt = (select(Item.location_id,
                   count_if((Booking.status == S.CONFIRMED.value) & today_there(Booking.starts_at)),
                   count_if((Booking.status == S.IN_PROGRESS.value) & today_there(Booking.ends_at)),
                   count_if(pending), count_if(pending & (Booking.hold_expires_at < now + HOLD_WARNING)))
            .join(Item, Booking.item_id == Item.id)
            .where(_maybe_today(days.values(), pending))
            .group_by(Item.location_id))
    counts = {location_id: [int(n) for n in numbers] for location_id, *numbers in db.session.execute(stmt)}
    return [_location_board(location, to_local(now, location.timezone), *counts.get(location.id, [0, 0, 0, 0]))
            for location in locations]


def _maybe_today(days, pending) -> ColumnElement[bool]:
    """The only rows the board can count: pending ones, and hand-overs and returns within the span of every
    location's today. Read through the (status, starts_at) index instead of every future booking."""
    first, last = min(start for start, _ in days), max(end for _, end in days) - TICK
    return or_((Booking.status == S.CONFIRMED.value) & Booking.starts_at.between(first, last),
               (Booking.status == S.IN_PROGRESS.value) & Booking.ends_at.between(first, last), pending)


def _location_board(location: Location, local_now: datetime, pickups: int, returns: int, awaiting: int,
                    expiring: int) -> LocationBoard:
    awaiting_args = {"status": S.PENDING_PAYMENT.value, "location": location.id, "sort": "starts_at"}
    return LocationBoard(location, local_now, [
        Tile("pickups", "Pickups today", pickups, "bookings.today", {}),
        Tile("returns", "Returns today", returns, "bookings.today", {}),
        Tile("awaiting-payment", "Awaiting payment", awaiting, "bookings.index", awaiting_args),
        Tile("holds-expiring", "Holds expiring within the hour", expiring, "bookings.index", awaiting_args,
             expiring > 0),
    ])


def queue_tiles(now: datetime) -> list[Tile]:
    """Business-wide queues waiting on staff; each links to its filtered list."""
    approvals = _count(select(Refund.id).where(Refund.status == RefundStatus.PENDING_APPROVAL.value))
    disputes = open_disputes()
    errors = _count(select(ErrorGroup.id).where(ErrorGroup.status == GroupStatus.OPEN.value,
                                                ErrorGroup.severity == Severity.HIGH.value))
    recent_errors = error_log.events_since(now - timedelta(hours=1))
    return [
        Tile("refund-approvals", "Refunds awaiting approval", approvals, "refunds.index",
             {"status": "pending_approval"}, approvals > 0),
        Tile("open-disputes", "Open disputes", disputes, "payments.index", {"disputes": "open"}, disputes > 0),
        Tile("high-errors", "Open high-severity errors", errors, "errors.index", {"severity": "HIGH", "status": "open"},
             errors > 0),
        Tile("recent-errors", "Errors in the last hour", recent_errors, "errors.index", {"period": "1h"}),
    ]


def _count(stmt) -> int:
    return db.session.scalar(select(func.count()).select_from(stmt.subquery())) or 0


def trend_days(now: datetime) -> list[date]:
    """The last TREND_DAYS UTC days, today included, oldest first."""
    today = now.date()
    return [today - timedelta(days=back) for back in range(TREND_DAYS - 1, -1, -1)]


def kpi_trends(now: datetime) -> list[Trend]:
    """Net revenue (one trend per currency), bookings made and payment success rate, per UTC day."""
    days = trend_days(now)
    since = datetime.combine(days[0], datetime.min.time(), now.tzinfo)
    revenue = _net_revenue_by_day(since)
    trends = [Trend(f"revenue-{currency.lower()}", f"Net revenue ({currency})", "money", days,
                    [by_day.get(day, 0) for day in days], sum(by_day.values()), currency)
              for currency, by_day in sorted(revenue.items())]
    bookings = _per_day(select(utc_day(Booking.created_at), func.count(Booking.id))
                        .where(Booking.created_at >= since).group_by(utc_day(Booking.created_at)))
    trends.append(Trend("bookings", "Bookings made", "int", days, [int(bookings.get(day, 0)) for day in days],
                        int(sum(bookings.values()))))
    decided = _success_by_day(since)
    rates = [ratio_bp(*decided[day]) if day in decided else None for day in days]
    succeeded, total = sum(s for s, _ in decided.values()), sum(t for _, t in decided.values())
    trends.append(Trend("success-rate", "Payment success rate", "bp", days, rates, ratio_bp(succeeded, total)))
    return trends


def _per_day(stmt) -> dict[date, Any]:
    return dict(db.session.execute(stmt).tuples().all())


def _net_revenue_by_day(since: datetime) -> dict[str, dict[date, int]]:
    """Money captured less succeeded refunds, per currency and UTC day, as the revenue report counts it.

    A deposit hold counts for what was captured of it (a late fee, damage); an open or released hold is 0."""
    net: dict[str, dict[date, int]] = defaultdict(lambda: defaultdict(int))
    charge_day = utc_day(Payment.succeeded_at)
    charges = (select(Payment.currency, charge_day, func.sum(Payment.amount_captured))
               .where(Payment.succeeded_at >= since, Payment.status.in_(PAID))
               .group_by(Payment.currency, charge_day))
    refunded_at = func.coalesce(Refund.succeeded_at, Refund.created_at)
    refund_day = utc_day(refunded_at)
    refunds = (select(Refund.currency, refund_day, func.sum(Refund.amount))
               .where(Refund.status == RefundStatus.SUCCEEDED.value, refunded_at >= since)
               .group_by(Refund.currency, refund_day))
    for sign, stmt in ((1, charges), (-1, refunds)):
        for currency, day, total in db.session.execute(stmt):
            net[currency][day] += sign * int(total)
    return net


def _success_by_day(since: datetime) -> dict[date, tuple[int, int]]:
    """(succeeded, succeeded + failed) of the payments created each UTC day; a refunded payment did succeed."""
    day = utc_day(Payment.created_at)
    stmt = (select(day, func.sum(case((Payment.status.in_(PAID), 1), else_=0)), func.count(Payment.id))
            .where(Payment.created_at >= since, Payment.status.in_((*PAID, FAILED))).group_by(day))
    return {when: (int(succeeded), int(total)) for when, succeeded, total in db.session.execute(stmt)}
