"""Errors reported by browsers (the checkout page's script): checked, then stored as LOW until they repeat."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import timedelta
from urllib.parse import urlsplit

from sqlalchemy import func, select

from midas.extensions import db
from midas.models import Booking, ErrorCategory, ErrorEvent, ErrorGroup, Severity, utcnow
from midas.services import InvalidInput
from midas.services.error_capture import fingerprint, record_error

MAX_BYTES = 8 * 1024
LIMITS = {"message": 1000, "stack": 6000, "url": 2000, "user_agent": 400}
REPEATS, REPEAT_WINDOW = 5, timedelta(hours=1)  # the 5th time within an hour is no longer LOW
ERROR_TYPE = "ClientError"
CHECKOUT = re.compile(r"^/pay/([^/?#]+)")
FRAME_FILE = re.compile(r"/(?P<file>[\w.-]+\.m?js)(?:\?\S*?)?:\d+")
FRAME_FUNCTION = re.compile(r"^\s*(?:at\s+(?P<chrome>\S+)\s+\(|(?P<firefox>[^@\s]*)@)")


class TooLarge(InvalidInput):
    status_code = 413


class Malformed(InvalidInput):
    status_code = 400


@dataclass(frozen=True)
class ClientReport:
    message: str
    stack: str
    url: str
    user_agent: str

    @property
    def top_frame(self) -> str:
        """The first frame of the stack as "file.js:function", so line numbers and hosts do not split groups."""
        for line in self.stack.splitlines():
            file = FRAME_FILE.search(line)
            if file:
                function = FRAME_FUNCTION.match(line)
                return f"{file['file']}:{function and (function['chrome'] or function['firefox']) or '?'}"
        return ""


def parse_report(raw: bytes) -> ClientReport:
    """A browser's JSON body {message, stack, url, user_agent}: at most 8 KB, every field a string."""
    if len(raw) > MAX_BYTES:
        raise TooLarge(f"An error report may be at most {MAX_BYTES // 1024} KB.")
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise Malformed("The body must be JSON.") from exc
    if not isinstance(body, dict) or not isinstance(body.get("message"), str) or not body["message"].strip():
        raise Malformed("Give a JSON object with a non-empty \"message\".")
    if any(not isinstance(body.get(name, ""), str) for name in LIMITS):
        raise Malformed(f"The fields {', '.join(LIMITS)} must be strings.")
    return ClientReport(**{name: body.get(name, "").strip()[:limit] for name, limit in LIMITS.items()})


def record_client_error(report: ClientReport) -> ErrorGroup | None:
    """Store the report: LOW, or MEDIUM once the same error has come REPEATS times within the hour."""
    path = urlsplit(report.url).path[:500]
    booking_id, customer_id = _booking_at(path)
    severity = Severity.MEDIUM if _recent(report) + 1 >= REPEATS else Severity.LOW
    db.session.commit()  # only reads so far; the capture writes in its own transaction
    return record_error(
        ErrorCategory.PAYMENT if CHECKOUT.match(path) else ErrorCategory.SYSTEM, severity, report.message,
        error_type=ERROR_TYPE, stack_trace=report.stack or None, top_frame=report.top_frame,
        # The checkout token is a key to the booking: the page is named by the booking instead.
        context={"page": CHECKOUT.sub("/pay/…", path), "user_agent": report.user_agent, "source": "browser"},
        booking_id=booking_id, customer_id=customer_id,
    )


def _recent(report: ClientReport) -> int:
    key = fingerprint(ERROR_TYPE, report.message, report.top_frame)
    return db.session.scalar(
        select(func.count(ErrorEvent.id)).join(ErrorGroup, ErrorGroup.id == ErrorEvent.group_id)
        .where(ErrorGroup.fingerprint == key, ErrorEvent.occurred_at >= utcnow() - REPEAT_WINDOW)) or 0


def _booking_at(path: str) -> tuple[int | None, int | None]:
    match = CHECKOUT.match(path)
    row = db.session.execute(select(Booking.id, Booking.customer_id).where(Booking.checkout_token == match[1])
                             ).first() if match else None
    return (row.id, row.customer_id) if row else (None, None)
