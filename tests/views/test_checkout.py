"""The customer's checkout: the page, the card intent endpoints and the return page's status polling."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from midas.extensions import db
from midas.models import Booking, Payment, utcnow
from tests import factories
from tests.conftest import soup
from tests.fakes import stripe_api
from tests.fakes.stripe_api import (
    PUBLISHABLE_KEY,
    authorized,
    card_booking,
    card_payment,
    declined,
    deliver,
    event,
    intent_for,
    run_jobs,
    succeeded,
)

fake_stripe, stripe_server = stripe_api.fake_stripe, stripe_api.stripe_server


class Customer:
    """A browser on the checkout page: it reads the CSRF token from the page, as checkout.js does."""

    def __init__(self, client, booking: Booking) -> None:
        self.client, self.token = client, booking.checkout_token
        self.csrf = soup(client.get(f"/pay/{self.token}")).find("meta", attrs={"name": "csrf-token"})["content"]

    def page(self, query: str = ""):
        response = self.client.get(f"/pay/{self.token}{query}")
        return response.status_code, soup(response)

    def intent(self, path: str = "intent", **kwargs):
        headers = {"X-CSRFToken": self.csrf, "Accept": "application/json", **kwargs.pop("headers", {})}
        return self.client.post(f"/pay/{self.token}/{path}", headers=headers, **kwargs)

    def status(self):
        return soup(self.client.get(f"/pay/{self.token}/status", headers={"HX-Request": "true"}))


# The page.

def test_a_pending_booking_shows_its_summary_and_the_card_form(app, client, fake_stripe):
    booking = card_booking(total=425000)

    status, page = Customer(client, booking).page()

    assert status == 200 and page.select_one("article.checkout")["data-status"] == "pending_payment"
    assert "€4,250.00" in page.select_one("tfoot").get_text()
    form = page.select_one("form[data-stripe-payment]")
    assert form["data-publishable-key"] == PUBLISHABLE_KEY
    assert form["data-intent-url"] == f"/pay/{booking.checkout_token}/intent"
    assert form["data-return-url"] == f"http://localhost/pay/{booking.checkout_token}"
    assert form.select_one("button[data-pay]").get_text() == "Pay €4,250.00"
    assert [s["src"] for s in page.select("script")][-1] == "/static/js/checkout.js"
    assert all(s.get("src") for s in page.select("script")), "no inline scripts (CSP)"


def test_an_unknown_link_gets_a_clear_page_not_an_error(app, client):
    response = client.get("/pay/not-a-real-token-at-all-1234")
    page = soup(response)
    assert response.status_code == 404
    assert page.h1.get_text() == "This payment link is not valid"
    assert "ask your concierge for a new one" in page.get_text()


def test_a_paid_booking_says_so_and_offers_no_payment(app, client, fake_stripe):
    booking = card_booking(status="confirmed")
    status, page = Customer(client, booking).page()
    assert status == 200 and "paid and confirmed" in page.get_text()
    assert page.select_one("form[data-stripe-payment]") is None


def test_an_expired_hold_whose_dates_went_to_someone_else_says_so(app, client, fake_stripe):
    booking = card_booking(status="quote")
    factories.booking(booking.item, starts_at=booking.starts_at, days=1, status="confirmed")

    status, page = Customer(client, booking).page()

    assert status == 200 and page.select_one("[data-expired]") is not None
    assert page.select_one("form[data-stripe-payment]") is None


def test_without_stripe_keys_the_page_offers_other_ways_to_pay(app, client):
    status, page = Customer(client, card_booking()).page()
    assert status == 200 and page.select_one("[data-card-unavailable]") is not None


# Creating the intent.

def test_the_intent_is_for_what_the_booking_owes_in_its_currency_with_its_reference(app, client, fake_stripe):
    booking = card_booking(total=425000)
    card_payment(booking, status="succeeded", amount=25000)  # paid earlier by another method

    response = Customer(client, booking).intent()

    assert response.status_code == 200
    [call] = fake_stripe.calls("POST")
    assert (call.params["amount"], call.params["currency"]) == ("400000", "eur")
    assert call.params["metadata"]["booking_reference"] == booking.reference
    assert call.idempotency_key == f"booking:{booking.id}:charge:400000"
    intent = fake_stripe.intents[response.json["payment_intent"]]
    assert response.json["client_secret"] == intent["client_secret"]
    payment = db.session.scalar(select(Payment).where(Payment.provider_ref == intent["id"]))
    assert (payment.amount, payment.currency, payment.idempotency_key) == (400000, "EUR", call.idempotency_key)


def test_amounts_sent_by_the_browser_are_ignored(app, client, fake_stripe):
    booking = card_booking(total=425000)
    customer = Customer(client, booking)

    customer.intent(json={"amount": 100, "currency": "usd", "booking_reference": "MID-OTHER"})
    customer.intent(data={"amount": "1", "currency": "jpy"})

    assert {call.params["amount"] for call in fake_stripe.calls("POST")} == {"425000"}
    assert {call.params["currency"] for call in fake_stripe.calls("POST")} == {"eur"}


def test_the_open_intent_is_reused_for_the_same_booking_and_amount(app, client, fake_stripe):
    customer = Customer(client, card_booking())

    first, second = customer.intent().json, customer.intent().json

    assert first["payment_intent"] == second["payment_intent"]
    assert len(fake_stripe.calls("POST")) == 1 and len(fake_stripe.intents) == 1
    assert db.session.scalar(select(db.func.count()).select_from(Payment)) == 1


def test_a_repriced_booking_cancels_the_old_intent_and_asks_for_the_new_amount(app, client, fake_stripe):
    booking = card_booking(total=425000)
    customer = Customer(client, booking)
    old = customer.intent().json["payment_intent"]
    booking.total_amount = 450000
    db.session.commit()

    new = customer.intent().json

    assert new["payment_intent"] != old and new["amount"] == 450000
    assert fake_stripe.intents[old]["status"] == "canceled"
    assert db.session.scalar(select(Payment.status).where(Payment.provider_ref == old)) == "canceled"


def test_an_intent_cancelled_at_stripe_is_replaced_with_a_fresh_key(app, client, fake_stripe):
    booking = card_booking()
    customer = Customer(client, booking)
    first = customer.intent().json["payment_intent"]
    fake_stripe.intents[first]["status"] = "canceled"

    second = customer.intent().json["payment_intent"]

    assert second != first
    assert fake_stripe.calls("POST")[-1].idempotency_key == f"booking:{booking.id}:charge:{booking.total_amount}:2"


def test_a_stripe_hiccup_is_retried_with_the_same_key(app, client, fake_stripe):
    fake_stripe.fail_next("POST", "/v1/payment_intents", status=500)

    response = Customer(client, card_booking()).intent()

    assert response.status_code == 200
    assert len({call.idempotency_key for call in fake_stripe.calls("POST")}) == 1
    assert len(fake_stripe.intents) == 1


def test_when_stripe_stays_down_the_customer_gets_a_friendly_error_and_can_retry(app, client, fake_stripe):
    booking = card_booking()
    customer = Customer(client, booking)
    fake_stripe.fail_next("POST", "/v1/payment_intents", status=503, times=3)

    failed = customer.intent()
    again = customer.intent()

    assert failed.status_code == 502 and "try again" in failed.json["reason"]
    assert again.status_code == 200
    keys = {call.idempotency_key for call in fake_stripe.calls("POST")}
    assert keys == {f"booking:{booking.id}:charge:{booking.total_amount}"}


def test_a_declined_card_is_shown_and_the_same_intent_can_be_retried(app, client, fake_stripe):
    booking = card_booking()
    customer = Customer(client, booking)
    intent_id = customer.intent().json["payment_intent"]
    fake_stripe.update_intent(intent_id, declined)

    deliver(client, event("payment_intent.payment_failed", fake_stripe.intents[intent_id]))
    run_jobs(app)

    status = customer.status()
    assert status.select_one("[data-payment-status]")["data-payment-status"] == "failed"
    assert "insufficient funds" in status.get_text()
    _, page = customer.page()
    assert "insufficient funds" in page.select_one("[data-payment-failure]").get_text()
    assert customer.intent().json["payment_intent"] == intent_id


@pytest.mark.parametrize(("status", "code", "error"), [
    ("confirmed", 409, "already_paid"), ("cancelled", 410, "checkout_closed"), ("no_show", 410, "checkout_closed"),
])
def test_paid_or_closed_bookings_refuse_a_new_intent(app, client, fake_stripe, status, code, error):
    response = Customer(client, card_booking(status=status)).intent()
    assert (response.status_code, response.json["error"]) == (code, error)
    assert fake_stripe.calls("POST") == []


def test_an_expired_hold_is_taken_again_when_the_item_is_still_free(app, client, fake_stripe):
    booking = card_booking(status="quote")

    response = Customer(client, booking).intent()

    db.session.refresh(booking)
    assert response.status_code == 200
    assert booking.status == "pending_payment" and booking.hold_expires_at > utcnow() + timedelta(minutes=14)


def test_an_expired_hold_whose_slot_is_gone_refuses_with_410(app, client, fake_stripe):
    booking = card_booking(status="quote")
    factories.booking(booking.item, starts_at=booking.starts_at, days=1, status="confirmed")

    response = Customer(client, booking).intent()

    assert response.status_code == 410 and "no longer available" in response.json["reason"]
    assert fake_stripe.calls("POST") == []


def test_a_hold_about_to_end_is_extended_while_the_customer_pays(app, client, fake_stripe):
    booking = card_booking()
    booking.hold_expires_at = utcnow() + timedelta(minutes=2)
    db.session.commit()

    Customer(client, booking).intent()

    db.session.refresh(booking)
    assert booking.hold_expires_at > utcnow() + timedelta(minutes=14)


def test_an_amount_over_stripes_limit_is_refused_before_calling_stripe(app, client, fake_stripe):
    response = Customer(client, card_booking(total=120_000_000)).intent()
    assert response.status_code == 409 and "bank transfer" in response.json["reason"]
    assert fake_stripe.calls("POST") == []


def test_without_stripe_keys_the_endpoint_says_card_payments_are_off(app, client):
    response = Customer(client, card_booking()).intent()
    assert response.status_code == 503 and response.json["error"] == "stripe_unavailable"


def test_the_intent_endpoint_needs_the_pages_csrf_token(app, client, fake_stripe):
    booking = card_booking()
    response = client.post(f"/pay/{booking.checkout_token}/intent", headers={"Accept": "application/json"})
    assert response.status_code == 400
    assert fake_stripe.calls("POST") == []


def test_more_than_ten_intents_a_minute_from_one_address_are_refused(app, client, fake_stripe):
    customer = Customer(client, card_booking())

    codes = [customer.intent().status_code for _ in range(11)]
    page = client.post(f"/pay/{customer.token}/intent", headers={"X-CSRFToken": customer.csrf, "Accept": "text/html"})

    assert codes == [200] * 10 + [429]
    assert page.status_code == 429 and "Too many attempts" in page.get_data(as_text=True)


def test_one_booking_is_limited_across_addresses_too(app, client, fake_stripe, monkeypatch):
    monkeypatch.setitem(app.config, "CHECKOUT_BOOKING_LIMIT", "3 per hour")
    customer = Customer(client, card_booking())

    codes = [customer.intent(headers={"X-Forwarded-For": f"198.51.100.{n}"}).status_code for n in range(4)]

    assert codes == [200, 200, 200, 429]


# The return page.

def test_the_return_page_polls_until_the_webhook_confirms(app, client, fake_stripe):
    booking = card_booking()
    customer = Customer(client, booking)
    intent_id = customer.intent().json["payment_intent"]

    _, page = customer.page(f"?payment_intent={intent_id}&redirect_status=succeeded")
    polling = page.select_one("[data-payment-status]")
    assert polling["data-payment-status"] == "pending"
    assert (polling["hx-get"], polling["hx-trigger"]) == (f"/pay/{booking.checkout_token}/status", "every 2s")

    deliver(client, event("payment_intent.succeeded", fake_stripe.update_intent(intent_id, succeeded)))
    run_jobs(app)

    done = customer.status().select_one("[data-payment-status]")
    assert done["data-payment-status"] == "confirmed" and not done.has_attr("hx-get")


# The deposit hold.

def test_the_deposit_hold_is_a_manual_capture_intent_once_paid_and_near_pick_up(app, client, fake_stripe):
    booking = card_booking(status="confirmed", deposit=500000, starts_in=timedelta(hours=30))
    customer = Customer(client, booking)
    _, page = customer.page()
    assert page.select_one("#deposit form[data-stripe-payment]")["data-intent-url"].endswith("/deposit-intent")

    response = customer.intent("deposit-intent")

    assert response.status_code == 200 and response.json["amount"] == 500000
    [call] = fake_stripe.calls("POST")
    assert call.params["capture_method"] == "manual" and call.idempotency_key == f"booking:{booking.id}:deposit:500000"


def test_the_deposit_waits_for_payment_and_for_the_days_before_pick_up(app, client, fake_stripe):
    unpaid = Customer(client, card_booking(starts_in=timedelta(hours=30))).intent("deposit-intent")
    early = Customer(client, card_booking(status="confirmed", starts_in=timedelta(days=9))).intent("deposit-intent")

    assert unpaid.status_code == 409 and "pay for the booking first" in unpaid.json["reason"]
    assert early.status_code == 409 and "two days before pick-up" in early.json["reason"]


def test_a_held_deposit_is_shown_and_not_asked_for_again(app, client, fake_stripe):
    booking = card_booking(status="confirmed", starts_in=timedelta(hours=30))
    hold = card_payment(booking, kind="deposit")
    fake_stripe.add("payment_intents", authorized(intent_for(hold)))
    deliver(client, event("payment_intent.amount_capturable_updated", authorized(intent_for(hold))))
    run_jobs(app)
    customer = Customer(client, booking)

    _, page = customer.page()

    assert page.select_one("#deposit")["data-deposit-state"] == "held"
    assert customer.intent("deposit-intent").status_code == 409


def test_a_fully_paid_card_booking_is_confirmed_even_if_the_customer_reloads(app, client, fake_stripe):
    booking = card_booking()
    customer = Customer(client, booking)
    intent_id = customer.intent().json["payment_intent"]
    fake_stripe.update_intent(intent_id, succeeded)

    response = customer.intent()  # the webhook is late; the reused intent is applied on the way

    assert response.status_code == 409
    db.session.refresh(booking)
    assert booking.status == "confirmed"
    assert db.session.scalar(select(Payment.status).where(Payment.provider_ref == intent_id)) == "succeeded"
