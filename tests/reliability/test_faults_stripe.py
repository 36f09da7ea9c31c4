"""Stripe answers 500s and times out while a PaymentIntent or a refund is created.

Through gunicorn (real processes, the SDK's own retries with production timeouts) and in-process (a
1-second timeout, so a late answer is cheap to provoke). Every retry carries the same Idempotency-Key
(checked at the fake, which replays its first answer to a key it executed), the customer or staff
member reads a calm sentence, and exactly one intent or refund exists at Stripe and in our records.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from midas.extensions import db
from midas.models import Payment, Refund
from midas.services import refunds
from tests.conftest import PASSWORD, make_staff
from tests.fakes import stripe_api
from tests.fakes.stripe_api import PUBLISHABLE_KEY, SECRET_KEY, WEBHOOK_SECRET, card_booking
from tests.reliability.processes import Browser, app_env, start_gunicorn
from tests.services.test_refunds import FakeStripeWithRefunds, paid_booking


@pytest.fixture
def fake_stripe(app, stripe_server, monkeypatch):
    """The shared fake Stripe with refunds, the in-process app pointed at it with a 1-second timeout."""
    stripe_server.clear()
    fake = FakeStripeWithRefunds(stripe_server)
    stripe_server.expect_request(stripe_api.re.compile(".*")).respond_with_handler(fake.handle)
    for key, value in {"STRIPE_SECRET_KEY": SECRET_KEY, "STRIPE_PUBLISHABLE_KEY": PUBLISHABLE_KEY,
                       "STRIPE_API_BASE": fake.url, "STRIPE_TIMEOUT_SECONDS": 1.0}.items():
        monkeypatch.setitem(app.config, key, value)
    monkeypatch.setattr("stripe._http_client.HTTPClient.INITIAL_DELAY", 0.01)
    monkeypatch.setattr("stripe._http_client.HTTPClient.MAX_DELAY", 0.05)
    yield fake
    stripe_server.clear()


@pytest.fixture
def gunicorn(postgres_url, fake_stripe, processes, tmp_path) -> str:
    env = app_env(postgres_url, None, STRIPE_SECRET_KEY=SECRET_KEY, STRIPE_PUBLISHABLE_KEY=PUBLISHABLE_KEY,
                  STRIPE_API_BASE=fake_stripe.url, STRIPE_WEBHOOK_SECRET=WEBHOOK_SECRET)
    server, base = start_gunicorn(env, tmp_path / "gunicorn.log")
    processes.append(server)
    return base


def _pay(base: str, token: str):
    customer = Browser(base)
    csrf = customer.csrf(f"/pay/{token}")
    return customer.session.post(f"{base}/pay/{token}/intent", headers={"X-CSRFToken": csrf}, timeout=60)


def _one_key(calls) -> str:
    keys = {call.idempotency_key for call in calls}
    assert len(keys) == 1 and None not in keys, keys
    return keys.pop()


def test_checkout_survives_stripe_500s_and_an_outage_with_one_intent(
        app, fake_stripe, gunicorn, reliability_report):
    flaky, down = card_booking(), card_booking(starts_in=timedelta(days=30))
    flaky_token, down_token = flaky.checkout_token, down.checkout_token
    db.session.commit()

    fake_stripe.fail_next("POST", "/v1/payment_intents", status=500, times=2)
    paid = _pay(gunicorn, flaky_token)
    assert paid.status_code == 200 and paid.json()["client_secret"]
    assert len(fake_stripe.calls("POST")) == 3 and len(fake_stripe.intents) == 1
    _one_key(fake_stripe.calls("POST"))

    fake_stripe.fail_next("POST", "/v1/payment_intents", status=500, times=3)  # all the SDK's tries fail
    refused = _pay(gunicorn, down_token)
    assert refused.status_code == 502 and refused.headers["Content-Type"].startswith("application/json")
    reason = refused.json()["reason"]
    assert "try again" in reason.lower() and "500" not in reason and "Traceback" not in refused.text
    again = _pay(gunicorn, down_token)  # the customer presses Pay again
    assert again.status_code == 200
    assert len(fake_stripe.intents) == 2
    down_calls = [c for c in fake_stripe.calls("POST") if c.params["metadata"]["booking_reference"] == down.reference]
    assert len(down_calls) == 4
    _one_key(down_calls)
    db.session.rollback()
    assert db.session.scalar(select(func.count()).select_from(Payment)) == 2
    reliability_report.add("faults", 5)
    reliability_report.add("events", 2)


def test_checkout_answer_lost_to_a_timeout_is_retried_with_the_same_key(app, client, fake_stripe,
                                                                        reliability_report):
    booking = card_booking()
    fake_stripe.slow_next("POST", "/v1/payment_intents", seconds=1.5)  # Stripe made it; the answer comes late
    page = client.get(f"/pay/{booking.checkout_token}")
    csrf = page.get_data(as_text=True).split('name="csrf-token" content="', 1)[1].split('"', 1)[0]

    response = client.post(f"/pay/{booking.checkout_token}/intent", headers={"X-CSRFToken": csrf})

    assert response.status_code == 200
    assert len(fake_stripe.calls("POST")) == 2 and len(fake_stripe.intents) == 1
    _one_key(fake_stripe.calls("POST"))
    assert response.json["payment_intent"] == next(iter(fake_stripe.intents))
    reliability_report.add("faults", 1)
    reliability_report.add("events", 1)


def test_refund_through_500s_and_a_timeout_is_sent_once_with_one_key(
        app, fake_stripe, gunicorn, reliability_report):
    concierge = make_staff("concierge", email="concierge-refund@midas.test")
    admin = make_staff("admin", email="admin-refund@midas.test")
    booking, payment = paid_booking(starts_in=timedelta(days=20))
    fake_stripe.slow_next("POST", "/v1/refunds", seconds=1.5)  # executed, answer lost
    fake_stripe.fail_next("POST", "/v1/refunds", status=500, times=2)
    refund = refunds.request_refund(concierge, booking.reference, payment.id, 400_000, "cancelled")
    assert refund.status == "approved" and refund.failure_reason.startswith("Not sent yet")
    refund_id, admin_email = refund.id, admin.email
    db.session.commit()

    fake_stripe.fail_next("POST", "/v1/refunds", status=500, times=2)  # still flaky when staff send it again
    staff = Browser(gunicorn)
    staff.login(admin_email, PASSWORD)
    sent = staff.post(f"/refunds/{refund_id}/execute", csrf_from=f"/refunds/{refund_id}")
    assert sent.status_code in (302, 303), sent.text[:1000]

    assert len(fake_stripe.objects["refunds"]) == 1
    assert _one_key(fake_stripe.calls("POST", "/v1/refunds")) == f"refund-{refund_id}"
    db.session.rollback()
    assert db.session.get(Refund, refund_id).status == "processing"
    assert db.session.scalar(select(func.count()).select_from(Refund)) == 1
    reliability_report.add("faults", 5)
    reliability_report.add("events", 1)
