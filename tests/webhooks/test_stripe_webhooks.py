"""POST /webhooks/stripe: every real event changes our records exactly once; a forged one changes nothing."""

from __future__ import annotations

import json
import random
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from midas.extensions import db
from midas.models import AuditEntry, Dispute, ErrorEvent, ErrorGroup, Notification, Payment, Refund, WebhookEvent
from midas.services import webhook_log
from midas.services.error_capture import flush_deferred
from tests import factories
from tests.fakes import stripe_api
from tests.fakes.stripe_api import (
    WEBHOOK_SECRET,
    authorized,
    card_booking,
    card_payment,
    charge,
    declined,
    deliver,
    dispute,
    event,
    intent_for,
    payment_intent,
    refund,
    run_jobs,
    signature,
    succeeded,
)

fake_stripe, stripe_server = stripe_api.fake_stripe, stripe_api.stripe_server
stripe_webhooks = stripe_api.stripe_webhooks

pytestmark = pytest.mark.usefixtures("stripe_webhooks")


def count(model, *where) -> int:
    return db.session.scalar(select(func.count()).select_from(model).where(*where))


def audits(action: str) -> int:
    return count(AuditEntry, AuditEntry.action == action)


def emails(template: str) -> int:
    return count(Notification, Notification.template == template, Notification.channel == "email")


def stored(event_id: str) -> WebhookEvent:
    db.session.rollback()
    return db.session.scalar(select(WebhookEvent).where(WebhookEvent.event_id == event_id))


def refusals() -> list[ErrorEvent]:
    flush_deferred()
    return list(db.session.scalars(select(ErrorEvent).join(ErrorGroup).where(ErrorGroup.category == "WEBHOOK")))


# Each handled type.

@pytest.mark.parametrize(("event_type", "change", "kind", "expected"), [
    ("payment_intent.succeeded", succeeded, "charge", "succeeded"),
    ("payment_intent.payment_failed", declined, "charge", "failed"),
    ("payment_intent.processing", lambda i: {**i, "status": "processing"}, "charge", "processing"),
    ("payment_intent.canceled", lambda i: {**i, "status": "canceled"}, "charge", "canceled"),
    ("payment_intent.amount_capturable_updated", authorized, "deposit", "authorized"),
])
def test_payment_intent_events_move_the_payment(app, client, event_type, change, kind, expected):
    booking = card_booking(status="pending_payment" if kind == "charge" else "confirmed")
    payment = card_payment(booking, kind=kind)

    response = deliver(client, event(event_type, change(intent_for(payment))))
    run_jobs(app)

    assert response.status_code == 200 and response.json == {"received": True, "duplicate": False}
    assert db.session.get(Payment, payment.id).status == expected


def test_a_succeeded_payment_confirms_the_booking_and_queues_the_confirmation(app, client):
    booking = card_booking()
    payment = card_payment(booking)

    deliver(client, event("payment_intent.succeeded", succeeded(intent_for(payment)), "evt_paid"))
    run_jobs(app)

    assert db.session.get(type(booking), booking.id).status == "confirmed"
    assert emails("booking_confirmation") == 1 and emails("payment_receipt") == 1
    row = stored("evt_paid")
    assert (row.status, row.attempts, row.booking_id, row.source_ip) == ("processed", 1, booking.id, "127.0.0.1")


def test_a_declined_payment_records_the_decline_code_and_sends_a_recovery_email(app, client):
    booking = card_booking()
    payment = card_payment(booking)

    deliver(client, event("payment_intent.payment_failed", declined(intent_for(payment), "expired_card",
                                                                    "Your card has expired.")))
    run_jobs(app)

    payment = db.session.get(Payment, payment.id)
    assert (payment.failure_code, payment.failure_message) == ("expired_card", "Your card has expired.")
    assert emails("payment_failed") == 1


