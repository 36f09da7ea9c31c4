"""The transactional outbox: a message is a row written with the change that causes it, delivered after commit.

Flow: a service calls `stage()` inside its transaction → the row exists only if the change commits →
after commit its send job is enqueued (RQ) or run (embedded default) → `deliver()` claims the row with
one guarded UPDATE (pending → sending; only one runner can win), sends outside any transaction and
records the outcome → `sweep()` re-dispatches rows whose job was lost (Redis down at commit) and rows
stuck in "sending" (a killed worker).

Delivery is at-least-once with duplicates suppressed: the dedupe key makes "write twice" one row and
the claim makes "run twice" one send. The one window left is a worker killed after the provider
accepted a message and before "sent" was committed; the sweep then sends again (a lost message is
worse than a rare duplicate). A text is not sent twice even then: the retry first asks Twilio for the
copy it already took. An email can be (SMTP cannot be asked), but every attempt carries the same
Message-ID, so mailboxes can fold that duplicate. A row is "stuck" only after STUCK_AFTER, longer
than the send job's hard timeout, so a live sender is never raced.
"""

from __future__ import annotations

import hashlib
import logging
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.utils import parseaddr
from pathlib import Path

from flask import current_app
from rq import Retry
from sqlalchemy import select, update
from sqlalchemy.dialects import postgresql, sqlite

from midas.database import begin_write
from midas.extensions import db
from midas.integrations.delivery import Attempt, DeliveryFailed, Receipt, send_with_failover
from midas.integrations.email import Email, email_gateways
from midas.integrations.slack import SlackPost, slack_gateway
from midas.integrations.sms import Sms, sms_gateway
from midas.models import Channel, Customer, ErrorCategory, Notification, NotificationStatus, Severity, utcnow
from midas.tasks.queue import dispatch_safely, enqueue_after_commit

SEND_JOB = "midas.tasks.notifications.send_notification"
MAX_ATTEMPTS = 5
BACKOFF = (30, 120, 600, 1800)  # seconds before the 2nd, 3rd, 4th and 5th attempt
JOB_TIMEOUT = 120  # RQ kills a send job after this; three providers x 15 s fit well inside
PENDING_GRACE = timedelta(minutes=1)  # pending this long past its due time: its job was lost
RESWEEP_AFTER = timedelta(minutes=5)  # a swept row waits this long before the sweep sends it again
STUCK_AFTER = timedelta(minutes=10)  # "sending" this long: the worker died (well past JOB_TIMEOUT)
SWEEP_BATCH = 500
META = "_delivery"  # key in Notification.context: claim time, next attempt, the attempt log
FAILURES = "midas.outbox_failures"  # key in Session.info: failures to record once committed
LOG_LIMIT = 20
log = logging.getLogger(__name__)

S = NotificationStatus


@dataclass(frozen=True)
class Kind:
    """What a template is: its subject line, whether it is essential, and its queue."""

    subject: str  # str.format over the row's context; unknown names render empty
    essential: bool  # transactional: sent even to customers who turned off non-essential email
    queue: str = "high"


KINDS = {
    "booking_quote": Kind("Your quote {reference}: {item}", True, "default"),
    "checkout_link": Kind("Complete your booking {reference}: {item}", True),
    "hold_expiring": Kind("{item} is held for you until {hold_expires_time}", False),
    "booking_confirmation": Kind("Confirmed: {item}, booking {reference}", True),
    "payment_receipt": Kind("Receipt for booking {reference}: {amount}", True),
    "payment_failed": Kind("Your payment for booking {reference} did not go through", True),
    "balance_due": Kind("A balance of {amount} is due on booking {reference}", True),
    "pickup_reminder": Kind("Your {item} awaits: {starts}", False, "default"),
    "return_reminder": Kind("Return day for your {item}: {ends}", False, "default"),
    "concierge_reminder": Kind("{moment}: {item} for {customer}, {when} ({reference})", True, "default"),
    "thank_you": Kind("Thank you for travelling with Midas", False, "low"),
    "booking_cancellation": Kind("Booking {reference} cancelled", True),
    "refund_processed": Kind("Your refund for booking {reference}: {amount}", True),
    "dispute_alert": Kind("Dispute opened on {reference}: {amount}", True),
    "error_alert": Kind("Alert: {category} — {message}", True),
}


@dataclass(frozen=True)
class Message:
    """One row to stage: who gets which template on which channel, once per dedupe key."""

    channel: str
    template: str
    recipient: str
    dedupe_key: str
    context: dict
    booking_id: int | None = None
    customer_id: int | None = None


@dataclass(frozen=True)
class Rendered:
    text: str
    html: str | None = None


# Writing: in the caller's transaction.

