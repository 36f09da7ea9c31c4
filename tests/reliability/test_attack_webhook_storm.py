"""A storm: 5,000 Stripe deliveries posted concurrently to gunicorn — duplicates, any order, 5% forged.

The server is the production shape (gunicorn, several worker processes with threads, PostgreSQL) with
jobs in-process, so events about one payment are applied concurrently by different processes. The
genuine deliveries are every event of 200 bookings plus duplicates, shuffled (a refund may arrive
before the payment it refunds). The forged 5% are what an attacker can send: a wrong signing secret,
a genuine signed delivery whose body was altered afterwards, and a correctly signed delivery replayed
after Stripe's 5-minute tolerance. Each forgery would change money if accepted (a full refund, a lost
dispute, a cancelled hold), and each reuses a genuine event id or claims a new one.

The records must come out exactly as the genuine events say: one event row per genuine event, each
payment and dispute in its final state, every booking confirmed once, one receipt per payment; no
forged event id stored, every forgery refused with a 400 and noticed on /errors.
"""

from __future__ import annotations

import json
import os
import random
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
import requests
from sqlalchemy import func, select

from midas.config import ROOT
from midas.extensions import db
from midas.models import (
    AuditEntry,
    Booking,
    Dispute,
    ErrorEvent,
    ErrorGroup,
    Notification,
    Payment,
    WebhookEvent,
    utcnow,
)
from tests import factories
from tests.fakes import paypal_api
from tests.fakes.paypal_api import ipn_body
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
fake_paypal, paypal_server = paypal_api.fake_paypal, paypal_api.paypal_server
BOOKINGS = 200
PAYPAL_BOOKINGS = 40  # paid by PayPal: each IPN delivered three times, plus forgeries
IPN_COPIES = 3
IPN_FORGED = 10
TOTAL_DELIVERIES = 5000
FORGED = TOTAL_DELIVERIES // 20  # 5%
REFUNDED = 1000
STOLEN_SECRET = "whsec_not_the_configured_one_0000000"
REPLAY_AGE = 10 * 60  # seconds: twice Stripe's tolerance


@pytest.fixture
def gunicorn(postgres_url, fake_paypal, paypal_server, tmp_path):
    """gunicorn on 127.0.0.1 with 4 workers x 4 threads, jobs in-process, pointed at the test database.

    IPN messages are verified against the local fake PayPal, which vouches only for what it "sent".
    """
    port = _free_port()
    env = {key: value for key, value in os.environ.items() if not key.startswith(("REDIS_URL", "STRIPE_", "PAYPAL_"))}
    env.update({"DATABASE_URL": postgres_url, "SECRET_KEY": "flood-test", "MIDAS_ENV": "testing",
                "STRIPE_WEBHOOK_SECRET": WEBHOOK_SECRET, "WEB_CONCURRENCY": "4", "GUNICORN_THREADS": "4",
                "LOG_LEVEL": "WARNING", "PROXY_HOPS": "0",
                "PAYPAL_CLIENT_ID": paypal_api.CLIENT_ID, "PAYPAL_CLIENT_SECRET": paypal_api.SECRET,
                "PAYPAL_RECEIVER_EMAIL": paypal_api.RECEIVER,
                "PAYPAL_API_BASE": paypal_server.url_for("").rstrip("/"),
                "PAYPAL_IPN_VERIFY_URL": paypal_server.url_for("/cgi-bin/webscr")})
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


def _genuine(rng: random.Random) -> tuple[list[dict], list[dict]]:
    """The unique events of every booking, and those plus duplicates up to the genuine share, shuffled."""
    location = factories.location("MCM", name="Monaco Port Hercule", city="Monaco", country="MC",
                                  timezone="Europe/Monaco", currency="EUR")
    item = factories.item(location, name="Riva Aquarama", category="yacht", daily_rate=425000)
    unique = []
    for n in range(BOOKINGS):
        booking = factories.booking(item, starts_at=utcnow() + timedelta(days=10 + 2 * n), days=1,
                                    status="pending_payment")
        unique += _life(card_payment(booking), card_payment(booking, kind="deposit"), disputed=n % 4 == 0)
    deliveries = unique + [rng.choice(unique) for _ in range(TOTAL_DELIVERIES - FORGED - len(unique))]
    rng.shuffle(deliveries)
    return unique, deliveries