def test_a_charge_refund_updates_the_refunded_amount(app, client):
    payment = card_payment(card_booking(status="confirmed"), status="succeeded")

    deliver(client, event("charge.refunded", charge(payment_intent=payment.provider_ref, amount=payment.amount,
                                                    amount_refunded=125000, refunded=False)))
    run_jobs(app)

    assert db.session.get(Payment, payment.id).amount_refunded == 125000


@pytest.mark.parametrize(("event_type", "stripe_status", "expected"), [
    ("refund.created", "pending", "processing"), ("refund.updated", "succeeded", "succeeded"),
    ("refund.failed", "failed", "failed"),
])
def test_refund_events_move_our_refund_row(app, client, event_type, stripe_status, expected):
    booking = card_booking(status="confirmed")
    payment = card_payment(booking, status="succeeded")
    row = Refund(payment=payment, booking=booking, amount=50000, currency="EUR", status="approved",
                 reason="goodwill", idempotency_key="refund:x")
    db.session.add(row)
    db.session.commit()

    deliver(client, event(event_type, refund(payment_intent=payment.provider_ref, amount=50000, currency="eur",
                                             status=stripe_status, metadata={"refund_id": str(row.id)})))
    run_jobs(app)

    assert db.session.get(Refund, row.id).status == expected


@pytest.mark.parametrize(("event_type", "status"), [
    ("charge.dispute.created", "needs_response"), ("charge.dispute.updated", "under_review"),
    ("charge.dispute.closed", "lost"),
])
def test_dispute_events_record_the_dispute(app, client, event_type, status):
    payment = card_payment(card_booking(status="confirmed"), status="succeeded")

    deliver(client, event(event_type, dispute(payment_intent=payment.provider_ref, amount=425000, currency="eur",
                                              status=status, reason="product_not_received")))
    run_jobs(app)

    row = db.session.scalar(select(Dispute))
    assert (row.payment_id, row.status, row.reason, row.amount) == (payment.id, status, "product_not_received", 425000)
    assert row.evidence_due_by is not None


def test_other_event_types_are_stored_and_ignored(app, client):
    response = deliver(client, event("customer.created", {"id": "cus_1", "object": "customer"}, "evt_customer"))

    assert response.status_code == 200
    assert stored("evt_customer").status == "ignored"


def test_a_payment_intents_client_secret_is_never_stored(app, client):
    payment = card_payment(card_booking())

    deliver(client, event("payment_intent.processing", {**intent_for(payment), "status": "processing"}, "evt_secret"))

    assert stored("evt_secret").payload["data"]["object"]["client_secret"] == "[redacted]"


# Duplicates and order.

def test_five_deliveries_of_one_event_have_one_effect(app, client):
    booking = card_booking()
    payment = card_payment(booking)
    paid = event("payment_intent.succeeded", succeeded(intent_for(payment)), "evt_again")

    answers = [deliver(client, paid).json for _ in range(5)]
    run_jobs(app)

    assert [a["duplicate"] for a in answers] == [False, True, True, True, True]
    assert count(WebhookEvent) == 1 and stored("evt_again").attempts == 1
    assert audits("payment.succeeded") == 1 and audits("booking.confirmed") == 1
    assert emails("payment_receipt") == 1 and emails("booking_confirmation") == 1


def whole_life(payment: Payment) -> list[dict]:
    """A payment's events from first attempt to a closed dispute (and noise Stripe also sends)."""
    intent = intent_for(payment)
    disputed = dispute(payment_intent=payment.provider_ref, amount=payment.amount, currency="eur")
    return [
        event("payment_intent.created", intent),
        event("payment_intent.requires_action", {**intent, "status": "requires_action"}),
        event("payment_intent.payment_failed", declined(intent)),
        event("payment_intent.processing", {**intent, "status": "processing"}),
        event("payment_intent.succeeded", succeeded(intent)),
        event("charge.succeeded", charge(payment_intent=payment.provider_ref)),
        event("charge.refunded", charge(payment_intent=payment.provider_ref, amount=payment.amount,
                                        amount_refunded=25000)),
        event("charge.dispute.created", {**disputed, "status": "needs_response"}),
        event("charge.dispute.updated", {**disputed, "status": "under_review"}),
        event("charge.dispute.closed", {**disputed, "status": "won"}),
    ]


