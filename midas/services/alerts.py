"""Alert rules: when captured errors cross a rule's threshold, staff hear of it on Slack and by email.

A group alerts when it is open and not snoozed, has not alerted in the last 15 minutes, and either
- a rule of its category fires: N events of at least the rule's severity in the last M minutes across
  the category, one of them this group's and newer than its last alert (HIGH PAYMENT errors: at once), or
- it was throttled: qualifying events arrived in the 15 minutes after its last alert (the digest).
Each alert tells how many events came since the previous one ("and 37 more since 10:02").

The decision reads a handful of indexed counts, so capture can ask it inline; `check_alerts` (periodic)
catches digests and anything whose inline dispatch was lost. Messages go through the outbox.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime, timedelta

from flask import current_app
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from midas.extensions import db
from midas.formatting import local_time
from midas.models import ErrorCategory, ErrorEvent, ErrorGroup, GroupStatus, Notification, Severity, utcnow
from midas.services import errors, notifications, outbox, settings
from midas.services.outbox import Message
from midas.tasks.queue import dispatch_safely

THROTTLE = timedelta(minutes=15)  # at most one alert per group in this long
LOOKBACK = timedelta(hours=24)  # an alert older than this is not "the last one": no digest reaches back further
TEMPLATE = "error_alert"
RANK = {Severity.LOW.value: 0, Severity.MEDIUM.value: 1, Severity.HIGH.value: 2}
WHEN = "%d %b %H:%M"  # local_time adds the zone
ALERT_JOB = "midas.tasks.errors.send_error_alert"
log = logging.getLogger(__name__)
# False while the error log's own jobs run: a failure there is recorded but must not alert (no loops).
_alerting: ContextVar[bool] = ContextVar("midas_alerting", default=True)


@dataclass(frozen=True)
class Rule:
    category: str
    min_severity: str
    events: int
    minutes: int

    @property
    def severities(self) -> list[str]:
        return [s for s, rank in RANK.items() if rank >= RANK[self.min_severity]]

    def describe(self) -> str:
        if self.events == 1:
            return f"a {self.min_severity} {self.category} error"
        return f"{self.events} {self.category} errors ({self.min_severity} or worse) within {self.minutes} minutes"


IMMEDIATE = Rule(ErrorCategory.PAYMENT.value, Severity.HIGH.value, events=1, minutes=15)  # HIGH PAYMENT: at once


@dataclass(frozen=True)
class Alert:
    group_id: int
    reason: str
    window_count: int  # events counted by the rule that fired (0 for a digest)
    more: int  # events of the group since its previous alert
    since: datetime | None  # when that previous alert went out


def rules_for(category: str, session: Session | None = None) -> list[Rule]:
    """The rules watching a category: the owner's (if on), and for payments the HIGH-at-once rule."""
    configured = settings.get_alert_rules(session).get(category)
    rules = [IMMEDIATE] if category == ErrorCategory.PAYMENT else []
    if configured and configured["enabled"]:
        rules.append(Rule(category, configured["min_severity"], configured["events"], configured["minutes"]))
    return rules


def due_alert(session: Session, group: ErrorGroup, now: datetime | None = None) -> Alert | None:
    """Whether `group` should alert now, and what the alert says; reads only."""
    now = now or utcnow()
    rules = rules_for(group.category, session)
    if group.status != GroupStatus.OPEN.value or not rules or errors.snooze_for(group, now, session):
        return None
    last = last_alert_at(session, group.id, now)
    if last and now - last < THROTTLE:
        return None
    for rule in rules:
        count = _fired(session, group, rule, last, now)
        if count:
            return Alert(group.id, rule.describe(), count, _more(session, group.id, last), last)
    if last and _throttled(session, group.id, rules, last):
        return Alert(group.id, "it kept happening after the last alert", 0, _more(session, group.id, last), last)
    return None


def last_alert_at(session: Session, group_id: int, now: datetime) -> datetime | None:
    """The group's latest alert within the lookback (the created_at index bounds the scan)."""
    return session.scalar(select(func.max(Notification.created_at)).where(
        Notification.created_at >= now - LOOKBACK, Notification.template == TEMPLATE,
        Notification.dedupe_key.like(f"alert:{group_id}:%")))


def _fired(session: Session, group: ErrorGroup, rule: Rule, last: datetime | None, now: datetime) -> int:
    """The rule's count over its window when it fires for this group, else 0."""
    since = now - timedelta(minutes=rule.minutes)
    fresh = _count(session, rule.severities, since=max(since, last) if last else since, group_id=group.id)
    if not fresh:
        return 0
    total = _count(session, rule.severities, since=since, category=group.category)
    return total if total >= rule.events else 0


