"""The provider event log as staff see it."""

from __future__ import annotations

from sqlalchemy import select

from midas.extensions import db
from midas.models import EventStatus, WebhookEvent
from midas.services import NotFound
from midas.services.listing import Page, paginate


def list_events(provider: str, status: str, event_type: str, page: int) -> Page:
    stmt = select(WebhookEvent)
    if provider in ("stripe", "paypal"):
        stmt = stmt.where(WebhookEvent.provider == provider)
    if status in EventStatus.values():
        stmt = stmt.where(WebhookEvent.status == status)
    if event_type:
        stmt = stmt.where(WebhookEvent.type == event_type)
    return paginate(stmt.order_by(WebhookEvent.received_at.desc(), WebhookEvent.id.desc()), page)


def get_event(event_id: int) -> WebhookEvent:
    event = db.session.get(WebhookEvent, event_id)
    if event is None:
        raise NotFound("No such webhook event.")
    return event
