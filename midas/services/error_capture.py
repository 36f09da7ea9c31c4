"""Capturing failures: scrubbed, fingerprinted, grouped — and never a new failure for the caller.

Capture writes in its own short transaction on its own connection, so it survives the caller's
rollback and cannot disturb the caller's unit of work; if the database itself is failing, capture
logs and gives up quietly.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import re
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flask import g, has_app_context, has_request_context, request
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from midas import sentry
from midas.extensions import db
from midas.models import ErrorCategory, ErrorEvent, ErrorGroup, GroupStatus, Severity, utcnow

log = logging.getLogger(__name__)
PACKAGE_ROOT = str(Path(__file__).resolve().parent.parent)
SCRUBBED = "[scrubbed]"
SECRET_KEYS = re.compile(r"pass(word)?|secret|token|authori[sz]ation|api[_-]?key|card|cvc|cvv|^pan$|cookie",
                         re.IGNORECASE)
SECRET_VALUES = [
    re.compile(r"\b(sk|rk|pk)_(live|test)_[A-Za-z0-9]{8,}"),
    re.compile(r"\bwhsec_[A-Za-z0-9]{8,}"),
    re.compile(r"\bBearer\s+[A-Za-z0-9._~+/=-]{8,}", re.IGNORECASE),
    re.compile(r"\b(?:\d[ -]?){13,19}\b"),  # anything shaped like a card number
]
SEVERITY_RANK = {Severity.LOW.value: 0, Severity.MEDIUM.value: 1, Severity.HIGH.value: 2}
CAPTURED = "_midas_captured"  # set on an exception once it is recorded
NUMBERS = re.compile(r"\b(MID-[A-Z0-9]{6}|[a-z]{2,5}_[A-Za-z0-9]{6,}|[0-9a-f]{8,}|\d+)\b")


@dataclass
class Report:
    category: str
    severity: str
    message: str
    error_type: str = "Error"
    stack_trace: str | None = None
    top_frame: str = ""
    context: dict[str, Any] = field(default_factory=dict)
    booking_id: int | None = None
    customer_id: int | None = None
    payment_id: int | None = None
    amount: int | None = None
    currency: str | None = None


def record_error(category: str, severity: str, message: str, **details: Any) -> ErrorGroup | None:
    """Record a business failure (payment declined, webhook forged…); returns its group, or None if capture failed."""
    sentry.forward_message(f"{category}: {scrub(message)}", str(severity))
    return _store(Report(category=str(category), severity=str(severity), message=message,
                         error_type=details.pop("error_type", f"{str(category).capitalize()}Error"), **details))


def capture_exception(exc: BaseException, category: str = ErrorCategory.SYSTEM, severity: str = Severity.HIGH,
                      **details: Any) -> ErrorGroup | None:
    """Record an unhandled exception with its stack trace and the top frame of our own code.

    An exception seen by several layers (a job wrapper, then the view's error handler) is recorded once.
    """
    if getattr(exc, CAPTURED, False):
        return None
    with contextlib.suppress(AttributeError, TypeError):
        setattr(exc, CAPTURED, True)
    sentry.forward_exception(exc)
    frames = traceback.extract_tb(exc.__traceback__)
    ours = [f for f in frames if f.filename.startswith(PACKAGE_ROOT) and "/error_capture.py" not in f.filename]
    top = ours[-1] if ours else (frames[-1] if frames else None)
    return _store(Report(
        category=str(category), severity=str(severity), message=str(exc) or type(exc).__name__,
        error_type=type(exc).__name__, stack_trace="".join(traceback.format_exception(exc)),
        top_frame=f"{Path(top.filename).name}:{top.name}" if top else "", **details,
    ))


def fingerprint(error_type: str, message: str, top_frame: str) -> str:
    """Same type, same message once ids and numbers are blanked, same frame of ours → same group."""
    normalised = NUMBERS.sub("#", message.strip())[:500]
    return hashlib.sha256(f"{error_type}|{normalised}|{top_frame}".encode()).hexdigest()


def scrub(value: Any, key: str = "") -> Any:
    """Secrets out: sensitive keys masked whole, secret-looking values masked wherever they appear."""
    if key and SECRET_KEYS.search(key):
        return SCRUBBED
    if isinstance(value, dict):
        return {k: scrub(v, str(k)) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [scrub(v) for v in value]
    if isinstance(value, str):
        for pattern in SECRET_VALUES:
            value = pattern.sub(SCRUBBED, value)
        return value
    return value if isinstance(value, int | float | bool | type(None)) else scrub(str(value))


def _store(report: Report) -> ErrorGroup | None:
    report.context = {**_request_context(), **report.context}  # now: a deferred write runs after the request
    if _must_defer():
        g.setdefault("midas_pending_errors", []).append(report)
        return None
    return _write(report)


def _must_defer() -> bool:
    """On SQLite the caller's open transaction holds the only write lock: write after it has ended."""
    return has_app_context() and db.engine.dialect.name == "sqlite" and db.session().in_transaction()


def flush_deferred(_exc: BaseException | None = None) -> None:
    """App-context teardown: end the caller's session, then store what was captured meanwhile."""
    reports = g.pop("midas_pending_errors", [])
    if reports:
        db.session.remove()
        for report in reports:
            _write(report)


def init_app(app) -> None:
    app.teardown_appcontext(flush_deferred)


def _write(report: Report) -> ErrorGroup | None:
    from midas.services import alerts  # alerts → notifications → outbox: loaded on first capture, not at import

    try:
        with Session(db.engine, expire_on_commit=False) as session:
            group = _group_for(session, report)
            session.add(_event(group, report))
            session.commit()
            alert_due = alerts.due_on_capture(session, group)
    except Exception:  # capture must never become the caller's failure
        log.exception("error capture failed for %s: %s", report.error_type, report.message[:200])
        return None
    if alert_due:
        alerts.dispatch_alert(group.id)  # after our session is closed: the job writes in its own
    return group


def _group_for(session: Session, report: Report) -> ErrorGroup:
    key = fingerprint(report.error_type, report.message, report.top_frame)
    group = _locked_group(session, key)
    if group is None:
        group, created = _new_group(session, key, report)
        if created:
            return group  # inserted with this occurrence already counted
    now = utcnow()
    if group.status == GroupStatus.RESOLVED.value:
        group.status, group.regression = GroupStatus.OPEN.value, True
    if SEVERITY_RANK.get(report.severity, 0) > SEVERITY_RANK.get(group.severity, 0):
        group.severity = report.severity  # a LOW browser error that starts repeating becomes MEDIUM
    group.occurrences += 1
    group.last_seen_at = now
    return group


def _locked_group(session: Session, key: str) -> ErrorGroup | None:
    return session.scalar(select(ErrorGroup).where(ErrorGroup.fingerprint == key).with_for_update())


def _new_group(session: Session, key: str, report: Report) -> tuple[ErrorGroup, bool]:
    """Insert the group; when another process inserted the same fingerprint first, count on theirs instead."""
    now = utcnow()
    group = ErrorGroup(fingerprint=key, category=report.category, severity=report.severity,
                       error_type=report.error_type[:120], message=scrub(report.message)[:2000], occurrences=1,
                       first_seen_at=now, last_seen_at=now)
    try:
        with session.begin_nested():
            session.add(group)
    except IntegrityError:
        return _locked_group(session, key), False
    return group, True


def _event(group: ErrorGroup, report: Report) -> ErrorEvent:
    context = scrub(report.context)
    return ErrorEvent(
        group=group, severity=report.severity, message=scrub(report.message)[:4000],
        stack_trace=scrub(report.stack_trace) if report.stack_trace else None, context=context,
        request_id=context.get("request_id"), booking_id=report.booking_id, customer_id=report.customer_id,
        payment_id=report.payment_id, amount=report.amount, currency=report.currency,
    )


def _request_context() -> dict[str, Any]:
    if not has_request_context():
        return {}
    from flask_login import current_user

    user = current_user.email if getattr(current_user, "is_authenticated", False) else None
    return {"path": request.path, "method": request.method, "request_id": g.get("request_id"), "staff_user": user,
            "ip": request.remote_addr}
