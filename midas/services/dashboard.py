"""The home page's counters: what needs attention today."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select

from midas.extensions import db
from midas.models import (
    Booking,
    BookingStatus,
    Dispute,
    DisputeStatus,
    ErrorGroup,
    GroupStatus,
    Refund,
    RefundStatus,
    Severity,
    utcnow,
)
from midas.services import errors as error_log

OPEN_DISPUTES = (DisputeStatus.NEEDS_RESPONSE, DisputeStatus.WARNING_NEEDS_RESPONSE, DisputeStatus.UNDER_REVIEW,
                 DisputeStatus.WARNING_UNDER_REVIEW)


@dataclass
class Tile:
    label: str
    value: int
    endpoint: str
    args: dict
    alert: bool = False


def today_tiles(now: datetime | None = None) -> list[Tile]:
    """Counts for the next 24 hours and the queues waiting on staff; each links to its filtered list."""
    now = now or utcnow()
    day_end = now + timedelta(hours=24)
    pickups = _count(select(Booking.id).where(Booking.status == BookingStatus.CONFIRMED.value,
                                              Booking.starts_at.between(now, day_end)))
    returns = _count(select(Booking.id).where(Booking.status == BookingStatus.IN_PROGRESS.value,
                                              Booking.ends_at <= day_end))
    awaiting = _count(select(Booking.id).where(Booking.status == BookingStatus.PENDING_PAYMENT.value))
    approvals = _count(select(Refund.id).where(Refund.status == RefundStatus.PENDING_APPROVAL.value))
    disputes = _count(select(Dispute.id).where(Dispute.status.in_([s.value for s in OPEN_DISPUTES])))
    errors = _count(select(ErrorGroup.id).where(ErrorGroup.status == GroupStatus.OPEN.value,
                                                ErrorGroup.severity == Severity.HIGH.value))
    recent_errors = error_log.events_since(now - timedelta(hours=1))
    return [
        Tile("Pickups in the next 24 h", pickups, "bookings.index", {"status": "confirmed", "sort": "starts_at"}),
        Tile("Returns due in the next 24 h", returns, "bookings.index", {"status": "in_progress", "sort": "starts_at"}),
        Tile("Awaiting payment", awaiting, "bookings.index", {"status": "pending_payment"}),
        Tile("Refunds awaiting approval", approvals, "refunds.index", {"status": "pending_approval"}, approvals > 0),
        Tile("Open disputes", disputes, "payments.index", {"disputes": "open"}, disputes > 0),
        Tile("Open high-severity errors", errors, "errors.index", {"severity": "HIGH", "status": "open"}, errors > 0),
        Tile("Errors in the last hour", recent_errors, "errors.index", {"period": "1h"}),
    ]


def _count(stmt) -> int:
    return db.session.scalar(select(func.count()).select_from(stmt.subquery())) or 0
