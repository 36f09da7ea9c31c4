"""The provider event log as staff see it: filters, masked payloads, retry and replay, and feed health."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import Select, func, select

from midas.extensions import db
from midas.models import AuditEntry, EventStatus, Payment, Role, StaffUser, WebhookEvent
from midas.services import InvalidInput, NotFound, audit
from midas.services.auth import require_role
from midas.services.keyset import KeysetPage, seek

PROVIDERS = ("stripe", "paypal")
SORTS = {"received_at": WebhookEvent.received_at}
SECRET_KEY_NAME = re.compile(r"secret|token|password", re.IGNORECASE)
MASK = "••••••"
STALE_AFTER = timedelta(hours=6)
KPI_WINDOW = timedelta(hours=24)
TIMING_SAMPLE = 20_000  # enough for stable percentiles; bounded so a flood cannot slow the page


@dataclass
class EventFilters:
    provider: str = ""
    event_type: str = ""
    state: str = ""
    date_from: date | None = None
    date_to: date | None = None
    after: str = ""
    before: str = ""
    errors: dict[str, str] = field(default_factory=dict)


def parse_filters(args: Mapping[str, str]) -> EventFilters:
    """Query arguments (provider, type, state, from, to) as filters; a bad date is explained and left out."""
    filters = EventFilters(provider=args.get("provider", ""), event_type=args.get("type", "").strip()[:80],
                           state=args.get("state", "") or args.get("status", ""), after=args.get("after", ""),
                           before=args.get("before", ""))
    for name in ("from", "to"):
        try:
            value = date.fromisoformat(args[name].strip()) if args.get(name, "").strip() else None
        except ValueError:
            filters.errors[name], value = "Enter a date as YYYY-MM-DD.", None
        setattr(filters, f"date_{name}", value)
    return filters


def list_events(filters: EventFilters) -> KeysetPage:
    """One keyset page of events, newest first."""
    return seek(event_query(filters), "-received_at", SORTS, "-received_at", WebhookEvent.id,
                after=filters.after, before=filters.before)


def event_query(filters: EventFilters) -> Select:
    stmt = select(WebhookEvent)
    if filters.provider in PROVIDERS:
        stmt = stmt.where(WebhookEvent.provider == filters.provider)
    if filters.state in EventStatus.values():
        stmt = stmt.where(WebhookEvent.status == filters.state)
    if filters.event_type:
        stmt = stmt.where(WebhookEvent.type == filters.event_type)
    if filters.date_from:
        stmt = stmt.where(WebhookEvent.received_at >= datetime.combine(filters.date_from, time.min, UTC))
    if filters.date_to:
        stmt = stmt.where(WebhookEvent.received_at < datetime.combine(filters.date_to + timedelta(days=1),
                                                                      time.min, UTC))
    return stmt


def get_event(event_id: int) -> WebhookEvent:
    event = db.session.get(WebhookEvent, event_id)
    if event is None:
        raise NotFound("No such webhook event.")
    return event


# The detail page.

def masked(value: Any) -> Any:
    """The payload with every value under a key named like secret, token or password masked."""
    if isinstance(value, dict):
        return {key: MASK if SECRET_KEY_NAME.search(str(key)) and value[key] not in (None, "") else masked(value[key])
                for key in value}
    if isinstance(value, list):
        return [masked(item) for item in value]
    return value


def pretty_payload(event: WebhookEvent) -> str:
    return json.dumps(masked(event.payload), indent=2, sort_keys=True, ensure_ascii=False)


def payments_touched(event: WebhookEvent) -> list[Payment]:
    """The payments the event names (by provider id) or belongs to (its booking)."""
    refs = _provider_refs(event)
    named = list(db.session.scalars(select(Payment).where(Payment.provider_ref.in_(refs)))) if refs else []
    booked = list(db.session.scalars(select(Payment).where(
        Payment.booking_id == event.booking_id).limit(20))) if event.booking_id else []
    return sorted({payment.id: payment for payment in named + booked}.values(), key=lambda payment: payment.id)


def _provider_refs(event: WebhookEvent) -> list[str]:
    payload = event.payload or {}
    obj = (payload.get("data") or {}).get("object") or {} if event.provider == "stripe" else payload
    candidates = [obj.get("id"), obj.get("payment_intent"), obj.get("txn_id"), obj.get("parent_txn_id")]
    return [c for c in candidates if isinstance(c, str) and c]


def event_history(event: WebhookEvent) -> list[AuditEntry]:
    """Staff retries and replays of the event."""
    return list(db.session.scalars(select(AuditEntry).where(
        AuditEntry.entity_type == "webhook_event", AuditEntry.entity_id == str(event.id)).order_by(AuditEntry.id)))


# Retry and replay.

def rerun_event(actor: StaffUser, event_id: int) -> str:
    """Admin: retry a failed event or replay a processed one through the same apply path; returns the action.

    Applying is state-monotonic, so a replay (or a second click) changes nothing that already happened.
    """
    require_role(actor, Role.ADMIN)
    event = get_event(event_id)
    action = {EventStatus.FAILED.value: "retry", EventStatus.PROCESSED.value: "replay"}.get(event.status)
    if action is None:
        raise InvalidInput(f"This event is {event.status}: only failed events are retried and processed "
                           "ones replayed.")
    provider = event.provider
    audit.record(f"webhook_event.{action}", "webhook_event", event_id, actor=actor,
                 before={"status": event.status, "attempts": event.attempts})
    _reopen(event)
    db.session.commit()  # and nothing read after it: on SQLite an open transaction would lock out the job
    _dispatch(provider, event_id)
    return action


def _reopen(event: WebhookEvent) -> None:
    from midas.services import webhook_log

    if event.provider == "stripe" and event.status == EventStatus.FAILED.value:
        event_id = event.id
        db.session.commit()  # the audit entry first; reopen_event owns its own transaction
        webhook_log.reopen_event(event_id)
        return
    event.status, event.processed_at = EventStatus.RECEIVED.value, None


def _dispatch(provider: str, event_id: int) -> None:
    from midas.tasks.paypal import process_ipn
    from midas.tasks.queue import dispatch_safely
    from midas.tasks.webhooks import PROCESS_STRIPE_EVENT

    job = PROCESS_STRIPE_EVENT if provider == "stripe" else process_ipn
    dispatch_safely(job, event_id, queue="high", description=f"{provider} event {event_id} (staff re-run)")


# Feed health.

@dataclass(frozen=True)
class EventKpis:
    last_24h: int
    p50_seconds: float | None
    p95_seconds: float | None
    failure_rate: float | None
    since_last: dict[str, timedelta | None]  # provider → time since its last event (None: never)
    stale: list[str]


def event_kpis(now: datetime) -> EventKpis:
    """Events in the last 24 h, processing time p50/p95, failure rate, and each feed's silence."""
    since = now - KPI_WINDOW
    counts = dict(db.session.execute(select(WebhookEvent.status, func.count()).where(
        WebhookEvent.received_at >= since).group_by(WebhookEvent.status)).all())
    total = sum(counts.values())
    p50, p95 = processing_percentiles(since)
    last = last_event_times()
    return EventKpis(last_24h=total, p50_seconds=p50, p95_seconds=p95,
                     failure_rate=counts.get(EventStatus.FAILED.value, 0) / total if total else None,
                     since_last={p: now - at if at else None for p, at in last.items()},
                     stale=stale_feeds(now, last=last))


