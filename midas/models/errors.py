"""Captured failures, grouped by fingerprint so staff see one row per problem."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, CheckConstraint, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from midas.extensions import db
from midas.models.types import Amount, StrEnum, UTCDateTime, check_in, enum_column, utcnow


class ErrorCategory(StrEnum):
    PAYMENT = "PAYMENT"
    BOOKING = "BOOKING"
    AUTHENTICATION = "AUTHENTICATION"
    WEBHOOK = "WEBHOOK"
    NOTIFICATION = "NOTIFICATION"
    SYSTEM = "SYSTEM"


class Severity(StrEnum):
    LOW = "LOW"
    MEDIUM = "MEDIUM"
    HIGH = "HIGH"


class GroupStatus(StrEnum):
    OPEN = "open"
    RESOLVED = "resolved"
    IGNORED = "ignored"


class ErrorGroup(db.Model):
    __tablename__ = "error_groups"
    __table_args__ = (
        check_in("category", ErrorCategory),
        check_in("severity", Severity),
        check_in("status", GroupStatus),
        CheckConstraint("occurrences >= 1", name="occurrences_positive"),
        Index("ix_error_groups_status_last_seen", "status", "last_seen_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    fingerprint: Mapped[str] = mapped_column(String(64), unique=True)
    category: Mapped[str] = mapped_column(enum_column(ErrorCategory))
    severity: Mapped[str] = mapped_column(enum_column(Severity))
    error_type: Mapped[str] = mapped_column(String(120))
    message: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(enum_column(GroupStatus), default=GroupStatus.OPEN.value)
    regression: Mapped[bool] = mapped_column(default=False)
    occurrences: Mapped[int] = mapped_column(Integer, default=1)
    first_seen_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    resolved_by_id: Mapped[int | None] = mapped_column(ForeignKey("staff_users.id"))

    events: Mapped[list[ErrorEvent]] = relationship(back_populates="group", order_by="ErrorEvent.occurred_at.desc()")


class ErrorEvent(db.Model):
    __tablename__ = "error_events"
    __table_args__ = (
        check_in("severity", Severity),
        Index("ix_error_events_group_occurred", "group_id", "occurred_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    group_id: Mapped[int] = mapped_column(ForeignKey("error_groups.id", ondelete="CASCADE"))
    severity: Mapped[str] = mapped_column(enum_column(Severity))
    message: Mapped[str] = mapped_column(Text)
    stack_trace: Mapped[str | None] = mapped_column(Text)
    context: Mapped[dict] = mapped_column(JSON, default=dict)
    request_id: Mapped[str | None] = mapped_column(String(64))
    booking_id: Mapped[int | None] = mapped_column(ForeignKey("bookings.id"), index=True)
    customer_id: Mapped[int | None] = mapped_column(ForeignKey("customers.id"))
    payment_id: Mapped[int | None] = mapped_column(ForeignKey("payments.id"))
    amount: Mapped[int | None] = mapped_column(Amount)  # money at risk, for payment failures
    currency: Mapped[str | None] = mapped_column(String(3))
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    group: Mapped[ErrorGroup] = relationship(back_populates="events")
