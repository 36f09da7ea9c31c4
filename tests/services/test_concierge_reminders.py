"""Pick-up and return-day reminders go to the assigned concierge too, once each, by email."""

from __future__ import annotations

from datetime import timedelta

from midas.extensions import db
from midas.models import Notification, utcnow
from midas.services import notifications, outbox
from tests import factories
from tests.conftest import make_staff


def concierge_reminders() -> list[Notification]:
    db.session.expire_all()
    return db.session.query(Notification).filter_by(template="concierge_reminder").order_by(Notification.id).all()


def test_the_assigned_concierge_is_reminded_of_pickups_and_returns_once(app):
    now, chloe = utcnow(), make_staff("concierge", email="chloe@midas.test", name="Chloe Martin")
    loc = factories.location()
    pickup = factories.booking(factories.item(loc), starts_at=now + timedelta(hours=20), status="confirmed")
    returning = factories.booking(factories.item(loc, name="Bentley Bentayga"), starts_at=now - timedelta(days=2),
                                  status="in_progress")
    returning.ends_at = now + timedelta(hours=3)
    pickup.created_at = now - timedelta(days=5)
    pickup.concierge = returning.concierge = chloe
    db.session.commit()
    due = max(now, notifications.return_reminder_due(returning.ends_at, loc.timezone))

    notifications.queue_reminders(due)
    notifications.queue_reminders(due)

    sent = concierge_reminders()
    assert [(n.recipient, n.booking_id, n.context["moment"]) for n in sent] == [
        ("chloe@midas.test", pickup.id, "Pick-up"), ("chloe@midas.test", returning.id, "Return")]
    rendered = outbox.render(sent[0])
    assert pickup.reference in rendered.text and f"/bookings/{pickup.reference}" in rendered.text
    assert sent[0].subject.startswith("Pick-up: Ferrari SF90 Stradale for Grace Hopper")


def test_unassigned_bookings_and_departed_concierges_get_no_reminder(app):
    now = utcnow()
    gone = make_staff("concierge", email="gone@midas.test", active=False)
    for concierge in (None, gone):
        booking = factories.booking(factories.item(name=f"Car {concierge}"), starts_at=now + timedelta(hours=20))
        booking.created_at, booking.concierge = now - timedelta(days=5), concierge
    db.session.commit()

    notifications.queue_reminders(now)

    assert concierge_reminders() == []
