"""Redis crashes while gunicorn serves: a booking confirmed, a Stripe webhook, a booking change, a checkout.

Every request must succeed for its user and commit its records; the messages they caused wait in the
outbox. When Redis is back, a real worker runs and `flask --app wsgi outbox sweep` re-dispatches them:
each email reaches the SMTP server exactly once, and a second sweep sends nothing more.
"""

from __future__ import annotations

import json
import time
from datetime import timedelta

import sqlalchemy as sa
from rq import Worker
from sqlalchemy import select

from midas.extensions import db
from midas.models import Booking, Notification, Payment, WebhookEvent, utcnow
from midas.services import outbox, webhook_log
from midas.tasks import queue, schedule
from tests import factories
from tests.conftest import PASSWORD, make_staff
from tests.fakes.stripe_api import (
    PUBLISHABLE_KEY,
    SECRET_KEY,
    WEBHOOK_SECRET,
    card_booking,
    card_payment,
    event,
    intent_for,
    signature,
    succeeded,
)
from tests.reliability.processes import Browser, app_env, flask, start_gunicorn, start_worker, wait_for


def _stripe_env(fake) -> dict[str, str]:
    return {"STRIPE_SECRET_KEY": SECRET_KEY, "STRIPE_PUBLISHABLE_KEY": PUBLISHABLE_KEY, "STRIPE_API_BASE": fake.url,
            "STRIPE_WEBHOOK_SECRET": WEBHOOK_SECRET}


def _backdate(minutes: int) -> None:
    """Let time pass for what is waiting: the sweep re-dispatches only rows left pending over a minute."""
    past = utcnow() - timedelta(minutes=minutes)
    db.session.execute(sa.update(Notification).values(created_at=past))
    db.session.execute(sa.update(WebhookEvent).values(received_at=past))
    db.session.commit()


def test_redis_down_during_confirm_webhook_change_and_checkout_then_each_email_once(
        app, postgres_url, private_redis, slow_smtp, fake_stripe, processes, tmp_path, reliability_report):
    admin = make_staff("admin", email="admin-redis@midas.test")
    quote = card_booking(status="quote", starts_in=timedelta(days=20))
    paying = card_booking(status="pending_payment", starts_in=timedelta(days=30), item=quote.item)
    payment = card_payment(paying)
    fake_stripe.add("payment_intents", succeeded(intent_for(payment)))
    moving = factories.booking(quote.item, starts_at=utcnow() + timedelta(days=40), days=2)
    checkout = card_booking(status="pending_payment", starts_in=timedelta(days=50), item=quote.item)
    refs = {b.id: b.reference for b in (quote, paying, moving, checkout)}
    admin_email, item_id, token, moved_start = admin.email, quote.item_id, checkout.checkout_token, moving.starts_at
    envelope = json.dumps(event("payment_intent.succeeded", succeeded(intent_for(payment))))
    db.session.commit()

    env = app_env(postgres_url, private_redis.url, SMTP_URL=slow_smtp.url, EMAIL_PROVIDERS="smtp",
                  **_stripe_env(fake_stripe))
    server, base = start_gunicorn(env, tmp_path / "gunicorn.log")
    processes.append(server)
    browser = Browser(base)
    browser.login(admin_email, PASSWORD)

    private_redis.crash()
    reliability_report.add("faults", 1)
    Browser(base).login(admin_email, PASSWORD)  # signing in (rate limited through Redis) still works

    confirmed = browser.post(f"/bookings/{refs[quote.id]}/confirm", csrf_from=f"/bookings/{refs[quote.id]}")
    assert confirmed.status_code == 302, confirmed.text[:1000]
    page = browser.session.get(base + confirmed.headers["Location"], timeout=30)
    assert page.status_code == 200 and "is confirmed" in page.text

    hook = browser.session.post(f"{base}/webhooks/stripe", data=envelope, timeout=30, headers={
        "Stripe-Signature": signature(envelope), "Content-Type": "application/json"})
    assert hook.status_code == 200, hook.text[:1000]

    starts = moved_start + timedelta(days=1)
    changed = browser.post(f"/bookings/{refs[moving.id]}/change", {
        "item_id": item_id, "starts_at": starts.strftime("%Y-%m-%dT10:00"),
        "ends_at": (starts + timedelta(days=3)).strftime("%Y-%m-%dT10:00")}, csrf_from=f"/bookings/{refs[moving.id]}")
    assert changed.status_code == 302, changed.text[:1000]

    customer = Browser(base)
    csrf = customer.csrf(f"/pay/{token}")
    intent = customer.session.post(f"{base}/pay/{token}/intent", headers={"X-CSRFToken": csrf}, timeout=30)
    assert intent.status_code == 200, intent.text[:1000]
    assert intent.json()["client_secret"]
    reliability_report.add("events", 4)

    # Every change committed while Redis was down.
    db.session.rollback()
    assert db.session.get(Booking, quote.id).status == "confirmed"
    assert db.session.get(WebhookEvent, db.session.scalar(select(WebhookEvent.id))) is not None
    assert db.session.get(Booking, moving.id).ends_at - db.session.get(Booking, moving.id).starts_at == timedelta(
        days=3)
    assert db.session.scalar(select(Payment).where(Payment.booking_id == checkout.id)).provider_ref == \
        intent.json()["payment_intent"]
    assert slow_smtp.mailbox.messages == []

    # Redis comes back; a worker starts; the outbox sweep and the event retry run as the scheduler would.
    private_redis.start()
    processes.append(start_worker(env, tmp_path / "worker.log"))
    _backdate(minutes=2)
    assert len(webhook_log.retry_due_events()) == 1  # what the periodic retry job runs
    _backdate(minutes=2)  # what the event wrote waited too
    assert "Re-dispatched" in flask(env, "outbox", "sweep")

    db.session.rollback()
    assert db.session.get(Booking, paying.id).status == "confirmed"
    expected = sorted(f"{n.id}-{n.template}" for n in db.session.scalars(
        select(Notification).where(Notification.channel == "email", Notification.status != "cancelled")))
    assert {tag.split("-", 1)[1] for tag in expected} >= {"booking_confirmation", "payment_receipt"}
    wait_for(lambda: len(slow_smtp.tagged()) >= len(expected), 60, f"{len(expected)} emails at the SMTP server")

    assert outbox.sweep().requeued == []  # the periodic sweep, later: nothing is left to send
    time.sleep(1)
    assert sorted(slow_smtp.tagged()) == expected
    db.session.rollback()
    assert set(db.session.scalars(select(Notification.status).where(Notification.channel == "email",
                                                                    Notification.status != "cancelled"))) == {"sent"}
    reliability_report.add("events", len(expected))


