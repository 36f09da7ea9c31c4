"""Message jobs: send one outbox row, sweep the outbox, write the reminders that are due."""

from __future__ import annotations

from midas.services import notifications, outbox
from midas.tasks.queue import redis_configured


class DeliveryDeferred(Exception):
    """Every provider failed for now; raised so RQ's Retry runs the job again after the backoff."""


def send_notification(notification_id: int) -> str:
    """Deliver one outbox row; running it twice (or in parallel) sends once."""
    outcome = outbox.deliver(notification_id)
    if outcome == "retry" and redis_configured():
        raise DeliveryDeferred(f"notification {notification_id}: all providers failed, retrying with backoff")
    return outcome


def sweep_outbox() -> dict[str, int]:
    """Re-dispatch rows left pending (a lost job) or stuck sending (a killed worker)."""
    result = outbox.sweep()
    return {"requeued": len(result.requeued), "unstuck": len(result.unstuck), "failed": len(result.failed)}


def queue_reminders() -> int:
    """Write the hold-ending, pick-up and return-day messages that are due."""
    return notifications.queue_reminders()
