"""A flood: 2,000 signed Stripe deliveries (20% duplicates, random order) posted concurrently to gunicorn.

The server is the production shape (gunicorn, several worker processes with threads, PostgreSQL) with
jobs in-process, so events about one payment are applied concurrently by different processes. The
records must come out exactly as the events say: one event row per event, each payment and dispute
in its final state, every booking confirmed once, one receipt per payment.
"""

from __future__ import annotations

import json
import os
import random
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
import requests
from sqlalchemy import func, select

from midas.config import ROOT
from midas.extensions import db
from midas.models import AuditEntry, Booking, Dispute, Notification, Payment, WebhookEvent, utcnow
from tests import factories
from tests.fakes.stripe_api import (
    WEBHOOK_SECRET,
    authorized,
    card_payment,
    charge,
    declined,
    dispute,
    event,
    intent_for,
    signature,
    succeeded,
)

pytestmark = [pytest.mark.reliability, pytest.mark.postgres_only]
BOOKINGS = 200
TOTAL_DELIVERIES = 2000
REFUNDED = 1000


@pytest.fixture
def postgres_url(app) -> str:
    if db.engine.dialect.name != "postgresql":
        pytest.skip("the flood runs on PostgreSQL (TEST_DATABASE_URL)")
    return os.environ["TEST_DATABASE_URL"]


@pytest.fixture
def gunicorn(postgres_url, tmp_path):
    """gunicorn on 127.0.0.1 with 4 workers x 4 threads, jobs in-process, pointed at the test database."""
    port = _free_port()
    env = {key: value for key, value in os.environ.items() if not key.startswith(("REDIS_URL", "STRIPE_"))}
    env.update({"DATABASE_URL": postgres_url, "SECRET_KEY": "flood-test", "MIDAS_ENV": "testing",
                "STRIPE_WEBHOOK_SECRET": WEBHOOK_SECRET, "WEB_CONCURRENCY": "4", "GUNICORN_THREADS": "4",
                "LOG_LEVEL": "WARNING", "PROXY_HOPS": "0"})
    log = tmp_path / "gunicorn.log"
    with log.open("wb") as output:
        server = subprocess.Popen([sys.executable, "-m", "gunicorn", "--bind", f"127.0.0.1:{port}", "wsgi:app"],
                                  cwd=ROOT, env=env, stdout=output, stderr=output)
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_until_up(base, server, log)
        yield base
    finally:
        server.terminate()
        server.wait(timeout=30)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _wait_until_up(base: str, server: subprocess.Popen, log) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if server.poll() is not None:
            pytest.fail(f"gunicorn exited: {log.read_text()[-2000:]}")
        try:
            if requests.get(f"{base}/healthz", timeout=5).ok:
                return
        except requests.RequestException:
            time.sleep(0.2)
    pytest.fail(f"gunicorn did not start within 60 s: {log.read_text()[-2000:]}")


def _life(payment: Payment, deposit: Payment, disputed: bool) -> list[dict]:
    """Everything Stripe says about one booking: a decline, the payment, a refund, a deposit hold, noise."""
    intent = intent_for(payment)
    events = [
        event("payment_intent.payment_failed", declined(intent)),
        event("payment_intent.processing", {**intent, "status": "processing"}),
        event("payment_intent.succeeded", succeeded(intent)),
        event("charge.succeeded", charge(payment_intent=payment.provider_ref)),
        event("charge.refunded", charge(payment_intent=payment.provider_ref, amount=payment.amount,
                                        amount_refunded=REFUNDED)),
        event("payment_intent.amount_capturable_updated", authorized(intent_for(deposit))),
        event("customer.updated", {"id": f"cus_{payment.id}", "object": "customer"}),
    ]
    if disputed:
        shape = dispute(payment_intent=payment.provider_ref, amount=payment.amount, currency="eur")
        events += [event("charge.dispute.created", {**shape, "status": "needs_response"}),
                   event("charge.dispute.closed", {**shape, "status": "won"})]
    return events


def _deliveries(rng: random.Random) -> tuple[list[dict], int]:
    """The unique events of every booking, plus duplicates up to 2,000 deliveries, shuffled."""
    location = factories.location("MCM", name="Monaco Port Hercule", city="Monaco", country="MC",
                                  timezone="Europe/Monaco", currency="EUR")
    item = factories.item(location, name="Riva Aquarama", category="yacht", daily_rate=425000)
    unique = []
    for n in range(BOOKINGS):
        booking = factories.booking(item, starts_at=utcnow() + timedelta(days=10 + 2 * n), days=1,
                                    status="pending_payment")
        unique += _life(card_payment(booking), card_payment(booking, kind="deposit"), disputed=n % 4 == 0)
    deliveries = unique + [rng.choice(unique) for _ in range(TOTAL_DELIVERIES - len(unique))]
    rng.shuffle(deliveries)
    return deliveries, len(unique)


def _post(base: str, envelope: dict) -> int:
    payload = json.dumps(envelope)
    response = requests.post(f"{base}/webhooks/stripe", data=payload, timeout=30,
                             headers={"Stripe-Signature": signature(payload), "Content-Type": "application/json"})
    return response.status_code


def count(model, *where) -> int:
    return db.session.scalar(select(func.count()).select_from(model).where(*where))


def test_two_thousand_concurrent_deliveries_with_duplicates_end_with_exactly_the_expected_records(app, gunicorn):
    deliveries, unique = _deliveries(random.Random(7))
    assert len(deliveries) == TOTAL_DELIVERIES and unique == BOOKINGS * 7 + BOOKINGS // 4 * 2
    db.session.close()

    with ThreadPoolExecutor(max_workers=24) as pool:
        statuses = list(pool.map(lambda envelope: _post(gunicorn, envelope), deliveries))

    assert statuses.count(200) == TOTAL_DELIVERIES, sorted(set(statuses))
    assert count(WebhookEvent) == unique
    assert count(WebhookEvent, WebhookEvent.status == "ignored") == BOOKINGS * 2  # charge.succeeded, customer.*
    assert count(WebhookEvent, WebhookEvent.status == "processed") == unique - BOOKINGS * 2
    charges = list(db.session.scalars(select(Payment).where(Payment.kind == "charge")))
    assert {(p.status, p.amount_captured == p.amount, p.amount_refunded) for p in charges} == {
        ("succeeded", True, REFUNDED)}
    assert {p.status for p in db.session.scalars(select(Payment).where(Payment.kind == "deposit"))} == {"authorized"}
    assert {b.status for b in db.session.scalars(select(Booking))} == {"confirmed"}
    assert count(AuditEntry, AuditEntry.action == "booking.confirmed") == BOOKINGS
    assert count(AuditEntry, AuditEntry.action == "payment.succeeded") == BOOKINGS
    assert count(Notification, Notification.template == "payment_receipt") == BOOKINGS
    assert count(Notification, Notification.template == "booking_confirmation",
                 Notification.channel == "email") == BOOKINGS
    assert [d.status for d in db.session.scalars(select(Dispute))] == ["won"] * (BOOKINGS // 4)