def test_a_running_worker_books_the_periodic_jobs_again_after_redis_comes_back_empty(
        app, postgres_url, private_redis, processes, tmp_path, reliability_report):
    env = app_env(postgres_url, private_redis.url)
    worker = start_worker(env, tmp_path / "worker.log")
    processes.append(worker)
    wait_for(lambda: all(schedule.next_runs().values()), 60, "the worker to book every periodic job")
    wait_for(lambda: [w for w in Worker.all(connection=queue.redis()) if w.get_state() == "idle"], 60,
             "the worker to wait for jobs")

    private_redis.crash()  # no persistence: the schedule is gone with it
    time.sleep(1)
    private_redis.start()
    reliability_report.add("faults", 1)

    # The outbox sweep, hold expiry, event retries… must not stay off until someone restarts the worker.
    wait_for(lambda: all(schedule.next_runs().values()), 45, "the periodic jobs to be booked again")
    assert "booked again" in worker.log.read_text()  # they were gone, and the running worker noticed


def test_a_hung_redis_costs_a_request_a_moment_and_fails_none(
        app, postgres_url, private_redis, processes, tmp_path, reliability_report):
    admin = make_staff("admin", email="admin-hung@midas.test")
    checkout = card_booking(status="pending_payment")
    admin_email, reference = admin.email, checkout.reference
    db.session.commit()
    server, base = start_gunicorn(app_env(postgres_url, private_redis.url), tmp_path / "gunicorn.log")
    processes.append(server)

    private_redis.freeze()
    reliability_report.add("faults", 1)
    try:
        started = time.monotonic()
        staff = Browser(base)
        staff.login(admin_email, PASSWORD)  # the login rate limit lives in Redis
        page = staff.session.get(f"{base}/bookings/{reference}", timeout=60)
        elapsed = time.monotonic() - started
    finally:
        private_redis.thaw()
    assert page.status_code == 200 and reference in page.text
    assert elapsed < 8, f"a hung Redis held a login and a page for {elapsed:.1f} s"
