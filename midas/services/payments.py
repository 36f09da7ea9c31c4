"""Payments and disputes: the answer to "did we get the money?"."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import joinedload

from midas.extensions import db
from midas.models import Booking, Dispute, Payment, PaymentStatus, Provider
from midas.services import NotFound
from midas.services.dashboard import OPEN_DISPUTES
from midas.services.listing import Page, matches, order_by, paginate

SORTS = {"created_at": Payment.created_at, "amount": Payment.amount, "status": Payment.status}


@dataclass
class PaymentFilters:
    q: str = ""
    status: str = ""
    provider: str = ""
    sort: str = "-created_at"
    page: int = 1


def list_payments(filters: PaymentFilters) -> tuple[Page, str]:
    stmt = select(Payment).join(Payment.booking).options(joinedload(Payment.booking))
    if filters.q:
        stmt = stmt.where(matches(filters.q, Booking.reference, Payment.provider_ref))
    if filters.status in PaymentStatus.values():
        stmt = stmt.where(Payment.status == filters.status)
    if filters.provider in Provider.values():
        stmt = stmt.where(Payment.provider == filters.provider)
    stmt, sort = order_by(stmt, filters.sort, SORTS, "-created_at", Payment.id)
    return paginate(stmt, filters.page), sort


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
