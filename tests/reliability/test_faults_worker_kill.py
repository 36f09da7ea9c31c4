"""A real `flask --app wsgi worker` is SIGKILLed (with its work horse) in the middle of each kind of job.

The provider is made slow so the kill lands mid-job: the SMTP server holds RCPT TO, the fake Stripe
holds its answer to the re-fetch or the listing. A new worker then starts, and the recovery a
production deployment runs (the outbox sweep, the Stripe event retry, the next scheduled run) finishes
the work exactly once: one message at the SMTP server, one applied payment, one saved report.
"""

from __future__ import annotations

import time
from datetime import timedelta

import sqlalchemy as sa
from sqlalchemy import func, select

from midas.extensions import db
from midas.models import AuditEntry, Booking, Notification, Payment, Setting, WebhookEvent, utcnow
from midas.services import booking_states, outbox, reconciliation, webhook_log
from midas.services.outbox import META, STUCK_AFTER
from midas.tasks import queue
from midas.tasks.reconciliation import RECONCILE_DAILY
from tests.conftest import make_staff
from tests.fakes.stripe_api import (
    PUBLISHABLE_KEY,
    SECRET_KEY,
    WEBHOOK_SECRET,
    card_booking,
    card_payment,
    deliver,
    event,
    intent_for,
    payment_intent,
    succeeded,
)
from tests.reliability.processes import app_env, flask, start_worker, wait_for

SLOW = 5.0  # seconds the fake Stripe holds an answer: inside the SDK's read timeout, long enough to kill


def _env(postgres_url, redis, smtp=None, stripe=None) -> dict[str, str]:
    settings = {}
    if smtp:
        settings.update(SMTP_URL=smtp.url, EMAIL_PROVIDERS="smtp")
    if stripe:
        settings.update(STRIPE_SECRET_KEY=SECRET_KEY, STRIPE_PUBLISHABLE_KEY=PUBLISHABLE_KEY,
                        STRIPE_API_BASE=stripe.url, STRIPE_WEBHOOK_SECRET=WEBHOOK_SECRET)
    return app_env(postgres_url, redis.url, **settings)


def _count(model, *where) -> int:
    db.session.rollback()
    return db.session.scalar(select(func.count()).select_from(model).where(*where))


def _let_stuck_rows_age() -> None:
    """Ten minutes pass for the rows a dead worker left "sending" (the sweep never races a live sender)."""
    past = utcnow() - STUCK_AFTER - timedelta(minutes=1)
    for row in db.session.scalars(select(Notification).where(Notification.status == "sending")):
        meta = {**(row.context or {}).get(META, {}), "claimed_at": past.isoformat()}
        row.context, row.created_at = {**row.context, META: meta}, past
    db.session.commit()


def test_worker_killed_while_sending_an_email_sends_it_once(
        app, postgres_url, private_redis, slow_smtp, processes, tmp_path, reliability_report):
    env = _env(postgres_url, private_redis, smtp=slow_smtp)
    admin = make_staff("admin", email="admin-kill@midas.test")
    booking = card_booking(status="quote")
    slow_smtp.mailbox.gate.clear()
    worker = start_worker(env, tmp_path / "worker-1.log")
    processes.append(worker)

    booking_states.confirm(admin, booking.reference)  # its confirmation is enqueued after commit
    wait_for(slow_smtp.mailbox.arrived.is_set, 60, "the worker to be mid-conversation with the SMTP server")
    worker.kill()
    reliability_report.add("faults", 1)
    [row] = db.session.scalars(select(Notification).where(Notification.channel == "email"))
    db.session.refresh(row)
    assert row.status == "sending" and slow_smtp.mailbox.messages == []

    slow_smtp.mailbox.gate.set()
    processes.append(start_worker(env, tmp_path / "worker-2.log"))
    _let_stuck_rows_age()
    assert "1 stuck" in flask(env, "outbox", "sweep")
    wait_for(lambda: slow_smtp.tagged(), 60, "the email at the SMTP server")
    assert outbox.sweep().unstuck == []  # the periodic sweep, later: nothing left to send
    time.sleep(1)

    assert slow_smtp.tagged() == [f"{row.id}-booking_confirmation"]
    db.session.refresh(row)
    assert (row.status, row.attempts) == ("sent", 2)
    reliability_report.add("events", 1)