def processing_percentiles(since: datetime) -> tuple[float | None, float | None]:
    rows = db.session.execute(select(WebhookEvent.received_at, WebhookEvent.processed_at).where(
        WebhookEvent.received_at >= since, WebhookEvent.processed_at.is_not(None))
        .order_by(WebhookEvent.received_at.desc()).limit(TIMING_SAMPLE)).all()
    durations = sorted(max((done - got).total_seconds(), 0.0) for got, done in rows)
    return _percentile(durations, 50), _percentile(durations, 95)


def _percentile(ordered: list[float], pct: int) -> float | None:
    """Nearest-rank percentile."""
    if not ordered:
        return None
    rank = max(-(-pct * len(ordered) // 100), 1)  # ceil
    return ordered[rank - 1]


def last_event_times() -> dict[str, datetime | None]:
    """Each provider's latest event: one index probe per provider rather than a GROUP BY over every event."""
    latest = [select(func.max(WebhookEvent.received_at)).where(WebhookEvent.provider == provider).scalar_subquery()
              for provider in PROVIDERS]
    found = db.session.execute(select(*latest)).one()
    return {provider: _aware(at) for provider, at in zip(PROVIDERS, found, strict=True)}


def _aware(moment: datetime | None) -> datetime | None:
    return moment.replace(tzinfo=UTC) if moment is not None and moment.tzinfo is None else moment


def stale_feeds(now: datetime, after: timedelta = STALE_AFTER,
                last: dict[str, datetime | None] | None = None) -> list[str]:
    """Providers silent for longer than `after` (6 hours): a warning for the home page.

    A provider that never sent anything is not reported: it is not in use (or not configured) yet.
    """
    last = last if last is not None else last_event_times()
    return [provider for provider, at in last.items() if at is not None and now - at > after]
