"""PayPal jobs: verify and apply a stored IPN message, and pick up messages whose job was lost."""

from __future__ import annotations

from datetime import datetime, timedelta

from rq import Retry
from sqlalchemy import select

from midas.extensions import db
from midas.models import ErrorCategory, EventStatus, WebhookEvent, utcnow
from midas.services import paypal_ipn, refunds
from midas.tasks.capture import captured
from midas.tasks.queue import dispatch_safely

# PayPal down, or a refund reported before its payment: try again later, less and less often.
BACKOFF = (30, 120, 600, 3600, 6 * 3600)
STALE_AFTER = timedelta(minutes=5)


@captured(ErrorCategory.WEBHOOK)
def process_ipn(event_id: int) -> str:
    """Verify one stored IPN message with PayPal and apply it once; raises RetryLater so RQ tries again."""
    return paypal_ipn.process(event_id)


def dispatch_ipn(event_id: int) -> bool:
    """Queue the processing (in the embedded default: run it now); never raises, the message is stored."""
    return dispatch_safely(process_ipn, event_id, queue="high", retry=Retry(max=len(BACKOFF), interval=list(BACKOFF)),
                           description=f"paypal ipn {event_id}")


@captured(ErrorCategory.PAYMENT)
def follow_refunds() -> int:
    """Ask PayPal about refunds still processing (a PENDING refund settles days later); returns how many ended."""
    return refunds.follow_pending_paypal()


def sweep_ipn(now: datetime | None = None) -> int:
    """Re-dispatch IPN messages still unprocessed a while after they arrived (their job was lost); returns how many."""
    cutoff = (now or utcnow()) - STALE_AFTER
    stale = list(db.session.scalars(select(WebhookEvent.id).where(
        WebhookEvent.provider == "paypal", WebhookEvent.status == EventStatus.RECEIVED.value,
        WebhookEvent.received_at < cutoff)))
    db.session.commit()
    return sum(dispatch_ipn(event_id) for event_id in stale)
