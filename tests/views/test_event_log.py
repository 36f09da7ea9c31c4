"""The event log dashboard: filters, masked payloads, retry and replay that never apply twice, feed health."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from midas.extensions import db
from midas.models import AuditEntry, Notification, Payment, WebhookEvent, utcnow
from midas.services import webhooks
from tests.conftest import soup
from tests.fakes import paypal_api, stripe_api
from tests.fakes.paypal_api import ipn_body, paypal_booking
from tests.fakes.paypal_api import run_jobs as paypal_run_jobs
from tests.fakes.stripe_api import card_booking, card_payment, deliver, event, intent_for, run_jobs, succeeded

stripe_webhooks = stripe_api.stripe_webhooks
fake_paypal, paypal_server = paypal_api.fake_paypal, paypal_api.paypal_server


def stored(event_id: str) -> WebhookEvent:
    db.session.rollback()
    return db.session.scalar(select(WebhookEvent).where(WebhookEvent.event_id == event_id))


def row(event_id: str, status: str = "processed", provider: str = "stripe", ago: timedelta = timedelta(minutes=5),
        took: timedelta = timedelta(seconds=2), payload: dict | None = None, kind: str = "payment_intent.succeeded"):
    received = utcnow() - ago
    new = WebhookEvent(provider=provider, event_id=event_id, type=kind, status=status, received_at=received,
                       processed_at=received + took if status in ("processed", "failed") else None,
                       payload=payload or {"id": event_id}, attempts=1)
    db.session.add(new)
    db.session.commit()
    return new


def emails() -> int:
    return db.session.scalar(select(func.count()).select_from(Notification))


def test_replaying_a_processed_stripe_event_changes_nothing_twice(app, client, login_as, stripe_webhooks):
    payment = card_payment(card_booking())
    deliver(client, event("payment_intent.succeeded", succeeded(intent_for(payment)), event_id="evt_replay"))
    run_jobs(app)
    assert stored("evt_replay").status == "processed"
    admin = login_as("admin")
    sent, audits = emails(), db.session.scalar(select(func.count()).select_from(AuditEntry))

    for _ in range(2):
        response = admin.post(f"/webhooks/events/{stored('evt_replay').id}/rerun", follow_redirects=True)
        run_jobs(app)

    assert "Event queued to be replayed." in soup(response).get_text()
    assert stored("evt_replay").status == "processed" and emails() == sent
    assert db.session.get(Payment, payment.id).status == "succeeded"
    replays = db.session.scalar(select(func.count()).select_from(AuditEntry).where(
        AuditEntry.action == "webhook_event.replay"))
    assert replays == 2 and db.session.scalar(select(func.count()).select_from(AuditEntry)) == audits + 2


def test_retrying_a_failed_stripe_event_applies_it_once_its_payment_exists(app, login_as, stripe_webhooks):
    booking = card_booking()
    payment = card_payment(booking)
    failed = row("evt_failed", status="failed",
                 payload=event("payment_intent.succeeded", succeeded(intent_for(payment)), event_id="evt_failed"))
    failed.last_error = "PaymentIntent belongs to no payment or booking we know yet."
    db.session.commit()
    admin = login_as("admin")
    page = admin.page(f"/webhooks/events/{failed.id}")
    assert page.select_one("[data-last-error]") and page.find("button", string="Retry")

    admin.post(f"/webhooks/events/{failed.id}/rerun")
    run_jobs(app)

    assert stored("evt_failed").status == "processed"
    assert db.session.get(Payment, payment.id).status == "succeeded"


def test_an_event_waiting_to_run_is_not_rerun(login_as):
    waiting = row("evt_wait", status="received")
    response = login_as("admin").post(f"/webhooks/events/{waiting.id}/rerun", follow_redirects=True)
    assert "only failed events are retried" in soup(response).get_text()
    assert stored("evt_wait").status == "received"


def test_concierges_cannot_rerun_events(login_as):
    done = row("evt_c")
    assert login_as("concierge").post(f"/webhooks/events/{done.id}/rerun").status_code == 403


def test_the_payload_is_pretty_with_secrets_masked_and_links_to_the_payment(login_as):
    payment = card_payment(card_booking())
    intent = intent_for(payment)
    done = row("evt_secret", payload=event("payment_intent.succeeded", {**intent, "nested": {"api_token": "tok_1",
                                                                                               "password": "hunter2"}}))
    page = login_as("admin").page(f"/webhooks/events/{done.id}")
    text = page.select_one("pre").get_text()
    assert intent["client_secret"] not in text and "tok_1" not in text and "hunter2" not in text
    assert '"client_secret": "••••••"' in text and '\n  "data"' in text
    assert page.select_one(f"a[href='/payments/{payment.id}']") is not None


def test_filters_by_provider_type_state_and_period(app):
    row("evt_a", provider="stripe", status="failed")
    row("evt_b", provider="paypal", kind="web_accept", ago=timedelta(days=3))
    row("evt_c", provider="stripe", kind="charge.refunded")

    def ids(**args) -> set[str]:
        return {e.event_id for e in webhooks.list_events(webhooks.parse_filters(args)).items}

    assert ids(provider="paypal") == {"evt_b"}
    assert ids(state="failed") == {"evt_a"}
    assert ids(type="charge.refunded") == {"evt_c"}
    today = utcnow().date().isoformat()
    assert ids(**{"from": today, "to": today}) == {"evt_a", "evt_c"}
    assert "from" in webhooks.parse_filters({"from": "yesterday"}).errors


def test_kpis_count_the_day_time_the_processing_and_spot_a_stale_feed(app, login_as):
    for n in range(19):
        row(f"evt_ok{n}", took=timedelta(seconds=n + 1))
    row("evt_bad", status="failed", took=timedelta(seconds=100))
    row("ipn_old", provider="paypal", ago=timedelta(hours=7))  # took 2 s: the 21 times are 1, 2, 2, 3 … 19, 100

    kpis = webhooks.event_kpis(utcnow())

    assert kpis.last_24h == 21 and kpis.p50_seconds == pytest.approx(10, abs=0.01)
    assert kpis.p95_seconds == pytest.approx(19, abs=0.01) and kpis.failure_rate == pytest.approx(1 / 21)
    assert kpis.stale == ["paypal"] and webhooks.stale_feeds(utcnow()) == ["paypal"]
    assert kpis.since_last["stripe"] < timedelta(minutes=6)
    page = login_as("admin").page("/webhooks/events")
    assert page.select_one("[data-kpi='events-24h']").get_text() == "21"
    assert page.select_one("[data-kpi='since-last-paypal'][data-stale]") is not None


def test_a_feed_that_never_sent_anything_is_not_called_stale(app):
    assert webhooks.stale_feeds(utcnow()) == []


def test_replaying_a_paypal_ipn_reverifies_and_applies_it_once(client, login_as, fake_paypal):
    booking = paypal_booking()
    client.post("/webhooks/paypal/ipn", data=fake_paypal.sent(ipn_body("web-accept-completed")),
                content_type="application/x-www-form-urlencoded")
    paypal_run_jobs()
    [ipn] = db.session.scalars(select(WebhookEvent)).all()
    assert ipn.status == "processed"
    sent, admin = emails(), login_as("admin")

    admin.post(f"/webhooks/events/{ipn.id}/rerun")
    paypal_run_jobs()

    assert stored(ipn.event_id).status == "processed" and emails() == sent
    assert len(fake_paypal.calls("/cgi-bin/webscr")) == 2  # verified with PayPal again
    assert db.session.scalar(select(func.count()).select_from(Payment).where(Payment.booking_id == booking.id)) == 1
