"""The notification outbox: rows written with the change that caused them, sent after commit."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, CheckConstraint, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from midas.extensions import db
from midas.models.types import StrEnum, UTCDateTime, check_in, enum_column, utcnow


class Channel(StrEnum):
    EMAIL = "email"
    SMS = "sms"
    SLACK = "slack"


class NotificationStatus(StrEnum):
    PENDING = "pending"
    SENDING = "sending"
    SENT = "sent"
    FAILED = "failed"
    CANCELLED = "cancelled"


class Notification(db.Model):
    __tablename__ = "notifications"
    __table_args__ = (
        check_in("channel", Channel),
        check_in("status", NotificationStatus),
        CheckConstraint("attempts >= 0", name="attempts_positive"),
        Index("ix_notifications_status_created", "status", "created_at"),
        Index("ix_notifications_created", "created_at", "id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    # Same key twice means the same message: the unique index makes "send once" a database fact.
    dedupe_key: Mapped[str] = mapped_column(String(255), unique=True)
    channel: Mapped[str] = mapped_column(enum_column(Channel))
    template: Mapped[str] = mapped_column(String(80))
    recipient: Mapped[str] = mapped_column(String(254))
    subject: Mapped[str | None] = mapped_column(String(240))
    context: Mapped[dict] = mapped_column(JSON, default=dict)
    status: Mapped[str] = mapped_column(enum_column(NotificationStatus), default=NotificationStatus.PENDING.value)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    provider: Mapped[str | None] = mapped_column(String(40))
    provider_message_id: Mapped[str | None] = mapped_column(String(255))
    last_error: Mapped[str | None] = mapped_column(Text)
    booking_id: Mapped[int | None] = mapped_column(ForeignKey("bookings.id"), index=True)
    customer_id: Mapped[int | None] = mapped_column(ForeignKey("customers.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    booking = relationship("Booking")
    customer = relationship("Customer")
