"""Provider event jobs: apply one stored Stripe event, and retry the ones whose next attempt is due."""

from __future__ import annotations

from midas.services import webhook_log

PROCESS_STRIPE_EVENT = "midas.tasks.webhooks.process_stripe_event"


def process_stripe_event(event_pk: int) -> str:
    """Apply the stored event `event_pk` (our id); running it twice changes nothing more."""
    return webhook_log.process_event(event_pk)


def retry_due_stripe_events() -> int:
    """Periodic: run received events whose next attempt is due (backoff, lost jobs); returns how many ran."""
    return len(webhook_log.retry_due_events())