@pytest.mark.parametrize("seed", range(4))
def test_a_payments_whole_life_in_any_order_ends_in_the_right_state(app, client, seed):
    booking = card_booking()
    payment = card_payment(booking)
    events = whole_life(payment)
    random.Random(seed).shuffle(events)

    for envelope in events:
        assert deliver(client, envelope).status_code == 200
    run_jobs(app)

    payment = db.session.get(Payment, payment.id)
    assert (payment.status, payment.amount_refunded) == ("partially_refunded", 25000)
    assert db.session.get(type(booking), booking.id).status == "confirmed"
    assert [d.status for d in db.session.scalars(select(Dispute))] == ["won"]
    assert count(WebhookEvent, WebhookEvent.status.in_(["received", "failed"])) == 0


# Forged, stale, malformed, oversized.

@pytest.fixture
def paid_event(app):
    payment = card_payment(card_booking())
    return payment, json.dumps(event("payment_intent.succeeded", succeeded(intent_for(payment))))


def assert_nothing_applied(payment: Payment) -> None:
    db.session.rollback()
    assert count(WebhookEvent) == 0
    assert db.session.get(Payment, payment.id).status == "pending"


def test_a_forged_signature_is_refused_and_logged_with_the_source_ip(app, client, paid_event):
    payment, payload = paid_event

    response = deliver(client, payload, secret="whsec_not_ours", **{"X-Forwarded-For": "203.0.113.9"})

    assert response.status_code == 400 and "does not match" in response.json["reason"]
    assert_nothing_applied(payment)
    [logged] = refusals()
    assert logged.context["source_ip"] == "203.0.113.9"


def test_a_body_changed_after_signing_is_refused(app, client, paid_event):
    payment, payload = paid_event
    header = signature(payload)

    response = client.post("/webhooks/stripe", data=payload.replace('"amount": ', '"amount": 1'),
                           headers={"Stripe-Signature": header})

    assert response.status_code == 400
    assert_nothing_applied(payment)


def test_a_missing_signature_is_refused(app, client, paid_event):
    payment, payload = paid_event
    assert client.post("/webhooks/stripe", data=payload).status_code == 400
    assert_nothing_applied(payment)


def test_a_signature_older_than_five_minutes_is_refused(app, client, paid_event):
    payment, payload = paid_event
    from time import time

    response = deliver(client, payload, timestamp=int(time()) - 301)

    assert response.status_code == 400 and "older than 5 minutes" in response.json["reason"]
    assert_nothing_applied(payment)


def test_a_signature_dated_more_than_five_minutes_ahead_is_refused(app, client, paid_event):
    payment, payload = paid_event
    from time import time

    response = deliver(client, payload, timestamp=int(time()) + 301)

    assert response.status_code == 400 and response.json["reason"] == "The signature is dated in the future."
    assert_nothing_applied(payment)
    assert deliver(client, payload, timestamp=int(time()) + 60).status_code == 200  # clocks a minute apart are fine


@pytest.mark.parametrize("body", ['{"id": "evt_1", "type": "payment_intent.succeeded"', '{"hello": "world"}',
                                  '[1, 2, 3]', '{"id": "evt_1", "type": "x", "data": {"object": "pi_1"}}'])
def test_a_signed_body_that_is_not_a_stripe_event_is_refused(app, client, paid_event, body):
    payment, _ = paid_event
    response = deliver(client, body)
    assert response.status_code == 400
    assert_nothing_applied(payment)


