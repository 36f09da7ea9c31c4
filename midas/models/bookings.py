"""Bookings and the priced lines that make up their total."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import CheckConstraint, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from midas.extensions import db
from midas.models.types import Amount, StrEnum, UTCDateTime, check_in, enum_column, utcnow


class BookingStatus(StrEnum):
    QUOTE = "quote"
    PENDING_PAYMENT = "pending_payment"
    CONFIRMED = "confirmed"
    IN_PROGRESS = "in_progress"
    COMPLETED = "completed"
    CANCELLED = "cancelled"
    NO_SHOW = "no_show"


# Statuses that occupy the item's calendar (the PostgreSQL exclusion constraint uses the same list).
BLOCKING_STATUSES = (BookingStatus.PENDING_PAYMENT, BookingStatus.CONFIRMED, BookingStatus.IN_PROGRESS)


class LineKind(StrEnum):
    RENTAL = "rental"
    SEASON = "season"
    TIER = "tier"
    INSURANCE = "insurance"
    SERVICE_FEE = "service_fee"
    TAX = "tax"
    LATE_FEE = "late_fee"
    ADJUSTMENT = "adjustment"


class Booking(db.Model):
    __tablename__ = "bookings"
    __table_args__ = (
        check_in("status", BookingStatus),
        CheckConstraint("ends_at > starts_at", name="period_ordered"),
        CheckConstraint(
            "block_starts_at <= starts_at AND block_ends_at >= ends_at", name="block_covers_period"
        ),
        CheckConstraint("total_amount >= 0", name="total_not_negative"),
        CheckConstraint("deposit_amount >= 0", name="deposit_not_negative"),
        CheckConstraint("length(currency) = 3", name="currency_iso"),
        Index("ix_bookings_item_block", "item_id", "block_starts_at", "block_ends_at"),
        Index("ix_bookings_status_starts", "status", "starts_at"),
        Index("ix_bookings_created", "created_at", "id"),
        Index("ix_bookings_starts", "starts_at", "id"),  # the dashboard's default order, paged by keyset
        Index("ix_bookings_reference_trgm", "reference", postgresql_using="gin",  # "contains" search (0005)
              postgresql_ops={"reference": "gin_trgm_ops"}),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    reference: Mapped[str] = mapped_column(String(16), unique=True)
    checkout_token: Mapped[str] = mapped_column(String(64), unique=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"), index=True)
    item_id: Mapped[int] = mapped_column(ForeignKey("items.id"))
    concierge_id: Mapped[int | None] = mapped_column(ForeignKey("staff_users.id"), index=True)
    status: Mapped[str] = mapped_column(enum_column(BookingStatus), default=BookingStatus.QUOTE.value)
    starts_at: Mapped[datetime] = mapped_column(UTCDateTime)
    ends_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # The period plus the item's buffer hours: what no other booking may overlap.
    block_starts_at: Mapped[datetime] = mapped_column(UTCDateTime)
    block_ends_at: Mapped[datetime] = mapped_column(UTCDateTime)
    currency: Mapped[str] = mapped_column(String(3))
    total_amount: Mapped[int] = mapped_column(Amount, default=0)
    deposit_amount: Mapped[int] = mapped_column(Amount, default=0)
    hold_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    notes: Mapped[str] = mapped_column(Text, default="")
    special_requests: Mapped[str] = mapped_column(Text, default="")
    cancel_reason: Mapped[str | None] = mapped_column(String(240))
    handed_over_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    returned_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    customer = relationship("Customer", back_populates="bookings")
    item = relationship("Item")
    concierge = relationship("StaffUser")
    lines: Mapped[list[BookingLine]] = relationship(
        back_populates="booking", order_by="BookingLine.position", cascade="all, delete-orphan"
    )
    payments = relationship("Payment", back_populates="booking", order_by="Payment.created_at")

    @property
    def is_blocking(self) -> bool:
        return BookingStatus(self.status) in BLOCKING_STATUSES

    def __repr__(self) -> str:
        return f"<Booking {self.reference} {self.status}>"


class BookingLine(db.Model):
    """One shown part of a booking's price; the booking total is the sum of its lines."""

    __tablename__ = "booking_lines"
    __table_args__ = (check_in("kind", LineKind),)

    id: Mapped[int] = mapped_column(primary_key=True)
    booking_id: Mapped[int] = mapped_column(ForeignKey("bookings.id", ondelete="CASCADE"), index=True)
    position: Mapped[int] = mapped_column(Integer, default=0)
    kind: Mapped[str] = mapped_column(enum_column(LineKind))
    description: Mapped[str] = mapped_column(String(240))
    amount: Mapped[int] = mapped_column(Amount)  # negative for discounts
    refundable: Mapped[bool] = mapped_column(default=True)

    booking: Mapped[Booking] = relationship(back_populates="lines")
