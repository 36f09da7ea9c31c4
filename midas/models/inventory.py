"""Locations, the fleet, maintenance blackouts and seasonal pricing rules."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import JSON, CheckConstraint, Date, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from midas.extensions import db
from midas.models.types import Amount, StrEnum, UTCDateTime, check_in, enum_column, utcnow


class Category(StrEnum):
    CAR = "car"
    YACHT = "yacht"
    JET = "jet"
    PROPERTY = "property"


class ItemStatus(StrEnum):
    ACTIVE = "active"
    MAINTENANCE = "maintenance"
    RETIRED = "retired"


class Location(db.Model):
    __tablename__ = "locations"
    __table_args__ = (
        CheckConstraint("length(currency) = 3", name="currency_iso"),
        CheckConstraint("code = upper(code)", name="code_uppercase"),
        CheckConstraint("tax_rate_bp BETWEEN 0 AND 10000", name="tax_rate_range"),
        CheckConstraint("service_fee_bp BETWEEN 0 AND 10000", name="service_fee_range"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(8), unique=True)
    name: Mapped[str] = mapped_column(String(120))
    city: Mapped[str] = mapped_column(String(120))
    country: Mapped[str] = mapped_column(String(2))
    timezone: Mapped[str] = mapped_column(String(64))
    currency: Mapped[str] = mapped_column(String(3))
    tax_rate_bp: Mapped[int] = mapped_column(Integer, default=0)  # VAT / sales tax on the rental
    service_fee_bp: Mapped[int] = mapped_column(Integer, default=0)  # the house's fee, never refunded
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    items: Mapped[list[Item]] = relationship(back_populates="location")

    def __repr__(self) -> str:
        return f"<Location {self.code}>"


class Item(db.Model):
    __tablename__ = "items"
    __table_args__ = (
        check_in("category", Category),
        check_in("status", ItemStatus),
        CheckConstraint("daily_rate > 0", name="daily_rate_positive"),
        CheckConstraint("security_deposit >= 0", name="deposit_not_negative"),
        CheckConstraint("insurance_rate_bp BETWEEN 0 AND 10000", name="insurance_rate_range"),
        CheckConstraint("buffer_before_hours >= 0 AND buffer_after_hours >= 0", name="buffers_positive"),
        CheckConstraint("min_days >= 1", name="min_days_positive"),
        CheckConstraint("length(currency) = 3", name="currency_iso"),
        Index("ix_items_category_status_name", "category", "status", "name"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    location_id: Mapped[int] = mapped_column(ForeignKey("locations.id"), index=True)
    category: Mapped[str] = mapped_column(enum_column(Category))
    name: Mapped[str] = mapped_column(String(160))
    description: Mapped[str] = mapped_column(Text, default="")
    status: Mapped[str] = mapped_column(enum_column(ItemStatus), default=ItemStatus.ACTIVE.value)
    currency: Mapped[str] = mapped_column(String(3))
    daily_rate: Mapped[int] = mapped_column(Amount)
    security_deposit: Mapped[int] = mapped_column(Amount, default=0)
    insurance_rate_bp: Mapped[int] = mapped_column(Integer, default=0)
    buffer_before_hours: Mapped[int] = mapped_column(Integer, default=0)
    buffer_after_hours: Mapped[int] = mapped_column(Integer, default=0)
    min_days: Mapped[int] = mapped_column(Integer, default=1)
    specs: Mapped[dict] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    location: Mapped[Location] = relationship(back_populates="items")
    blackouts: Mapped[list[Blackout]] = relationship(back_populates="item", order_by="Blackout.starts_at")

    def __repr__(self) -> str:
        return f"<Item {self.id} {self.name}>"


class Blackout(db.Model):
    """A maintenance period during which the item cannot be booked."""

    __tablename__ = "blackouts"
    __table_args__ = (
        CheckConstraint("ends_at > starts_at", name="period_ordered"),
        Index("ix_blackouts_item_period", "item_id", "starts_at", "ends_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    item_id: Mapped[int] = mapped_column(ForeignKey("items.id", ondelete="CASCADE"))
    starts_at: Mapped[datetime] = mapped_column(UTCDateTime)
    ends_at: Mapped[datetime] = mapped_column(UTCDateTime)
    reason: Mapped[str] = mapped_column(String(240))
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("staff_users.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    item: Mapped[Item] = relationship(back_populates="blackouts")


class SeasonRule(db.Model):
    """A price multiplier over a date range, optionally narrowed to a location and category."""

    __tablename__ = "season_rules"
    __table_args__ = (
        CheckConstraint("ends_on >= starts_on", name="period_ordered"),
        CheckConstraint("multiplier_bp > 0", name="multiplier_positive"),
        CheckConstraint(
            f"category IS NULL OR category IN ({', '.join(repr(c) for c in Category.values())})",
            name="category_valid",
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(120))
    location_id: Mapped[int | None] = mapped_column(ForeignKey("locations.id"))
    category: Mapped[str | None] = mapped_column(enum_column(Category))
    starts_on: Mapped[date] = mapped_column(Date)
    ends_on: Mapped[date] = mapped_column(Date)
    multiplier_bp: Mapped[int] = mapped_column(Integer)
    priority: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    location: Mapped[Location | None] = relationship()
