"""Refunds: the queue staff work through."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import joinedload

from midas.models import Refund, RefundStatus
from midas.services.listing import Page, paginate


def list_refunds(status: str, page: int) -> Page:
    """Refunds, optionally of one status; the approval queue is oldest first so nobody waits longest."""
    stmt = select(Refund).options(joinedload(Refund.booking), joinedload(Refund.requested_by))
    if status in RefundStatus.values():
        stmt = stmt.where(Refund.status == status)
    oldest_first = status == RefundStatus.PENDING_APPROVAL.value
    stmt = stmt.order_by(Refund.created_at.asc() if oldest_first else Refund.created_at.desc(), Refund.id)
    return paginate(stmt, page)
