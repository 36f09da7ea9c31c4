"""The refunds dashboard: the queues staff work through, the history with its filters, and the KPIs."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from sqlalchemy import Select, func, or_, select
from sqlalchemy.orm import joinedload

from midas.extensions import db
from midas.models import Booking, Payment, PaymentKind, PaymentStatus, Refund, RefundOverride, RefundStatus, utcnow
from midas.services.listing import Page, matches, paginate
from midas.services.reports.base import epoch

S = RefundStatus
# Each queue is what somebody has to act on next: an admin decides, the provider answers, an admin retries.
QUEUES = {
    "awaiting_approval": ("Awaiting approval", (S.PENDING_APPROVAL.value,)),
    "processing": ("Processing", (S.APPROVED.value, S.PROCESSING.value)),
    "failed": ("Failed", (S.FAILED.value,)),
}
QUEUE_SIZE = 20
RATE_WINDOW = timedelta(days=90)
SPEED_WINDOW = timedelta(days=90)


@dataclass(frozen=True)
class Queue:
    key: str
    title: str
    refunds: list[Refund]
    total: int


@dataclass(frozen=True)
class HistoryFilters:
    """The history's query arguments, cleaned: unknown values mean no filter."""

    status: str = ""
    currency: str = ""
    provider: str = ""
    override: str = ""
    q: str = ""
    since: date | None = None
    until: date | None = None
    requested_by_id: int | None = None  # "my requests": the requester follows the outcome of their own


@dataclass(frozen=True)
class Kpis:
    refund_rate_bp: int | None  # paid charges of the window with a succeeded refund, in basis points
    refunded_this_month: dict[str, int]  # currency → minor units of refunds that succeeded this UTC month
    average_days: float | None  # from request to money back, over refunds that succeeded in the window
    rate_window_days: int = RATE_WINDOW.days


def queues() -> list[Queue]:
    """The three work queues, oldest first so nobody waits longest, with their full counts."""
    result = []
    for key, (title, statuses) in QUEUES.items():
        stmt = _with_relations(select(Refund).where(Refund.status.in_(statuses)))
        rows = db.session.scalars(stmt.order_by(Refund.created_at, Refund.id).limit(QUEUE_SIZE)).all()
        total = db.session.scalar(select(func.count()).select_from(Refund).where(Refund.status.in_(statuses)))
        result.append(Queue(key, title, list(rows), total or 0))
    return result


def history(filters: HistoryFilters, page: int) -> Page:
    """Every refund decision, newest first, narrowed by the filters."""
    stmt = _filtered(_with_relations(select(Refund)), filters)
    return paginate(stmt.order_by(Refund.created_at.desc(), Refund.id.desc()), page)


def _with_relations(stmt: Select) -> Select:
    return stmt.options(joinedload(Refund.booking), joinedload(Refund.requested_by), joinedload(Refund.payment))


def _filtered(stmt: Select, filters: HistoryFilters) -> Select:
    if filters.status in S.values():
        stmt = stmt.where(Refund.status == filters.status)
    if filters.currency:
        stmt = stmt.where(Refund.currency == filters.currency)
    if filters.override in RefundOverride.values():
        stmt = stmt.where(Refund.override == filters.override)
    if filters.provider:
        stmt = stmt.where(Refund.payment_id.in_(select(Payment.id).where(Payment.provider == filters.provider)))
    if filters.q:
        stmt = stmt.where(or_(Refund.booking_id.in_(select(Booking.id).where(matches(filters.q, Booking.reference))),
                              matches(filters.q, Refund.reason), Refund.provider_ref == filters.q))
    if filters.requested_by_id:
        stmt = stmt.where(Refund.requested_by_id == filters.requested_by_id)
    if filters.since:
        stmt = stmt.where(Refund.created_at >= datetime.combine(filters.since, time(), UTC))
    if filters.until:
        stmt = stmt.where(Refund.created_at < datetime.combine(filters.until + timedelta(days=1), time(), UTC))
    return stmt


def currencies() -> list[str]:
    """The currencies refunds were made in, for the filter's choices."""
    return list(db.session.scalars(select(Refund.currency).distinct().order_by(Refund.currency)))


def kpis(now: datetime | None = None) -> Kpis:
    """Refund rate, refunded this month per currency, and average days from request to refund."""
    now = now or utcnow()
    return Kpis(_refund_rate(now - RATE_WINDOW), _refunded_since(now.replace(day=1, hour=0, minute=0, second=0,
                                                                                microsecond=0)),
                _average_days(now - SPEED_WINDOW))


def _refund_rate(since: datetime) -> int | None:
    paid = (Payment.kind != PaymentKind.DEPOSIT.value, Payment.status.in_(PaymentStatus.paid()),
            Payment.succeeded_at >= since)
    total, refunded = db.session.execute(select(
        func.count(), func.count().filter(Payment.amount_refunded > 0)).where(*paid)).one()
    return (refunded * 10000 + total // 2) // total if total else None  # half-up, basis points


def _refunded_since(start: datetime) -> dict[str, int]:
    rows = db.session.execute(select(Refund.currency, func.sum(Refund.amount)).where(
        Refund.status == S.SUCCEEDED.value, Refund.succeeded_at >= start).group_by(Refund.currency)
        .order_by(Refund.currency))
    return {currency: int(total) for currency, total in rows}


def _average_days(since: datetime) -> float | None:
    seconds = db.session.scalar(select(func.avg(epoch(Refund.succeeded_at) - epoch(Refund.created_at))).where(
        Refund.status == S.SUCCEEDED.value, Refund.succeeded_at >= since))
    return None if seconds is None else round(float(seconds) / 86400, 1)
