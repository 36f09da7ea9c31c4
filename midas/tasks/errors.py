"""Error log jobs: send one group's alert, check every rule (periodic), prune old events (periodic)."""

from __future__ import annotations

from midas.models import ErrorCategory
from midas.services import alerts, errors
from midas.tasks.capture import captured


@captured(ErrorCategory.SYSTEM, alerts=False)
def send_error_alert(group_id: int) -> bool:
    """Stage the alert for a group if it is still due; running it twice alerts once."""
    return alerts.send_alert(group_id)


@captured(ErrorCategory.SYSTEM, alerts=False)
def check_alerts() -> int:
    """Every minute: alert the groups whose rules fire or whose throttled events are owed a digest."""
    return alerts.check_alerts()


@captured(ErrorCategory.SYSTEM, alerts=False)
def prune_error_events(days: int = 90) -> int:
    """Daily: delete error events older than `days`; groups keep their counts."""
    return errors.prune_events(days)
