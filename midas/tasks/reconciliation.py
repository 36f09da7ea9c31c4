"""The daily reconciliation with Stripe (registered with the scheduler elsewhere)."""

from __future__ import annotations

from datetime import timedelta

from midas.integrations.stripe_gateway import stripe_configured
from midas.models import utcnow
from midas.services import reconciliation

RECONCILE_DAILY = "midas.tasks.reconciliation.reconcile_daily"
LOOKBACK_DAYS = 3  # late refunds and disputes still move objects created a few days ago


def reconcile_daily() -> int:
    """Reconcile the last few days with Stripe and keep the report for the page; returns the difference count."""
    if not stripe_configured():
        return 0
    today = utcnow().date()
    report = reconciliation.run_and_save(today - timedelta(days=LOOKBACK_DAYS), today)
    return len(report.differences)
