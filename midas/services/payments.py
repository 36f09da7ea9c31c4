"""Payments and disputes: the answer to "did we get the money?"."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta

from sqlalchemy import Select, Text, cast, func, or_, select
from sqlalchemy.orm import contains_eager, joinedload

from midas.extensions import db
from midas.models import AuditEntry, Booking, Customer, Dispute, Payment, PaymentStatus, Provider, WebhookEvent
from midas.money import parse_major
from midas.services import NotFound
from midas.services.dashboard import OPEN_DISPUTES
from midas.services.keyset import KeysetPage, seek
from midas.services.listing import Page, like, matches, paginate

SORTS = {"created_at": Payment.created_at, "amount": Payment.amount, "status": Payment.status}
DEFAULT_SORT = "-created_at"
TIMELINE_LIMIT = 200
AMOUNT_NEEDS_CURRENCY = "Choose a currency to filter by amount: amounts are never compared across currencies."


@dataclass
class PaymentFilters:
    q: str = ""
    status: str = ""
    provider: str = ""
    currency: str = ""
    date_from: date | None = None
    date_to: date | None = None
    amount_min: int | None = None  # minor units of `currency`
    amount_max: int | None = None
    sort: str = DEFAULT_SORT
    after: str = ""
    before: str = ""
    errors: dict[str, str] = field(default_factory=dict)


def parse_filters(args: Mapping[str, str]) -> PaymentFilters:
    """The list's query arguments as filters; a bad one is left out and explained in `errors`."""
    filters = PaymentFilters(q=args.get("q", "").strip()[:120], status=args.get("status", ""),
                             provider=args.get("provider", ""), currency=args.get("currency", "").strip().upper(),
                             sort=args.get("sort", DEFAULT_SORT), after=args.get("after", ""),
                             before=args.get("before", ""))
    if filters.currency and not (len(filters.currency) == 3 and filters.currency.isalpha()):
        filters.errors["currency"], filters.currency = "Choose a three-letter currency such as EUR.", ""
    filters.date_from = _day(args.get("from", ""), "from", filters.errors)
    filters.date_to = _day(args.get("to", ""), "to", filters.errors)
    filters.amount_min = _amount(args.get("amount_min", ""), "amount_min", filters)
    filters.amount_max = _amount(args.get("amount_max", ""), "amount_max", filters)
    return filters


def _day(text: str, name: str, errors: dict[str, str]) -> date | None:
    try:
        return date.fromisoformat(text.strip()) if text.strip() else None
    except ValueError:
        errors[name] = "Enter a date as YYYY-MM-DD."
        return None


def _amount(text: str, name: str, filters: PaymentFilters) -> int | None:
    if not text.strip():
        return None
    if not filters.currency:
        filters.errors[name] = AMOUNT_NEEDS_CURRENCY
        return None
    try:
        return parse_major(text, filters.currency)
    except (ValueError, KeyError):
        filters.errors[name] = f"Enter an amount in {filters.currency}, e.g. 1,250.00."
        return None


def list_payments(filters: PaymentFilters) -> KeysetPage:
    """One keyset page of payments matching the filters (fast however deep the page)."""
    return seek(payment_query(filters), filters.sort, SORTS, DEFAULT_SORT, Payment.id,
                after=filters.after, before=filters.before)


def payment_query(filters: PaymentFilters) -> Select:
    if filters.q:
        stmt = select(Payment).join(Payment.booking).join(Booking.customer).options(
            contains_eager(Payment.booking).contains_eager(Booking.customer)).where(
            matches(filters.q, Booking.reference, Payment.provider_ref, Customer.name, Customer.email))
    else:  # eager joins only for the page's rows: the capped count then reads payments alone
        stmt = select(Payment).options(joinedload(Payment.booking, innerjoin=True)
                                       .joinedload(Booking.customer, innerjoin=True))
    if filters.status in PaymentStatus.values():
        stmt = stmt.where(Payment.status == filters.status)
    if filters.provider in Provider.values():
        stmt = stmt.where(Payment.provider == filters.provider)
    return _money_and_period(stmt, filters)


