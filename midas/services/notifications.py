"""The notification outbox as staff see it: every message, its channel and delivery state."""

from __future__ import annotations

from sqlalchemy import select

from midas.models import Channel, Notification, NotificationStatus
from midas.services.listing import Page, matches, paginate


def list_notifications(q: str, channel: str, status: str, page: int) -> Page:
    stmt = select(Notification)
    if q:
        stmt = stmt.where(matches(q, Notification.recipient, Notification.template, Notification.dedupe_key))
    if channel in Channel.values():
        stmt = stmt.where(Notification.channel == channel)
    if status in NotificationStatus.values():
        stmt = stmt.where(Notification.status == status)
    return paginate(stmt.order_by(Notification.created_at.desc(), Notification.id.desc()), page)