def test_a_body_that_is_not_utf8_is_refused(app, client, paid_event):
    payment, _ = paid_event
    response = client.post("/webhooks/stripe", data=b'{"id": "\xff"}', headers={"Stripe-Signature": "t=1,v1=00"})
    assert response.status_code == 400
    assert_nothing_applied(payment)


def test_a_body_over_one_megabyte_is_refused_with_413(app, client, paid_event):
    payment, payload = paid_event
    padded = payload[:-1] + ', "padding": "' + "x" * (1024 * 1024) + '"}'

    response = deliver(client, padded)

    assert response.status_code == 413
    assert_nothing_applied(payment)
    assert refusals()[0].context["status"] == 413


def test_during_a_rotation_either_secret_is_accepted(app, client, monkeypatch):
    monkeypatch.setitem(app.config, "STRIPE_WEBHOOK_SECRETS", ["whsec_old_one", WEBHOOK_SECRET])
    payment = card_payment(card_booking())
    processing = {**intent_for(payment), "status": "processing"}

    first = deliver(client, event("payment_intent.processing", processing), secret="whsec_old_one")
    payload = json.dumps(event("payment_intent.processing", processing))
    both = f"{signature(payload, 'whsec_unknown')},v1={signature(payload).split('v1=')[1]}"
    second = client.post("/webhooks/stripe", data=payload, headers={"Stripe-Signature": both})

    assert (first.status_code, second.status_code) == (200, 200)


# Lateness: objects we do not know yet, a stale payload, amounts that do not match.

def test_an_event_before_its_payment_is_recorded_is_retried_later_not_dropped(app, client):
    booking = card_booking()
    intent = succeeded(payment_intent(amount=booking.total_amount, currency="eur"))

    response = deliver(client, event("payment_intent.succeeded", intent, "evt_early"))
    run_jobs(app)

    row = stored("evt_early")
    assert response.status_code == 200 and (row.status, row.attempts) == ("received", 1)
    assert intent["id"] in row.last_error
    card_payment(booking, intent_id=intent["id"])
    assert webhook_log.retry_due_events(now=row.received_at + timedelta(seconds=30)) == []  # not due yet

    assert webhook_log.retry_due_events(now=row.received_at + timedelta(seconds=301)) == [row.id]

    assert stored("evt_early").status == "processed"
    assert db.session.get(type(booking), booking.id).status == "confirmed"


def test_an_event_that_never_finds_its_payment_fails_after_the_last_retry_and_shows_on_the_dashboard(
        app, client, login_as):
    deliver(client, event("charge.dispute.created", dispute(payment_intent="pi_never"), "evt_orphan"))
    run_jobs(app)
    received_at = stored("evt_orphan").received_at

    for delay in webhook_log.RETRY_AFTER[1:]:
        webhook_log.retry_due_events(now=received_at + timedelta(seconds=delay + 1))

    row = stored("evt_orphan")
    assert (row.status, row.attempts) == ("failed", webhook_log.MAX_ATTEMPTS)
    assert "a payment we do not know yet" in row.last_error
    page = login_as("admin").page("/webhooks/events?status=failed")
    assert "charge.dispute.created" in page.get_text()


def test_an_event_whose_job_was_lost_is_picked_up_by_the_sweep(app):
    booking = card_booking()
    payment = card_payment(booking)
    row = WebhookEvent(provider="stripe", event_id="evt_lost", type="payment_intent.succeeded", status="received",
                       payload=event("payment_intent.succeeded", succeeded(intent_for(payment))), attempts=0)
    db.session.add(row)
    db.session.commit()

    assert webhook_log.retry_due_events(now=row.received_at + timedelta(seconds=61)) == [row.id]
    assert stored("evt_lost").status == "processed"


def test_when_the_api_is_configured_the_current_object_is_applied_not_the_stale_payload(app, client, fake_stripe):
    booking = card_booking()
    payment = card_payment(booking)
    fake_stripe.add("payment_intents", succeeded(intent_for(payment)))

    deliver(client, event("payment_intent.processing", {**intent_for(payment), "status": "processing"}))
    run_jobs(app)

    assert db.session.get(Payment, payment.id).status == "succeeded"
    assert fake_stripe.calls("GET", f"/v1/payment_intents/{payment.provider_ref}")


