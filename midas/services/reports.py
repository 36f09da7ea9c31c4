"""Reports: numbers an owner can trust, never summed across currencies."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta

from sqlalchemy import select

from midas.extensions import db
from midas.models import Payment, PaymentKind, PaymentStatus, utcnow


def revenue_by_month(months: int = 12, now: datetime | None = None) -> dict[str, list[tuple[str, int]]]:
    """Net card/PayPal/offline revenue (captured minus refunded) per currency per month, oldest first."""
    now = now or utcnow()
    since = (now - timedelta(days=31 * months)).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    rows = db.session.execute(
        select(Payment.succeeded_at, Payment.currency, Payment.amount_captured, Payment.amount_refunded)
        .where(Payment.status == PaymentStatus.SUCCEEDED.value, Payment.kind != PaymentKind.DEPOSIT.value,
               Payment.succeeded_at >= since)
    )
    totals: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for succeeded_at, currency, captured, refunded in rows:
        totals[currency][succeeded_at.strftime("%Y-%m")] += captured - refunded
    return {currency: sorted(months_.items()) for currency, months_ in sorted(totals.items())}
