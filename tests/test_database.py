"""midas.database: the insert that recognises a repeat without a constraint error."""

from __future__ import annotations

from sqlalchemy import func, select

from midas.database import insert_unless_present
from midas.extensions import db
from midas.models import WebhookEvent, utcnow


def _event(event_id: str) -> dict:
    return {"provider": "stripe", "event_id": event_id, "type": "payment_intent.succeeded",
            "payload": {"id": event_id, "data": {"object": {"amount": 1000}}}, "status": "received",
            "attempts": 0, "received_at": utcnow()}


def test_a_new_row_gets_its_id_and_a_repeat_gets_none(app):
    first = insert_unless_present(WebhookEvent, ("provider", "event_id"), _event("evt_1"))
    again = insert_unless_present(WebhookEvent, ("provider", "event_id"), _event("evt_1"))
    db.session.commit()

    assert isinstance(first, int) and again is None
    stored = db.session.scalars(select(WebhookEvent)).all()
    assert [(e.id, e.event_id, e.payload["data"]["object"]["amount"]) for e in stored] == [(first, "evt_1", 1000)]
    assert stored[0].received_at.tzinfo is not None


def test_after_a_repeat_the_same_transaction_still_writes(app):
    insert_unless_present(WebhookEvent, ("provider", "event_id"), _event("evt_1"))
    db.session.commit()

    assert insert_unless_present(WebhookEvent, ("provider", "event_id"), _event("evt_1")) is None
    # PostgreSQL aborts a transaction on a unique violation; ON CONFLICT never raises one.
    second = insert_unless_present(WebhookEvent, ("provider", "event_id"), _event("evt_2"))
    db.session.commit()

    assert second is not None
    assert db.session.scalar(select(func.count()).select_from(WebhookEvent)) == 2