def _money_and_period(stmt: Select, filters: PaymentFilters) -> Select:
    if filters.currency:
        stmt = stmt.where(Payment.currency == filters.currency)
    if filters.amount_min is not None:
        stmt = stmt.where(Payment.amount >= filters.amount_min)
    if filters.amount_max is not None:
        stmt = stmt.where(Payment.amount <= filters.amount_max)
    if filters.date_from:
        stmt = stmt.where(Payment.created_at >= datetime.combine(filters.date_from, time.min, UTC))
    if filters.date_to:
        stmt = stmt.where(Payment.created_at < datetime.combine(filters.date_to + timedelta(days=1), time.min, UTC))
    return stmt


def currencies() -> list[str]:
    """The currencies payments were taken in (for the filter).

    A skip scan: each step asks ix_payments_currency for the next currency after the last one, so a
    handful of index probes replace reading every payment for its DISTINCT currencies.
    """
    seen = select(func.min(Payment.currency).label("currency")).cte("seen", recursive=True)
    following = select(Payment.currency).where(Payment.currency > seen.c.currency).order_by(Payment.currency).limit(1)
    seen = seen.union_all(select(following.scalar_subquery()).where(seen.c.currency.is_not(None)))
    return list(db.session.scalars(select(seen.c.currency).where(seen.c.currency.is_not(None))
                                   .order_by(seen.c.currency)))


def list_disputes(open_only: bool, page: int) -> Page:
    stmt = select(Dispute).options(joinedload(Dispute.booking)).order_by(Dispute.created_at.desc(), Dispute.id)
    if open_only:
        stmt = stmt.where(Dispute.status.in_([s.value for s in OPEN_DISPUTES]))
    return paginate(stmt, page)


def get_payment(payment_id: int) -> Payment:
    payment = db.session.get(Payment, payment_id, options=[joinedload(Payment.booking)])
    if payment is None:
        raise NotFound("No such payment.")
    return payment


@dataclass(frozen=True)
class TimelineEntry:
    at: datetime
    source: str  # "audit" (our API calls and staff actions) or "webhook" (events the provider sent)
    title: str
    detail: str = ""
    event_id: int | None = None


def payment_timeline(payment: Payment, limit: int = TIMELINE_LIMIT) -> list[TimelineEntry]:
    """What happened to a payment, oldest first: audit entries, and provider events naming it or its booking."""
    entries = _audit_entries(payment, limit) + _webhook_entries(payment, limit)
    return sorted(entries, key=lambda entry: entry.at)


def _audit_entries(payment: Payment, limit: int) -> list[TimelineEntry]:
    refund_ids = [str(refund.id) for refund in payment.refunds]
    rows = db.session.scalars(select(AuditEntry).where(or_(
        (AuditEntry.entity_type == "payment") & (AuditEntry.entity_id == str(payment.id)),
        (AuditEntry.entity_type == "refund") & AuditEntry.entity_id.in_(refund_ids),
    )).order_by(AuditEntry.id.desc()).limit(limit))
    return [TimelineEntry(row.at, "audit", row.action, f"by {row.actor_label}") for row in rows]


def _webhook_entries(payment: Payment, limit: int) -> list[TimelineEntry]:
    payload = cast(WebhookEvent.payload, Text)
    mentions = [WebhookEvent.booking_id == payment.booking_id,
                payload.ilike(like(payment.booking.reference), escape="\\")]
    if payment.provider_ref:
        mentions.append(payload.ilike(like(payment.provider_ref), escape="\\"))
    rows = db.session.scalars(select(WebhookEvent).where(or_(*mentions)).order_by(WebhookEvent.id.desc()).limit(limit))
    return [TimelineEntry(row.received_at, "webhook", f"{row.provider} {row.type}", row.status, row.id)
            for row in rows]