def stage(message: Message, refusal: str | None = None) -> int | None:
    """Add the row to the current transaction unless its dedupe key exists; it is dispatched after commit.

    With a `refusal` (no consent, nowhere to send) the row is written cancelled with that reason, so staff
    can see why nothing went out. Returns the new row's id, or None when the key was taken.
    """
    kind = KINDS[message.template]
    values = {
        "dedupe_key": message.dedupe_key[:255], "channel": message.channel, "template": message.template,
        "recipient": message.recipient[:254], "context": message.context,
        "subject": subject_for(kind, message.context) if message.channel == Channel.EMAIL else None,
        "booking_id": message.booking_id, "customer_id": message.customer_id,
        "status": S.CANCELLED.value if refusal else S.PENDING.value, "last_error": refusal,
    }
    insert = postgresql.insert if db.session.get_bind().dialect.name == "postgresql" else sqlite.insert
    stmt = insert(Notification).values(**values).on_conflict_do_nothing(index_elements=["dedupe_key"])
    new_id = db.session.execute(stmt.returning(Notification.id)).scalar()
    if new_id is not None and not refusal:
        dispatch_after_commit(new_id, kind.queue)
    return new_id


def dispatch_after_commit(notification_id: int, queue: str = "high") -> None:
    enqueue_after_commit(SEND_JOB, notification_id, **_job_options(notification_id, queue))


def dispatch_now(notification_id: int, queue: str = "high") -> bool:
    return dispatch_safely(SEND_JOB, notification_id, **_job_options(notification_id, queue))


def _job_options(notification_id: int, queue: str) -> dict:
    # RQ's Retry paces the attempts; MAX_ATTEMPTS on the row is what finally gives up.
    return {"queue": queue, "retry": Retry(max=len(BACKOFF), interval=list(BACKOFF)), "job_timeout": JOB_TIMEOUT,
            "description": f"send notification {notification_id}"}


def subject_for(kind: Kind, context: dict) -> str:
    return kind.subject.format_map(_Blank(context))[:240]


def consent_refusal(channel: str, template: str, customer: Customer | None) -> str | None:
    """Why this customer must not get this message on this channel, or None when they may."""
    if customer is None:
        return None
    if customer.erased_at is not None:
        return "The customer's personal data has been erased."
    if channel == Channel.SMS and not customer.sms_opt_in:
        return "The customer has not agreed to SMS."
    if channel == Channel.EMAIL and not customer.email_opt_in and not KINDS[template].essential:
        return "The customer has turned off non-essential email."
    return None


# Delivering: one row, once.

@dataclass(frozen=True)
class _Outgoing:
    id: int
    channel: str
    message: Email | Sms | SlackPost
    interrupted_since: datetime | None = None  # a worker died sending this row: the provider may have it


def deliver(notification_id: int) -> str:
    """Claim the row, send it, record the outcome: "sent", "retry", "failed", "cancelled" or "skipped".

    "skipped" means another runner holds or finished the row: running a send job twice sends once.
    """
    outgoing = _claim(notification_id)
    if isinstance(outgoing, str):
        return outgoing
    try:
        receipt = _send(outgoing)
    except DeliveryFailed as failure:
        return _record_failure(notification_id, failure.attempts)
    except Exception as exc:  # a broken setting (SMTP_URL) or a bug: retried, never left "sending"
        log.exception("sending notification %s crashed", notification_id)
        return _record_failure(notification_id, (Attempt("-", False, 0, f"{type(exc).__name__}: {exc}"),))
    return _record_sent(notification_id, receipt)


def _claim(notification_id: int) -> _Outgoing | str:
    begin_write(db.session)
    claimed = db.session.execute(
        update(Notification).where(Notification.id == notification_id, Notification.status == S.PENDING.value)
        .values(status=S.SENDING.value, attempts=Notification.attempts + 1)
        .execution_options(synchronize_session=False)
    ).rowcount
    if not claimed:
        db.session.rollback()
        return "skipped"
    notification = db.session.get(Notification, notification_id, populate_existing=True)
    outcome = _prepare(notification)
    _commit()  # the claim is durable before anything leaves the building
    return outcome


def _prepare(notification: Notification) -> _Outgoing | str:
    refusal = consent_refusal(notification.channel, notification.template, notification.customer)
    if refusal:
        notification.status, notification.last_error = S.CANCELLED.value, refusal
        return "cancelled"
    try:
        outgoing = _Outgoing(notification.id, notification.channel, _message(notification),
                             _when(_meta(notification).get("interrupted_at")))
    except Exception as exc:  # a template that cannot render will not render on the next attempt either
        notification.status, notification.last_error = S.FAILED.value, f"could not render: {exc}"
        _note_failure(notification)
        return "failed"
    _set_meta(notification, claimed_at=utcnow().isoformat())
    return outgoing