def _throttled(session: Session, group_id: int, rules: list[Rule], last: datetime) -> bool:
    severities = sorted({severity for rule in rules for severity in rule.severities})
    return bool(_count(session, severities, since=last, until=last + THROTTLE, group_id=group_id))


def _more(session: Session, group_id: int, last: datetime | None) -> int:
    return _count(session, list(RANK), since=last, group_id=group_id) if last else 0


def _count(session: Session, severities: list[str], since: datetime, until: datetime | None = None,
           group_id: int | None = None, category: str | None = None) -> int:
    stmt = select(func.count(ErrorEvent.id)).where(ErrorEvent.severity.in_(severities), ErrorEvent.occurred_at > since)
    if until is not None:
        stmt = stmt.where(ErrorEvent.occurred_at <= until)
    if group_id is not None:
        stmt = stmt.where(ErrorEvent.group_id == group_id)
    if category is not None:
        stmt = stmt.join(ErrorGroup, ErrorGroup.id == ErrorEvent.group_id).where(ErrorGroup.category == category)
    return session.scalar(stmt) or 0


# On capture: decide inline (capture's own session), send from a job.

@contextmanager
def alerts_suppressed() -> Iterator[None]:
    token = _alerting.set(False)
    try:
        yield
    finally:
        _alerting.reset(token)


def due_on_capture(session: Session, group: ErrorGroup) -> bool:
    """Whether the error just captured makes its group alert; never raises (capture must not fail)."""
    if not _alerting.get():
        return False
    try:
        return due_alert(session, group) is not None
    except Exception:
        log.exception("alert rules could not be evaluated for error group %s", group.id)
        return False


def dispatch_alert(group_id: int) -> None:
    """Queue the alert job (in the embedded default: run it now, quietly); never raises."""
    with alerts_suppressed():
        dispatch_safely(ALERT_JOB, group_id, queue="high")


# Sending (a job: its own session and transaction).

def send_alert(group_id: int, now: datetime | None = None) -> bool:
    """Stage the Slack and email alert for a group if one is due; True when something was staged."""
    now = now or utcnow()
    group = db.session.get(ErrorGroup, group_id)
    alert = due_alert(db.session, group, now) if group else None
    if alert is None:
        db.session.rollback()
        return False
    staged = _stage(group, alert, now)
    db.session.commit()
    return staged


def check_alerts(now: datetime | None = None) -> int:
    """Alert every recently active group that is due (thresholds crossed, digests owed); returns how many."""
    now = now or utcnow()
    longest = max([THROTTLE * 2] + [timedelta(minutes=rule["minutes"]) for rule in settings.get_alert_rules().values()])
    group_ids = db.session.scalars(select(ErrorGroup.id).where(
        ErrorGroup.status == GroupStatus.OPEN.value, ErrorGroup.last_seen_at >= now - longest)).all()
    return sum(send_alert(group_id, now) for group_id in group_ids)


def _stage(group: ErrorGroup, alert: Alert, now: datetime) -> bool:
    context = alert_context(group, alert)
    key = f"alert:{group.id}:{int(now.timestamp()) // int(THROTTLE.total_seconds())}"
    messages = [Message("email", TEMPLATE, address, f"{key}:email:{address}", context)
                for address in notifications.alert_recipients()]
    if current_app.config.get("SLACK_WEBHOOK_URL"):
        messages.append(Message("slack", TEMPLATE, "slack", f"{key}:slack", context))
    staged = [outbox.stage(message) for message in messages]
    return any(new_id is not None for new_id in staged)


def alert_context(group: ErrorGroup, alert: Alert) -> dict:
    """What the alert says, display-ready (the outbox renders templates/emails and templates/sms error_alert)."""
    since = local_time(alert.since, None, WHEN) if alert.since else None
    return {
        "group_id": group.id, "category": group.category, "severity": group.severity,
        "error_type": group.error_type, "message": group.message[:300], "occurrences": group.occurrences,
        "last_seen": local_time(group.last_seen_at, None, WHEN), "reason": alert.reason,
        "window_count": alert.window_count, "more": alert.more, "since": since,
        "digest": f"and {alert.more} more since {since}" if alert.more and since else None,
        "regression": group.regression, "url": notifications.external_url("errors.show", group_id=group.id),
    }
