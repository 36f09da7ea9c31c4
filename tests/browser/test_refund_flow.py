"""A refund over the approval threshold, clicked through Chromium: a concierge asks, an admin approves, the
page shows it processing at Stripe, and Stripe's signed webhook to the live server makes it succeed."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
import requests
from playwright.sync_api import Page, expect

from midas.extensions import db
from midas.models import Payment, Refund
from tests.browser.helpers import PageProblems, sign_in
from tests.conftest import make_staff
from tests.fakes import paypal_api, stripe_api
from tests.fakes.stripe_api import stripe_server  # noqa: F401
from tests.services.test_refunds import fake_stripe, paid_booking  # noqa: F401

pytestmark = pytest.mark.browser


def test_concierge_request_over_threshold_is_approved_then_succeeds_on_the_webhook(
        app, page: Page, live_server: str, fake_stripe, monkeypatch):  # noqa: F811
    monkeypatch.setitem(app.config, "STRIPE_WEBHOOK_SECRETS", [stripe_api.WEBHOOK_SECRET])
    concierge, admin = make_staff("concierge", email="cora@midas.test"), make_staff("admin", email="ada@midas.test")
    booking, payment = paid_booking(starts_in=timedelta(days=40), rental=900_000)  # 9,000 EUR: above 4,600 EUR
    reference, payment_id, concierge_email, admin_email = booking.reference, payment.id, concierge.email, admin.email
    db.session.close()  # the live server must be free to write (SQLite: one writer)
    problems = PageProblems(page)

    sign_in(page, concierge_email)
    page.goto(f"/refunds/new?booking={reference}")
    expect(page.locator("[data-rule]")).to_have_text("car: 100% at 7+ days notice")
    expect(page.locator("#amount")).to_have_value("9000.00")
    page.locator("#reason").fill("The customer's trip moved to next year")
    page.get_by_role("button", name="Request refund").click()
    expect(page.locator("section[data-status]")).to_have_attribute("data-status", "pending_approval")
    assert not fake_stripe.calls("POST", "/v1/refunds")  # waits for an admin: nothing sent yet

    page.context.clear_cookies()
    sign_in(page, admin_email)
    page.goto("/refunds")
    queue = page.locator("[data-queue=awaiting_approval]")
    expect(queue.locator("tr[data-queue-status=pending_approval]")).to_have_count(1)
    queue.locator("a[href^='/refunds/']").click()
    page.locator("#decision_reason").fill("Confirmed with the customer")
    page.get_by_role("button", name="Approve").click()
    expect(page.locator("section[data-status]")).to_have_attribute("data-status", "processing")
    assert len(fake_stripe.calls("POST", "/v1/refunds")) == 1

    refund = db.session.query(Refund).one()
    sent = fake_stripe.objects["refunds"][refund.provider_ref]
    sent["status"] = "succeeded"  # the bank took it; Stripe says so (and answers so when asked)
    db.session.close()
    payload = json.dumps(stripe_api.event("refund.updated", sent))
    answer = requests.post(f"{live_server}/webhooks/stripe", data=payload, timeout=10, headers={
        "Stripe-Signature": stripe_api.signature(payload), "Content-Type": "application/json"})
    assert answer.status_code == 200, answer.text
    paypal_api.run_jobs()  # with Redis the event waits for a worker, as in production

    page.reload()
    expect(page.locator("section[data-status]")).to_have_attribute("data-status", "succeeded")
    page.goto("/refunds?status=succeeded")
    expect(page.locator("#results tr[data-status=succeeded]")).to_have_count(1)
    expect(page.locator("[data-kpi=refunded-this-month]")).to_contain_text("9,000.00")
    paid = db.session.get(Payment, payment_id)
    assert (paid.status, paid.amount_refunded) == ("partially_refunded", 900_000)  # the service fee is kept
    db.session.close()
    problems.assert_none()