def _message(notification: Notification) -> Email | Sms | SlackPost:
    rendered = render(notification)
    tag = f"{notification.id}-{notification.template}"
    if notification.channel == Channel.SMS:
        return Sms(to=notification.recipient, body=rendered.text, tag=tag)
    if notification.channel == Channel.SLACK:
        return SlackPost(text=rendered.text, tag=tag)
    return Email(to=notification.recipient, sender=current_app.config["MAIL_FROM"], subject=notification.subject or "",
                 text=rendered.text, html=rendered.html or "", message_id=message_id(notification), tag=tag,
                 headers={"X-Midas-Notification": tag})


def render(notification: Notification) -> Rendered:
    """The message as its recipient reads it, from templates/emails (HTML + text) or templates/sms."""
    env = current_app.jinja_env
    context = {key: value for key, value in (notification.context or {}).items() if key != META}
    context["subject"] = notification.subject
    if notification.channel == Channel.EMAIL:
        return Rendered(text=env.get_template(f"emails/{notification.template}.txt").render(context).strip() + "\n",
                        html=env.get_template(f"emails/{notification.template}.html").render(context))
    text = env.get_template(f"sms/{notification.template}.txt").render(context).strip()
    return Rendered(text=" ".join(text.split()) if notification.channel == Channel.SMS else text)


def message_id(notification: Notification) -> str:
    """The same Message-ID on every attempt at this row."""
    domain = parseaddr(current_app.config["MAIL_FROM"])[1].rpartition("@")[2] or "midas.local"
    digest = hashlib.sha256(notification.dedupe_key.encode()).hexdigest()[:16]
    return f"<midas.{notification.id}.{digest}@{domain}>"


def _send(outgoing: _Outgoing) -> Receipt:
    config, capture = current_app.config, capture_dir()
    if outgoing.channel == Channel.EMAIL:
        gateways = email_gateways(config, capture)
    elif outgoing.channel == Channel.SMS:
        gateways = [sms_gateway(config, capture)]
        found = _already_delivered(gateways[0], outgoing)
        if found:
            return found
    else:
        gateways = [slack_gateway(config, capture)]
    return send_with_failover(gateways, outgoing.message)


def _already_delivered(gateway, outgoing: _Outgoing) -> Receipt | None:
    """After a crash mid-send, the copy the provider already took (when it can be asked), instead of a second send.

    Twilio can be asked (its message list); SMTP cannot, so an email in that window may go twice.
    """
    find_sent = getattr(gateway, "find_sent", None)
    if outgoing.interrupted_since is None or find_sent is None:
        return None
    started = time.monotonic()
    provider_id = find_sent(outgoing.message, outgoing.interrupted_since)
    if provider_id is None:
        return None
    ms = int((time.monotonic() - started) * 1000)
    return Receipt(gateway.name, provider_id, (Attempt(gateway.name, True, ms, "already delivered before the crash"),))


def capture_dir() -> Path | None:
    """Where messages without a provider are kept as files: OUTBOX_CAPTURE_DIR, else instance/outbox on a laptop.

    Elsewhere (tests, production) they are kept in the database only.
    """
    configured = current_app.config.get("OUTBOX_CAPTURE_DIR")
    if configured:
        return Path(configured)
    if current_app.testing or current_app.config.get("ENV_NAME") != "development":
        return None
    return Path(current_app.instance_path) / "outbox"


def _record_sent(notification_id: int, receipt: Receipt) -> str:
    begin_write(db.session)
    notification = _locked(notification_id)
    notification.status, notification.sent_at = S.SENT.value, utcnow()
    notification.provider, notification.provider_message_id = receipt.provider, receipt.message_id[:255]
    failed = [a for a in receipt.attempts if not a.ok]
    notification.last_error = _summary(failed) if failed else None  # a failover says what failed first
    _log(notification, receipt.attempts)
    db.session.commit()
    return "sent"


def _record_failure(notification_id: int, attempts: tuple[Attempt, ...]) -> str:
    begin_write(db.session)
    notification = _locked(notification_id)
    if notification.status == S.SENT.value:
        db.session.rollback()
        return "sent"
    notification.last_error = _summary(attempts)
    _log(notification, attempts)
    if any(a.permanent for a in attempts) or notification.attempts >= MAX_ATTEMPTS:
        notification.status = S.FAILED.value
        _note_failure(notification)
    else:
        notification.status = S.PENDING.value
        wait = BACKOFF[min(notification.attempts, len(BACKOFF)) - 1]
        _set_meta(notification, next_attempt_at=(utcnow() + timedelta(seconds=wait)).isoformat())
    outcome = notification.status
    _commit()
    return "retry" if outcome == S.PENDING.value else "failed"


def _locked(notification_id: int) -> Notification:
    return db.session.get(Notification, notification_id, with_for_update=True, populate_existing=True)


