"""Customers of the house."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import CheckConstraint, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from midas.extensions import db
from midas.models.types import StrEnum, UTCDateTime, check_in, enum_column, utcnow


class Tier(StrEnum):
    STANDARD = "standard"
    PREMIUM = "premium"
    VVIP = "vvip"


class Customer(db.Model):
    __tablename__ = "customers"
    __table_args__ = (
        check_in("tier", Tier),
        CheckConstraint("email = lower(email)", name="email_lowercase"),
        CheckConstraint("loyalty_points >= 0", name="loyalty_points_positive"),
        Index("ix_customers_phone", "phone"),  # the customer page's same-phone duplicates
        # LIKE 'base+%@domain' (same-mailbox duplicates) uses it whatever the collation
        Index("ix_customers_email_pattern", "email", postgresql_ops={"email": "varchar_pattern_ops"}),
        # "contains" search (ILIKE '%text%') on PostgreSQL, through pg_trgm (migration 0005)
        Index("ix_customers_name_trgm", "name", postgresql_using="gin", postgresql_ops={"name": "gin_trgm_ops"}),
        Index("ix_customers_email_trgm", "email", postgresql_using="gin", postgresql_ops={"email": "gin_trgm_ops"}),
        Index("ix_customers_phone_trgm", "phone", postgresql_using="gin", postgresql_ops={"phone": "gin_trgm_ops"}),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(160), index=True)
    email: Mapped[str] = mapped_column(String(254), unique=True)
    phone: Mapped[str | None] = mapped_column(String(20))  # E.164
    tier: Mapped[str] = mapped_column(enum_column(Tier), default=Tier.STANDARD.value)
    notes: Mapped[str] = mapped_column(Text, default="")
    loyalty_points: Mapped[int] = mapped_column(Integer, default=0)
    email_opt_in: Mapped[bool] = mapped_column(default=True)  # service messages (confirmations, receipts)
    sms_opt_in: Mapped[bool] = mapped_column(default=True)
    marketing_consent: Mapped[bool] = mapped_column(default=False)
    marketing_consent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    marketing_consent_source: Mapped[str | None] = mapped_column(String(80))
    preferred_location_id: Mapped[int | None] = mapped_column(ForeignKey("locations.id"))
    erased_at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # personal data anonymised on request
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    bookings = relationship("Booking", back_populates="customer", lazy="dynamic")
    preferred_location = relationship("Location")

    def __repr__(self) -> str:
        return f"<Customer {self.email}>"