def test_a_dispute_without_its_intent_is_placed_through_its_charge(app, client, fake_stripe):
    payment = card_payment(card_booking(status="confirmed"), status="succeeded")
    disputed = fake_stripe.add("disputes", dispute(charge="ch_disputed", payment_intent=None))
    fake_stripe.add("charges", charge(id="ch_disputed", payment_intent=payment.provider_ref))

    deliver(client, event("charge.dispute.created", disputed))
    run_jobs(app)

    assert db.session.scalar(select(Dispute)).payment_id == payment.id


def test_if_stripe_cannot_be_reached_the_event_waits_for_a_retry(app, client, fake_stripe):
    payment = card_payment(card_booking())
    fake_stripe.add("payment_intents", succeeded(intent_for(payment)))
    fake_stripe.fail_next("GET", "/v1/payment_intents/", status=503, times=3)

    deliver(client, event("payment_intent.succeeded", succeeded(intent_for(payment)), "evt_offline"))
    run_jobs(app)

    row = stored("evt_offline")
    assert row.status == "received" and "could not be reached" in row.last_error
    assert db.session.get(Payment, payment.id).status == "pending"


def test_an_amount_mismatch_fails_the_event_and_leaves_the_booking_unconfirmed(app, client):
    booking = card_booking()
    payment = card_payment(booking)

    deliver(client, event("payment_intent.succeeded", succeeded(intent_for(payment, amount=1000)), "evt_short"))
    run_jobs(app)

    row = stored("evt_short")
    assert row.status == "failed" and "amount" in row.last_error
    assert db.session.get(type(booking), booking.id).status == "pending_payment"
    flush_deferred()
    assert count(ErrorGroup, ErrorGroup.category == "PAYMENT", ErrorGroup.severity == "HIGH") == 1


def test_money_for_a_slot_that_went_to_someone_else_fails_the_event_for_staff(app, client):
    booking = card_booking()
    payment = card_payment(booking)
    booking.status = "quote"
    factories.booking(booking.item, starts_at=booking.starts_at, days=1, status="confirmed")
    db.session.commit()

    deliver(client, event("payment_intent.succeeded", succeeded(intent_for(payment)), "evt_taken"))
    run_jobs(app)

    row = stored("evt_taken")
    assert row.status == "failed" and "slot is taken" in row.last_error
    assert db.session.get(Payment, payment.id).status == "succeeded"


def test_a_refund_made_in_stripes_dashboard_is_noted_without_a_refund_row(app, client):
    payment = card_payment(card_booking(status="confirmed"), status="succeeded")

    deliver(client, event("refund.created", refund(payment_intent=payment.provider_ref, status="succeeded"), "evt_r"))
    run_jobs(app)

    assert stored("evt_r").status == "processed" and count(Refund) == 0


def test_a_failed_event_can_be_given_a_fresh_set_of_attempts(app, client):
    booking = card_booking()
    intent = succeeded(payment_intent(amount=booking.total_amount, currency="eur"))
    deliver(client, event("payment_intent.succeeded", intent, "evt_retry"))
    run_jobs(app)
    row = stored("evt_retry")
    row.status = "failed"
    db.session.commit()
    card_payment(booking, intent_id=intent["id"])

    webhook_log.reopen_event(row.id)
    assert webhook_log.process_event(row.id) == "processed"

    assert db.session.get(type(booking), booking.id).status == "confirmed"


def test_the_periodic_jobs_run_by_their_dotted_names(app):
    from rq.utils import import_attribute

    assert import_attribute("midas.tasks.webhooks.retry_due_stripe_events")() == 0
    assert import_attribute("midas.tasks.deposits.release_returned_deposits")() == 0
