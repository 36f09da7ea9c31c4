"""The payments dashboard's counters: revenue per currency, success and refund rates, failures, disputes.

Money is never summed across currencies: every amount here is a {currency: minor units} mapping.
Periods are UTC days; the week starts on Monday.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, time, timedelta

from sqlalchemy import func, select

from midas.extensions import db
from midas.models import Dispute, Payment, PaymentKind, PaymentStatus, Refund, RefundStatus
from midas.services.dashboard import OPEN_DISPUTES

CHARGE_KINDS = (PaymentKind.CHARGE.value, PaymentKind.LATE_FEE.value)
RATE_WINDOW = timedelta(days=30)
SUCCEEDED, FAILED = PaymentStatus.SUCCEEDED.value, PaymentStatus.FAILED.value


@dataclass(frozen=True)
class PaymentKpis:
    revenue: dict[str, dict[str, int]]  # period (today, week, month) → currency → net minor units
    success_rate: float | None  # succeeded / (succeeded + failed), last 30 days
    average_payment: dict[str, int]  # currency → mean succeeded charge, last 30 days
    failed_24h: int
    refund_rate: float | None  # succeeded charges of the last 30 days with any refund
    open_disputes: int

    @property
    def currencies(self) -> list[str]:
        return sorted({c for by_currency in self.revenue.values() for c in by_currency})


def payment_kpis(now: datetime) -> PaymentKpis:
    """Every counter of the payments dashboard as of `now` (timezone-aware UTC)."""
    since = now - RATE_WINDOW
    return PaymentKpis(revenue=revenue(now), success_rate=success_rate(since), average_payment=average_payment(since),
                       failed_24h=failed_since(now - timedelta(hours=24)), refund_rate=refund_rate(since),
                       open_disputes=open_disputes())


def period_starts(now: datetime) -> dict[str, datetime]:
    today = datetime.combine(now.date(), time.min, now.tzinfo)
    return {"today": today, "week": today - timedelta(days=today.weekday()), "month": today.replace(day=1)}


def revenue(now: datetime) -> dict[str, dict[str, int]]:
    """Succeeded charges minus succeeded refunds, per period and currency."""
    return {period: net_revenue(start) for period, start in period_starts(now).items()}


def net_revenue(start: datetime) -> dict[str, int]:
    # Every path that marks a payment succeeded stamps succeeded_at, so the ix_payments_succeeded range applies.
    charges = db.session.execute(select(Payment.currency, func.sum(Payment.amount)).where(
        Payment.succeeded_at >= start, Payment.kind.in_(CHARGE_KINDS), Payment.status == SUCCEEDED)
        .group_by(Payment.currency))
    refunds = db.session.execute(select(Refund.currency, func.sum(Refund.amount)).where(
        Refund.status == RefundStatus.SUCCEEDED.value,
        func.coalesce(Refund.succeeded_at, Refund.created_at) >= start).group_by(Refund.currency))
    net: dict[str, int] = defaultdict(int)
    for currency, total in charges:
        net[currency] += int(total)
    for currency, total in refunds:
        net[currency] -= int(total)
    return dict(sorted(net.items()))


def success_rate(since: datetime) -> float | None:
    counts = dict(db.session.execute(select(Payment.status, func.count()).where(
        Payment.created_at >= since, Payment.status.in_((SUCCEEDED, FAILED))).group_by(Payment.status)).all())
    decided = counts.get(SUCCEEDED, 0) + counts.get(FAILED, 0)
    return counts.get(SUCCEEDED, 0) / decided if decided else None


def average_payment(since: datetime) -> dict[str, int]:
    rows = db.session.execute(select(Payment.currency, func.sum(Payment.amount), func.count()).where(
        Payment.kind.in_(CHARGE_KINDS), Payment.status == SUCCEEDED, Payment.created_at >= since)
        .group_by(Payment.currency).order_by(Payment.currency))
    return {currency: (int(total) + count // 2) // count for currency, total, count in rows}  # half-up


def failed_since(since: datetime) -> int:
    return db.session.scalar(select(func.count()).select_from(Payment).where(
        Payment.status == FAILED, Payment.updated_at >= since)) or 0


def refund_rate(since: datetime) -> float | None:
    succeeded = select(Payment).where(Payment.kind.in_(CHARGE_KINDS), Payment.status == SUCCEEDED,
                                      Payment.created_at >= since).subquery()
    total = db.session.scalar(select(func.count()).select_from(succeeded)) or 0
    refunded = db.session.scalar(select(func.count()).select_from(succeeded).where(succeeded.c.amount_refunded > 0))
    return (refunded or 0) / total if total else None


def open_disputes() -> int:
    return db.session.scalar(select(func.count()).select_from(Dispute).where(
        Dispute.status.in_([s.value for s in OPEN_DISPUTES]))) or 0
