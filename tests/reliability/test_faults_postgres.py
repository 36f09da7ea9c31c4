"""PostgreSQL drops gunicorn's connections (pg_terminate_backend) while it serves staff and Stripe.

Only the backends of this test's gunicorn are terminated (they carry their own application_name, on
this test's own database). The next requests must succeed (the pool pings before use); a webhook cut
off mid-transaction is retried by Stripe and then applied once; nothing is left half-written.
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import requests
import sqlalchemy as sa
from sqlalchemy import func, select

from midas.extensions import db
from midas.models import AuditEntry, Booking, Notification, Payment, WebhookEvent, utcnow
from midas.services import webhook_log
from tests.conftest import PASSWORD, make_staff
from tests.fakes.stripe_api import WEBHOOK_SECRET, card_booking, card_payment, event, intent_for, signature, succeeded
from tests.reliability.processes import Browser, app_env, start_gunicorn, wait_for

APP_NAME = "midas_fault_gunicorn"
PAYMENTS = 6


def _terminate_gunicorn_backends() -> int:
    with db.engine.begin() as conn:
        return len(conn.execute(sa.text(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND application_name = :name AND pid <> pg_backend_pid()"),
            {"name": APP_NAME}).all())


def _count(model, *where) -> int:
    db.session.rollback()
    return db.session.scalar(select(func.count()).select_from(model).where(*where))


def _deliver(base: str, envelope: str) -> int:
    """Post like Stripe: a failed delivery (5xx, cut connection) is sent again, up to five times."""
    for _ in range(5):
        try:
            status = requests.post(f"{base}/webhooks/stripe", data=envelope, timeout=30, headers={
                "Stripe-Signature": signature(envelope), "Content-Type": "application/json"}).status_code
        except requests.RequestException:
            continue
        if status == 200:
            return status
    return status


def test_terminated_connections_do_not_fail_the_next_requests_or_half_write(
        app, postgres_url, processes, tmp_path, reliability_report):
    admin = make_staff("admin", email="admin-pg@midas.test")
    quote = card_booking(status="quote", starts_in=timedelta(days=5))
    paying = [card_booking(status="pending_payment", starts_in=timedelta(days=10 + 3 * n), item=quote.item)
              for n in range(PAYMENTS)]
    payments = [card_payment(b) for b in paying]
    late = card_booking(status="pending_payment", starts_in=timedelta(days=60), item=quote.item)
    late_envelope = json.dumps(event("payment_intent.succeeded", succeeded(intent_for(card_payment(late)))))
    envelopes = [json.dumps(event("payment_intent.succeeded", succeeded(intent_for(p)))) for p in payments]
    admin_email, reference = admin.email, quote.reference
    db.session.commit()

    url = f"{postgres_url}?application_name={APP_NAME}"
    server, base = start_gunicorn(app_env(url, None, STRIPE_WEBHOOK_SECRET=WEBHOOK_SECRET), tmp_path / "gunicorn.log")
    processes.append(server)
    staff = Browser(base)
    staff.login(admin_email, PASSWORD)
    with ThreadPoolExecutor(8) as pool:  # every gunicorn process holds pooled connections now
        assert set(pool.map(lambda _: staff.session.get(f"{base}/bookings", timeout=30).status_code, range(8))) == {200}

    killed = _terminate_gunicorn_backends()
    assert killed >= 2
    with ThreadPoolExecutor(8) as pool:
        assert set(pool.map(lambda _: staff.session.get(f"{base}/bookings", timeout=30).status_code, range(8))) == {200}
    _terminate_gunicorn_backends()
    confirmed = staff.post(f"/bookings/{reference}/confirm", csrf_from=f"/bookings/{reference}")
    assert confirmed.status_code == 302

    # Backends dropped again and again while the webhooks are being applied.
    with ThreadPoolExecutor(PAYMENTS) as pool:
        pending = [pool.submit(_deliver, base, envelope) for envelope in envelopes]
        for _ in range(4):
            killed += _terminate_gunicorn_backends()
        assert [f.result() for f in pending] == [200] * PAYMENTS
    reliability_report.add("faults", killed)
    reliability_report.add("events", PAYMENTS + 1)
    _run_the_event_retry()  # an event stored, then cut off while being applied, waits for this

    assert _count(Booking, Booking.status == "confirmed") == PAYMENTS + 1
    assert db.session.get(Booking, late.id).status == "pending_payment"
    assert _count(Payment, Payment.status == "succeeded", Payment.amount_captured == Payment.amount) == PAYMENTS
    assert _count(AuditEntry, AuditEntry.action == "payment.succeeded") == PAYMENTS
    assert _count(AuditEntry, AuditEntry.action == "booking.confirmed") == PAYMENTS + 1
    assert _count(Notification, Notification.template == "payment_receipt") == PAYMENTS
    assert staff.session.get(f"{base}/bookings", timeout=30).status_code == 200

    # A backend killed in the middle of applying a payment: held on a row lock, then terminated.
    reliability_report.add("faults", _cut_mid_transaction(base, late, late_envelope))
    assert _count(WebhookEvent, WebhookEvent.status == "received", WebhookEvent.last_error.is_not(None)) == 1
    assert _run_the_event_retry() == 1
    db.session.rollback()
    assert db.session.get(Booking, late.id).status == "confirmed"
    assert _count(Payment, Payment.status == "succeeded") == PAYMENTS + 1
    assert _count(AuditEntry, AuditEntry.action == "payment.succeeded") == PAYMENTS + 1
    assert _count(AuditEntry, AuditEntry.action == "booking.confirmed") == PAYMENTS + 2
    assert _count(Notification, Notification.template == "payment_receipt") == PAYMENTS + 1


def _run_the_event_retry() -> int:
    """What the periodic job does once the events' next attempt is due (here: at once)."""
    db.session.execute(sa.update(WebhookEvent).where(WebhookEvent.status == "received")
                       .values(received_at=utcnow() - timedelta(minutes=10)))
    db.session.commit()
    return len(webhook_log.retry_due_events())


def _cut_mid_transaction(base: str, booking: Booking, envelope: str) -> int:
    """Lock the booking's rows, let the webhook's transaction wait on them, terminate that backend."""
    with db.engine.connect() as holder:
        holder.execute(sa.text("SELECT 1 FROM bookings WHERE id = :id FOR UPDATE"), {"id": booking.id})
        holder.execute(sa.text("SELECT 1 FROM payments WHERE booking_id = :id FOR UPDATE"), {"id": booking.id})
        with ThreadPoolExecutor(1) as pool:
            delivered = pool.submit(requests.post, f"{base}/webhooks/stripe", data=envelope, timeout=60, headers={
                "Stripe-Signature": signature(envelope), "Content-Type": "application/json"})
            waiting = wait_for(lambda: _waiting_on_a_lock(holder), 30, "the webhook to wait on the booking's lock")
            holder.rollback()
            assert delivered.result().status_code == 200  # stored before it was applied; applying failed
    return waiting


def _waiting_on_a_lock(holder) -> int:
    with db.engine.begin() as conn:
        return len(conn.execute(sa.text(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() "
            "AND application_name = :name AND wait_event_type = 'Lock'"), {"name": APP_NAME}).all())
