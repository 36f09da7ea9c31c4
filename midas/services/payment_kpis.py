"""The payments dashboard's counters: revenue per currency, success and refund rates, failures, disputes.

Money is never summed across currencies: every amount here is a {currency: minor units} mapping.
Periods are UTC days; the week starts on Monday.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, time, timedelta

from sqlalchemy import and_, func, select

from midas.extensions import db
from midas.models import Dispute, DisputeStatus, Payment, PaymentKind, PaymentStatus, Refund, RefundStatus

OPEN_DISPUTES = (DisputeStatus.NEEDS_RESPONSE, DisputeStatus.WARNING_NEEDS_RESPONSE, DisputeStatus.UNDER_REVIEW,
                 DisputeStatus.WARNING_UNDER_REVIEW)

CHARGE_KINDS = (PaymentKind.CHARGE.value, PaymentKind.LATE_FEE.value)
RATE_WINDOW = timedelta(days=30)
SUCCEEDED, FAILED = PaymentStatus.SUCCEEDED.value, PaymentStatus.FAILED.value
PAID = PaymentStatus.paid()  # succeeded, then perhaps refunded in part or in full


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
    """Every counter of the payments dashboard as of `now` (timezone-aware UTC).

    Five statements however many payments: the dashboard is requested often and its table is large, so
    each counter family is one pass with FILTERed aggregates rather than one scan per number.
    """
    window = window_figures(now - RATE_WINDOW)
    decided = window.succeeded + window.failed
    return PaymentKpis(revenue=revenue(now), success_rate=window.succeeded / decided if decided else None,
                       average_payment=window.average, failed_24h=failed_since(now - timedelta(hours=24)),
                       refund_rate=window.refunded / window.charges if window.charges else None,
                       open_disputes=open_disputes())


def period_starts(now: datetime) -> dict[str, datetime]:
    today = datetime.combine(now.date(), time.min, now.tzinfo)
    return {"today": today, "week": today - timedelta(days=today.weekday()), "month": today.replace(day=1)}


def revenue(now: datetime) -> dict[str, dict[str, int]]:
    """Succeeded charges minus succeeded refunds, per period and currency: one pass each over the earliest period."""
    starts = period_starts(now)
    earliest = min(starts.values())
    # Every path that marks a payment succeeded stamps succeeded_at, so the ix_payments_succeeded range applies.
    charges = db.session.execute(select(Payment.currency, *(
        func.sum(Payment.amount).filter(Payment.succeeded_at >= start) for start in starts.values())).where(
        Payment.succeeded_at >= earliest, Payment.kind.in_(CHARGE_KINDS), Payment.status.in_(PAID))
        .group_by(Payment.currency))
    refunded_at = func.coalesce(Refund.succeeded_at, Refund.created_at)
    refunds = db.session.execute(select(Refund.currency, *(
        func.sum(Refund.amount).filter(refunded_at >= start) for start in starts.values())).where(
        Refund.status == RefundStatus.SUCCEEDED.value, refunded_at >= earliest).group_by(Refund.currency))
    net: dict[str, dict[str, int]] = {period: defaultdict(int) for period in starts}
    for sign, rows in ((1, charges), (-1, refunds)):
        for currency, *totals in rows:
            for period, total in zip(starts, totals, strict=True):
                if total is not None:
                    net[period][currency] += sign * int(total)
    return {period: dict(sorted(by_currency.items())) for period, by_currency in net.items()}


@dataclass(frozen=True)
class WindowFigures:
    succeeded: int  # payments of any kind
    failed: int
    charges: int  # succeeded charges (and late fees)
    refunded: int  # of those, how many have any refund
    average: dict[str, int]  # currency → mean succeeded charge, half-up


def window_figures(since: datetime) -> WindowFigures:
    """Success, average charge and refund counts of payments created since `since`, in one pass."""
    charge = and_(Payment.kind.in_(CHARGE_KINDS), Payment.status.in_(PAID))
    rows = db.session.execute(select(
        Payment.currency, func.count().filter(Payment.status.in_(PAID)),
        func.count().filter(Payment.status == FAILED), func.count().filter(charge),
        func.sum(Payment.amount).filter(charge), func.count().filter(charge, Payment.amount_refunded > 0),
    ).where(Payment.created_at >= since, Payment.status.in_((*PAID, FAILED))).group_by(Payment.currency)).all()
    return WindowFigures(
        succeeded=sum(row[1] for row in rows), failed=sum(row[2] for row in rows),
        charges=sum(row[3] for row in rows), refunded=sum(row[5] for row in rows),
        average={currency: (int(total) + count // 2) // count
                 for currency, _, _, count, total, _ in sorted(rows) if count},
    )


def failed_since(since: datetime) -> int:
    return db.session.scalar(select(func.count()).select_from(Payment).where(
        Payment.status == FAILED, Payment.updated_at >= since)) or 0


def open_disputes() -> int:
    return db.session.scalar(select(func.count()).select_from(Dispute).where(
        Dispute.status.in_([s.value for s in OPEN_DISPUTES]))) or 0