def _note_failure(notification: Notification) -> None:
    """Record a message that failed for good in the error log (NOTIFICATION), once this transaction commits."""
    facts = {"notification_id": notification.id, "template": notification.template,
             "channel": notification.channel, "recipient": notification.recipient, "attempts": notification.attempts,
             "error": notification.last_error, "booking_id": notification.booking_id,
             "customer_id": notification.customer_id}
    db.session().info.setdefault(FAILURES, []).append(facts)


def _commit() -> None:
    """Commit, then record what failed for good: outside the transaction, as the error log needs on SQLite."""
    failures = db.session().info.pop(FAILURES, [])
    db.session.commit()
    for facts in failures:
        report_failure(facts)


def report_failure(facts: dict) -> None:
    """Log the failure and add it to the error log (category NOTIFICATION) when that exists."""
    log.error("notification %s (%s to %s) failed: %s", facts["notification_id"], facts["template"],
              facts["recipient"], facts["error"], extra={"fields": {"category": "NOTIFICATION", **facts}})
    try:
        from midas.services.error_capture import record_error
    except ImportError:  # the error log is optional here: the log line above is enough
        return
    record_error(ErrorCategory.NOTIFICATION.value, Severity.MEDIUM.value,
                 f"{facts['template']} by {facts['channel']} failed: {(facts['error'] or '')[:300]}",
                 error_type="DeliveryFailed", booking_id=facts["booking_id"], customer_id=facts["customer_id"],
                 context={k: facts[k] for k in ("notification_id", "recipient", "attempts")})


# Sweeping: what a lost job or a dead worker left behind.

@dataclass
class SweepResult:
    requeued: list[int]
    unstuck: list[int]
    failed: list[int]


def sweep(now: datetime | None = None) -> SweepResult:
    """Re-dispatch rows left pending past their due time and rows stuck sending; safe to run anywhere, twice."""
    now = now or utcnow()
    begin_write(db.session)
    rows = db.session.scalars(
        select(Notification)
        .where(Notification.status.in_([S.PENDING.value, S.SENDING.value]),
               Notification.created_at <= now - PENDING_GRACE)
        .order_by(Notification.id).limit(SWEEP_BATCH).with_for_update(skip_locked=True)
    )
    result = SweepResult([], [], [])
    for notification in rows:
        _sweep_one(notification, now, result)
    _commit()  # the re-dispatches leave after this commit
    return result


def _sweep_one(notification: Notification, now: datetime, result: SweepResult) -> None:
    meta = _meta(notification)
    if notification.status == S.SENDING.value:
        if (_when(meta.get("claimed_at")) or notification.created_at) + STUCK_AFTER > now:
            return
        _log(notification, [Attempt("-", False, 0, "the worker stopped while sending")])
        if notification.attempts >= MAX_ATTEMPTS:
            notification.status, notification.last_error = S.FAILED.value, "the worker stopped while sending"
            result.failed.append(notification.id)
            _note_failure(notification)
            return
        notification.status = S.PENDING.value
        interrupted = meta.get("claimed_at") or notification.created_at.isoformat()
        _set_meta(notification, interrupted_at=meta.get("interrupted_at") or interrupted)
        result.unstuck.append(notification.id)
    elif not _lost(notification, meta, now):
        return
    else:
        result.requeued.append(notification.id)
    _set_meta(notification, swept_at=now.isoformat())
    dispatch_after_commit(notification.id, KINDS.get(notification.template, KINDS["error_alert"]).queue)


def _lost(notification: Notification, meta: dict, now: datetime) -> bool:
    due = max(notification.created_at, _when(meta.get("next_attempt_at")) or notification.created_at)
    swept = _when(meta.get("swept_at"))
    return due + PENDING_GRACE <= now and (swept is None or swept + RESWEEP_AFTER <= now)


# The delivery record, kept in the row's context until the schema has a table for it.

def delivery_log(notification: Notification) -> list[dict]:
    """Every attempt on this row, oldest first: provider, ok, error, ms, at."""
    return list(_meta(notification).get("log", []))


def _meta(notification: Notification) -> dict:
    return dict((notification.context or {}).get(META) or {})


def _set_meta(notification: Notification, **changes) -> None:
    notification.context = {**(notification.context or {}), META: {**_meta(notification), **changes}}


def _log(notification: Notification, attempts) -> None:
    at = utcnow().isoformat()
    entries = [{"at": at, "attempt": notification.attempts, "provider": a.provider, "ok": a.ok, "error": a.error,
                "ms": a.ms} for a in attempts]
    _set_meta(notification, log=(delivery_log(notification) + entries)[-LOG_LIMIT:])


def strip_meta(context: dict) -> dict:
    return {key: value for key, value in context.items() if key != META}


def _summary(attempts) -> str:
    return "; ".join(f"{a.provider}: {a.error}" for a in attempts if not a.ok)[:2000]


def _when(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


class _Blank(dict):
    def __missing__(self, key: str) -> str:
        return ""