def _ipn_deliveries(fake, rng: random.Random) -> tuple[list[bytes], list[int]]:
    """PayPal's completed-payment message for each PayPal booking, sent three times, and forgeries.

    Forgeries are what PayPal never sent: a genuine message with its amount lowered, and a refund of
    the whole payment. The verify endpoint answers INVALID for them.
    """
    item = db.session.scalar(select(Booking)).item
    bookings, genuine, forged = [], [], []
    for n in range(PAYPAL_BOOKINGS):
        booking = factories.booking(item, starts_at=utcnow() + timedelta(days=10 + 2 * (BOOKINGS + n)), days=1,
                                    status="pending_payment")
        booking.total_amount, booking.hold_expires_at = 425000, utcnow() + timedelta(minutes=30)
        reference = booking.reference
        fields = {"custom": reference, "invoice": reference, "item_name": f"Booking+{reference}",
                  "txn_id": f"9PP{n:014d}", "ipn_track_id": f"track{n:08d}"}
        genuine.append(fake.sent(ipn_body("web-accept-completed", **fields)))
        if n < IPN_FORGED // 2:
            forged.append(ipn_body("web-accept-completed", **{**fields, "mc_gross": "1.00"}))
            forged.append(ipn_body("web-accept-completed", **{**fields, "payment_status": "Refunded",
                                                              "mc_gross": "-4250.00"}))
        bookings.append(booking)
    db.session.commit()
    return [body for body in genuine for _ in range(IPN_COPIES)] + forged, [b.id for b in bookings]


def _post_ipn(base: str, body: bytes) -> int:
    if not hasattr(_connections, "session"):
        _connections.session = requests.Session()
    response = _connections.session.post(f"{base}/webhooks/paypal/ipn", data=body, timeout=30,
                                         headers={"Content-Type": "application/x-www-form-urlencoded"})
    return response.status_code


def _harmful(genuine: dict, rng: random.Random) -> dict:
    """What an attacker wants Stripe to have said about the payment or hold behind a genuine event."""
    obj = genuine["data"]["object"]
    intent = obj.get("payment_intent") or obj["id"]
    if not intent.startswith("pi_"):
        intent = f"pi_{obj['id']}"
    kind = rng.choice(["refund", "dispute", "cancel"])
    if kind == "refund":
        return event("charge.refunded", charge(payment_intent=intent, amount=1, amount_refunded=10**9))
    if kind == "dispute":
        return event("charge.dispute.closed", {**dispute(payment_intent=intent, amount=1, currency="eur"),
                                               "status": "lost"})
    return event("payment_intent.canceled", {**obj, "id": intent, "object": "payment_intent", "status": "canceled"})


def _forgeries(unique: list[dict], rng: random.Random) -> list[tuple[str, str]]:
    """(body, Stripe-Signature) pairs: a third each of wrong secret, tampered body, stale replay."""
    forged = []
    for n in range(FORGED):
        target = rng.choice([e for e in unique if e["data"]["object"].get("object") != "customer"] or unique)
        harmful = _harmful(target, rng)
        if n % 3 == 0:  # signed with a secret that is not ours
            body = json.dumps(harmful)
            forged.append((body, signature(body, secret=STOLEN_SECRET)))
        elif n % 3 == 1:  # a genuine signed delivery, its body swapped for the harmful one under the same id
            signed = signature(json.dumps(target))
            forged.append((json.dumps({**harmful, "id": target["id"]}), signed))
        else:  # a correctly signed delivery replayed long after it was sent
            body = json.dumps(harmful)
            forged.append((body, signature(body, timestamp=int(time.time()) - REPLAY_AGE)))
    return forged


_connections = threading.local()


def _post(base: str, body: str, signed: str | None = None) -> int:
    """One delivery, on a kept-alive connection of the sending thread (as Stripe's senders do)."""
    if not hasattr(_connections, "session"):
        _connections.session = requests.Session()
    response = _connections.session.post(f"{base}/webhooks/stripe", data=body, timeout=30,
                             headers={"Stripe-Signature": signed or signature(body),
                                      "Content-Type": "application/json"})
    return response.status_code


def count(model, *where) -> int:
    return db.session.scalar(select(func.count()).select_from(model).where(*where))


