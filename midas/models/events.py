"""Provider events as received: the durable log every webhook is written to before it is acknowledged."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, CheckConstraint, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from midas.extensions import db
from midas.models.types import StrEnum, UTCDateTime, check_in, enum_column, utcnow


class EventStatus(StrEnum):
    RECEIVED = "received"
    PROCESSED = "processed"
    IGNORED = "ignored"
    FAILED = "failed"


class WebhookEvent(db.Model):
    __tablename__ = "webhook_events"
    __table_args__ = (
        check_in("status", EventStatus),
        CheckConstraint("provider IN ('stripe', 'paypal')", name="provider_valid"),
        CheckConstraint("attempts >= 0", name="attempts_positive"),
        UniqueConstraint("provider", "event_id"),
        Index("ix_webhook_events_received", "received_at", "id"),
        Index("ix_webhook_events_status", "status", "received_at"),
        Index("ix_webhook_events_provider_received", "provider", "received_at"),  # each feed's latest event
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    provider: Mapped[str] = mapped_column(String(16))
    event_id: Mapped[str] = mapped_column(String(255))
    type: Mapped[str] = mapped_column(String(80))
    payload: Mapped[dict] = mapped_column(JSON)
    raw_body: Mapped[str | None] = mapped_column(Text)  # exactly as delivered (IPN re-posts it verbatim)
    status: Mapped[str] = mapped_column(enum_column(EventStatus), default=EventStatus.RECEIVED.value)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    source_ip: Mapped[str | None] = mapped_column(String(45))
    occurred_at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # provider's own event time
    booking_id: Mapped[int | None] = mapped_column(ForeignKey("bookings.id"), index=True)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    processed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    booking = relationship("Booking")
