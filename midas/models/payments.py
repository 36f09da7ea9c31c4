"""Money in (payments, deposit holds), money out (refunds) and disputes."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import CheckConstraint, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from midas.extensions import db
from midas.models.types import Amount, StrEnum, UTCDateTime, check_in, enum_column, utcnow


class Provider(StrEnum):
    STRIPE = "stripe"
    PAYPAL = "paypal"
    BANK_TRANSFER = "bank_transfer"
    PAY_ON_PICKUP = "pay_on_pickup"


class PaymentKind(StrEnum):
    CHARGE = "charge"
    DEPOSIT = "deposit"  # an authorisation hold captured in part or released after return
    LATE_FEE = "late_fee"


class PaymentStatus(StrEnum):
    PENDING = "pending"
    PROCESSING = "processing"
    REQUIRES_ACTION = "requires_action"
    AUTHORIZED = "authorized"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELED = "canceled"
    RELEASED = "released"
    PARTIALLY_REFUNDED = "partially_refunded"  # captured, some of it refunded: set only from succeeded refunds
    REFUNDED = "refunded"  # everything captured went back

    @classmethod
    def paid(cls) -> tuple[str, ...]:
        """The states of a captured payment, refunded or not: the customer paid it."""
        return (cls.SUCCEEDED.value, cls.PARTIALLY_REFUNDED.value, cls.REFUNDED.value)


class Payment(db.Model):
    __tablename__ = "payments"
    __table_args__ = (
        check_in("provider", Provider),
        check_in("kind", PaymentKind),
        check_in("status", PaymentStatus),
        CheckConstraint("amount > 0", name="amount_positive"),
        CheckConstraint("amount_refunded >= 0 AND amount_refunded <= amount", name="refunded_within_amount"),
        CheckConstraint("amount_captured >= 0 AND amount_captured <= amount", name="captured_within_amount"),
        # The refund states follow amount_refunded (the service keeps it equal to the succeeded refunds).
        CheckConstraint("status NOT IN ('partially_refunded', 'refunded') OR "
                        "(amount_refunded > 0 AND amount_refunded <= amount_captured)",
                        name="refund_state_has_refunds"),
        CheckConstraint("status <> 'refunded' OR amount_refunded = amount_captured", name="refunded_in_full"),
        CheckConstraint("length(currency) = 3", name="currency_iso"),
        UniqueConstraint("provider", "provider_ref"),
        Index("ix_payments_status_created", "status", "created_at"),
        Index("ix_payments_created", "created_at", "id"),  # the dashboard's default order, paged by keyset
        Index("ix_payments_succeeded", "succeeded_at"),  # revenue KPIs and reports
        Index("ix_payments_status_updated", "status", "updated_at"),  # failures of the last 24 hours
        Index("ix_payments_currency", "currency"),  # the currency filter's distinct values, by skip scan
        # the 30-day counters read from the index alone on PostgreSQL
        Index("ix_payments_window", "created_at",
              postgresql_include=["status", "kind", "currency", "amount", "amount_refunded"]),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    booking_id: Mapped[int] = mapped_column(ForeignKey("bookings.id"), index=True)
    provider: Mapped[str] = mapped_column(enum_column(Provider))
    kind: Mapped[str] = mapped_column(enum_column(PaymentKind), default=PaymentKind.CHARGE.value)
    status: Mapped[str] = mapped_column(enum_column(PaymentStatus), default=PaymentStatus.PENDING.value)
    amount: Mapped[int] = mapped_column(Amount)
    currency: Mapped[str] = mapped_column(String(3))
    amount_captured: Mapped[int] = mapped_column(Amount, default=0)
    amount_refunded: Mapped[int] = mapped_column(Amount, default=0)
    provider_ref: Mapped[str | None] = mapped_column(String(255))  # PaymentIntent, PayPal order/capture
    idempotency_key: Mapped[str] = mapped_column(String(255), unique=True)
    method: Mapped[str | None] = mapped_column(String(40))  # card brand, "paypal", "wire" …
    failure_code: Mapped[str | None] = mapped_column(String(80))
    failure_message: Mapped[str | None] = mapped_column(Text)
    reference_note: Mapped[str | None] = mapped_column(String(240))  # offline: bank reference
    confirmed_by_id: Mapped[int | None] = mapped_column(ForeignKey("staff_users.id"))
    succeeded_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    booking = relationship("Booking", back_populates="payments")
    refunds: Mapped[list[Refund]] = relationship(back_populates="payment", order_by="Refund.created_at")

    def __repr__(self) -> str:
        return f"<Payment {self.id} {self.provider} {self.status} {self.amount} {self.currency}>"


class RefundStatus(StrEnum):
    PENDING_APPROVAL = "pending_approval"
    APPROVED = "approved"
    REJECTED = "rejected"
    PROCESSING = "processing"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELED = "canceled"
    NO_REFUND = "no_refund"  # a decision to refund nothing (e.g. a late cancellation), kept with its rule


class RefundOverride(StrEnum):
    NONE = "none"
    FORCE_MAJEURE = "force_majeure"
    GOODWILL = "goodwill"


class Refund(db.Model):
    __tablename__ = "refunds"
    __table_args__ = (
        check_in("status", RefundStatus),
        check_in("override", RefundOverride),
        CheckConstraint("(status = 'no_refund' AND amount = 0) OR (status <> 'no_refund' AND amount > 0)",
                        name="amount_fits_status"),
        CheckConstraint("length(currency) = 3", name="currency_iso"),
        CheckConstraint("approved_by_id IS NULL OR approved_by_id <> requested_by_id", name="no_self_approval"),
        UniqueConstraint("provider_ref"),
        Index("ix_refunds_status_created", "status", "created_at"),
        Index("ix_refunds_created", "created_at", "id"),  # the dashboard's history, newest first
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    payment_id: Mapped[int] = mapped_column(ForeignKey("payments.id"), index=True)
    booking_id: Mapped[int] = mapped_column(ForeignKey("bookings.id"), index=True)
    amount: Mapped[int] = mapped_column(Amount)
    currency: Mapped[str] = mapped_column(String(3))
    status: Mapped[str] = mapped_column(enum_column(RefundStatus))
    reason: Mapped[str] = mapped_column(String(500))
    override: Mapped[str] = mapped_column(enum_column(RefundOverride), default=RefundOverride.NONE.value)
    policy_version: Mapped[int | None]
    policy_rule: Mapped[str | None] = mapped_column(String(240))
    provider_ref: Mapped[str | None] = mapped_column(String(255))
    idempotency_key: Mapped[str] = mapped_column(String(255), unique=True)
    failure_reason: Mapped[str | None] = mapped_column(Text)
    requested_by_id: Mapped[int | None] = mapped_column(ForeignKey("staff_users.id"))
    approved_by_id: Mapped[int | None] = mapped_column(ForeignKey("staff_users.id"))
    decision_reason: Mapped[str | None] = mapped_column(String(500))
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    succeeded_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    payment: Mapped[Payment] = relationship(back_populates="refunds")
    booking = relationship("Booking")
    requested_by = relationship("StaffUser", foreign_keys=[requested_by_id])
    approved_by = relationship("StaffUser", foreign_keys=[approved_by_id])


class DisputeStatus(StrEnum):
    WARNING_NEEDS_RESPONSE = "warning_needs_response"
    WARNING_UNDER_REVIEW = "warning_under_review"
    WARNING_CLOSED = "warning_closed"
    NEEDS_RESPONSE = "needs_response"
    UNDER_REVIEW = "under_review"
    WON = "won"
    LOST = "lost"
    PREVENTED = "prevented"


class Dispute(db.Model):
    __tablename__ = "disputes"
    __table_args__ = (
        check_in("status", DisputeStatus),
        check_in("provider", Provider),
        CheckConstraint("amount >= 0", name="amount_not_negative"),
        UniqueConstraint("provider", "provider_ref"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    payment_id: Mapped[int | None] = mapped_column(ForeignKey("payments.id"), index=True)
    booking_id: Mapped[int | None] = mapped_column(ForeignKey("bookings.id"), index=True)
    provider: Mapped[str] = mapped_column(enum_column(Provider))
    provider_ref: Mapped[str] = mapped_column(String(255))
    amount: Mapped[int] = mapped_column(Amount)
    currency: Mapped[str] = mapped_column(String(3))
    reason: Mapped[str] = mapped_column(String(80))
    status: Mapped[str] = mapped_column(enum_column(DisputeStatus))
    evidence_due_by: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    payment = relationship("Payment")
    booking = relationship("Booking")