def test_worker_killed_after_twilio_took_a_text_does_not_text_twice(
        app, postgres_url, private_redis, fake_twilio, processes, tmp_path, reliability_report):
    env = {**_env(postgres_url, private_redis), **fake_twilio.env()}
    admin = make_staff("admin", email="admin-sms@midas.test")
    booking = card_booking(status="quote")
    booking.customer.phone, booking.customer.sms_opt_in = "+447911123456", True
    db.session.commit()
    fake_twilio.gate.clear()
    worker = start_worker(env, tmp_path / "worker-1.log")
    processes.append(worker)

    booking_states.confirm(admin, booking.reference)
    wait_for(fake_twilio.took_one.is_set, 60, "Twilio to take the text (its answer held back)")
    worker.kill()  # Twilio has the text; Midas never heard back
    reliability_report.add("faults", 1)
    [row] = db.session.scalars(select(Notification).where(Notification.channel == "sms"))
    db.session.refresh(row)
    assert row.status == "sending"

    fake_twilio.gate.set()
    processes.append(start_worker(env, tmp_path / "worker-2.log"))
    _let_stuck_rows_age()
    assert outbox.sweep().unstuck == [row.id]  # what the periodic sweep job runs
    wait_for(lambda: _count(Notification, Notification.channel == "sms", Notification.status == "sent"), 60,
             "the text to be recorded as sent")

    db.session.refresh(row)
    assert (fake_twilio.posts, len(fake_twilio.texts)) == (1, 1)
    assert (row.status, row.provider, row.provider_message_id) == ("sent", "twilio", fake_twilio.texts[0]["sid"])
    reliability_report.add("events", 1)


def test_worker_killed_while_processing_a_webhook_applies_it_once(
        app, client, postgres_url, private_redis, slow_smtp, fake_stripe, processes, tmp_path, reliability_report):
    env = _env(postgres_url, private_redis, smtp=slow_smtp, stripe=fake_stripe)
    booking = card_booking(status="pending_payment")
    payment = card_payment(booking)
    intent = fake_stripe.add("payment_intents", succeeded(intent_for(payment)))
    fake_stripe.slow_next("GET", f"/v1/payment_intents/{intent['id']}", SLOW)
    worker = start_worker(env, tmp_path / "worker-1.log")
    processes.append(worker)

    assert deliver(client, event("payment_intent.succeeded", intent)).status_code == 200
    wait_for(lambda: fake_stripe.calls("GET", intent["id"]), 60, "the worker to re-fetch the intent from Stripe")
    worker.kill()
    reliability_report.add("faults", 1)
    assert _count(WebhookEvent, WebhookEvent.status == "received", WebhookEvent.attempts == 1) == 1
    assert db.session.get(Booking, booking.id).status == "pending_payment"

    processes.append(start_worker(env, tmp_path / "worker-2.log"))
    # The second attempt is due five minutes after the first (RETRY_AFTER): let them pass.
    db.session.execute(sa.update(WebhookEvent).values(received_at=utcnow() - timedelta(minutes=6)))
    db.session.commit()
    flask(env, "schedule", "run", "retry_stripe_events")
    assert webhook_log.retry_due_events() == []  # the next periodic run finds nothing left to do
    wait_for(lambda: len(slow_smtp.tagged()) >= 2, 60, "the receipt and the confirmation by email")
    time.sleep(1)

    assert _count(WebhookEvent, WebhookEvent.status == "processed") == 1
    assert db.session.get(Payment, payment.id).status == "succeeded"
    assert db.session.get(Booking, booking.id).status == "confirmed"
    assert _count(AuditEntry, AuditEntry.action == "payment.succeeded") == 1
    assert _count(AuditEntry, AuditEntry.action == "booking.confirmed") == 1
    assert sorted(tag.split("-", 1)[1] for tag in slow_smtp.tagged()) == ["booking_confirmation", "payment_receipt"]
    reliability_report.add("events", 1)


def test_worker_killed_while_reconciling_saves_one_report(
        app, postgres_url, private_redis, fake_stripe, processes, tmp_path, reliability_report):
    env = _env(postgres_url, private_redis, stripe=fake_stripe)
    booking = card_booking(status="confirmed")
    payment = card_payment(booking, status="succeeded")
    fake_stripe.add("payment_intents", succeeded(intent_for(payment)))
    stranger = fake_stripe.add("payment_intents", payment_intent(amount=9900, currency="eur", status="succeeded"))
    fake_stripe.slow_next("GET", "/v1/payment_intents", SLOW)
    worker = start_worker(env, tmp_path / "worker-1.log")
    processes.append(worker)

    queue.enqueue(RECONCILE_DAILY, queue="low", job_timeout=120)
    wait_for(lambda: fake_stripe.calls("GET", "/v1/payment_intents"), 60, "the worker to list Stripe's intents")
    worker.kill()
    reliability_report.add("faults", 1)
    assert _count(Setting, Setting.key == reconciliation.LAST_REPORT) == 0

    processes.append(start_worker(env, tmp_path / "worker-2.log"))
    queue.enqueue(RECONCILE_DAILY, queue="low", job_timeout=120)  # the next scheduled run
    wait_for(lambda: _count(Setting, Setting.key == reconciliation.LAST_REPORT), 60, "the saved report")

    setting = db.session.get(Setting, reconciliation.LAST_REPORT)
    report = reconciliation.Report.from_dict(setting.value)
    assert setting.version == 1 and report.intents_checked == 2
    assert [d.provider_id for d in report.differences] == [stranger["id"]]
    reliability_report.add("events", 1)