def test_five_thousand_concurrent_deliveries_with_duplicates_and_forgeries_end_exactly_as_stripe_said(
        app, gunicorn, fake_paypal, reliability_report):
    rng = random.Random(7)
    unique, genuine = _genuine(rng)
    forged = _forgeries(unique, rng)
    ipns, paypal_bookings = _ipn_deliveries(fake_paypal, rng)
    deliveries = [(json.dumps(envelope), None) for envelope in genuine] + forged
    assert len(deliveries) == TOTAL_DELIVERIES and len(unique) == BOOKINGS * 7 + BOOKINGS // 4 * 2
    work = [("stripe", delivery) for delivery in deliveries] + [("paypal", body) for body in ipns]
    rng.shuffle(work)  # forgeries arrive among the genuine ones, before and after what they imitate
    db.session.close()

    def send(job):
        provider, delivery = job
        return _post(gunicorn, *delivery) if provider == "stripe" else _post_ipn(gunicorn, delivery)

    with ThreadPoolExecutor(max_workers=24) as pool:
        answers = list(pool.map(send, work))
    reliability_report.add("events", len(work))
    reliability_report.add("bad_inputs", FORGED + IPN_FORGED)
    statuses = [status for (provider, _), status in zip(work, answers, strict=True) if provider == "stripe"]
    deliveries = [delivery for provider, delivery in work if provider == "stripe"]
    assert [status for (provider, _), status in zip(work, answers, strict=True) if provider == "paypal"] == [200] * (
        PAYPAL_BOOKINGS * IPN_COPIES + IPN_FORGED)  # stored for verification, then judged

    is_forged = [signed is not None for _, signed in deliveries]
    assert [s for s, f in zip(statuses, is_forged, strict=True) if not f] == [200] * (TOTAL_DELIVERIES - FORGED)
    assert [s for s, f in zip(statuses, is_forged, strict=True) if f] == [400] * FORGED
    stored = set(db.session.scalars(select(WebhookEvent.event_id).where(WebhookEvent.provider == "stripe")))
    assert stored == {e["id"] for e in unique}  # no forged id; a tampered body never took a genuine id's place
    assert all(_comparable(e.payload) == _comparable(sent) for e, sent in _stored_against(unique))
    stripe_events = WebhookEvent.provider == "stripe"
    assert count(WebhookEvent, stripe_events, WebhookEvent.status == "ignored") == BOOKINGS * 2  # charge.succeeded…
    assert count(WebhookEvent, stripe_events, WebhookEvent.status == "processed") == len(unique) - BOOKINGS * 2
    charges = list(db.session.scalars(select(Payment).where(Payment.kind == "charge", Payment.provider == "stripe")))
    assert {(p.status, p.amount_captured == p.amount, p.amount_refunded) for p in charges} == {
        ("partially_refunded", True, REFUNDED)}  # a refund of part of it, applied once
    assert {p.status for p in db.session.scalars(select(Payment).where(Payment.kind == "deposit"))} == {"authorized"}
    assert {b.status for b in db.session.scalars(select(Booking))} == {"confirmed"}
    assert count(AuditEntry, AuditEntry.action == "booking.confirmed") == BOOKINGS + PAYPAL_BOOKINGS
    assert count(AuditEntry, AuditEntry.action == "payment.succeeded") == BOOKINGS  # the Stripe path audits it
    assert count(Notification, Notification.template == "payment_receipt") == BOOKINGS + PAYPAL_BOOKINGS
    assert count(Notification, Notification.template == "booking_confirmation",
                 Notification.channel == "email") == BOOKINGS + PAYPAL_BOOKINGS
    assert [d.status for d in db.session.scalars(select(Dispute))] == ["won"] * (BOOKINGS // 4)
    paypal = list(db.session.scalars(select(Payment).where(Payment.provider == "paypal")))
    # Once each, at the genuine amount, none refunded by the forged refund message.
    assert sorted((p.booking_id, p.status, p.amount) for p in paypal) == sorted(
        (booking_id, "succeeded", 425000) for booking_id in paypal_bookings)
    paypal_events = list(db.session.scalars(select(WebhookEvent).where(WebhookEvent.provider == "paypal")))
    assert sorted(e.status for e in paypal_events) == ["ignored"] * IPN_FORGED + ["processed"] * PAYPAL_BOOKINGS
    refused = count(ErrorEvent, ErrorEvent.group_id.in_(
        select(ErrorGroup.id).where(ErrorGroup.message.startswith("Stripe webhook refused"))))
    assert refused == FORGED  # every forgery was noticed on /errors, not just dropped


def _comparable(envelope: dict) -> dict:
    """The event without the object's client secret, which Midas stores redacted."""
    obj = {key: value for key, value in envelope["data"]["object"].items() if key != "client_secret"}
    return {**envelope, "data": {**envelope["data"], "object": obj}}


def _stored_against(unique: list[dict]):
    by_id = {e["id"]: e for e in unique}
    for stored in db.session.scalars(select(WebhookEvent).where(WebhookEvent.provider == "stripe")):
        yield stored, by_id[stored.event_id]
