"""The customer's other ways to pay, as they see them: PayPal there and back, bank transfer, pay at pick-up."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

from flask import render_template

from midas.config import Config, TestConfig
from midas.extensions import db
from midas.models import Booking, Payment
from midas.services import paypal_payments
from tests.conftest import soup
from tests.fakes import paypal_api
from tests.fakes.paypal_api import paypal_booking

# Fixtures shared by the PayPal tests.
fake_paypal, paypal_server = paypal_api.fake_paypal, paypal_api.paypal_server
flush_errors = paypal_api.flush_errors


def checkout_page(browser, booking: Booking):
    return browser.page(f"/pay/{booking.checkout_token}")


def other_methods(browser, booking: Booking):
    return checkout_page(browser, booking).find(id="other-methods")


def order_id_from(response) -> str:
    """The order id in the PayPal link of the "Continuing to PayPal" page."""
    assert response.status_code == 200, response.status_code
    return parse_qs(urlsplit(soup(response).find("a", attrs={"data-approve": True})["href"]).query)["token"][0]


def test_checkout_offers_paypal_bank_transfer_and_pay_at_pickup(browser, fake_paypal):
    booking = paypal_booking()
    section = other_methods(browser, booking)
    methods = [form["data-method"] for form in section.select("form[data-method]")]
    assert methods == ["paypal", "bank_transfer", "pay_on_pickup"]
    assert "Pay €4,250.00 with PayPal" in section.get_text()


def test_without_paypal_credentials_the_paypal_button_is_not_shown(browser):
    section = other_methods(browser, paypal_booking())
    assert [form["data-method"] for form in section.select("form[data-method]")] == ["bank_transfer", "pay_on_pickup"]


def test_paying_with_paypal_there_and_back_confirms_the_booking(browser, fake_paypal):
    booking = paypal_booking()
    response = browser.post(f"/pay/{booking.checkout_token}/paypal/order")
    page = soup(response)
    link = page.find("a", attrs={"data-approve": True})["href"]
    assert link.startswith("https://www.sandbox.paypal.com/checkoutnow?token=")
    assert page.find("meta", attrs={"http-equiv": "refresh"})["content"] == f"0; url={link}"
    assert "approve €4,250.00" in page.get_text()
    order_id = order_id_from(response)
    fake_paypal.approve(order_id)  # the customer approves at PayPal, which sends them back:
    page = browser.page(f"/pay/{booking.checkout_token}/paypal/return?token={order_id}&PayerID=LPLWNMTBWMFAY")
    form = page.find("form", attrs={"data-method": "paypal-capture"})
    assert form.find("input", attrs={"name": "order_id"})["value"] == order_id
    assert "Pay €4,250.00 with PayPal" in form.get_text()
    response = browser.post(f"/pay/{booking.checkout_token}/paypal/capture", {"order_id": order_id})
    assert response.status_code == 303 and response.headers["Location"].endswith(f"/pay/{booking.checkout_token}")
    assert checkout_page(browser, booking).find(attrs={"data-status": True})["data-status"] == "confirmed"
    [payment] = db.session.query(Payment).all()
    assert (payment.provider, payment.status, payment.amount) == ("paypal", "succeeded", 425000)


def test_return_url_sent_to_paypal_comes_back_to_this_booking(browser, fake_paypal):
    booking = paypal_booking()
    browser.post(f"/pay/{booking.checkout_token}/paypal/order")
    context = fake_paypal.calls("/v2/checkout/orders")[0].json()["payment_source"]["paypal"]["experience_context"]
    assert context["return_url"] == f"http://localhost/pay/{booking.checkout_token}/paypal/return"
    assert context["cancel_url"] == f"http://localhost/pay/{booking.checkout_token}"


def test_tampered_amount_fields_are_ignored(browser, fake_paypal):
    booking = paypal_booking()
    browser.post(f"/pay/{booking.checkout_token}/paypal/order",
                 {"amount": "1", "value": "0.01", "currency": "USD", "currency_code": "USD"})
    token = browser.csrf_token()
    browser.client.post(f"/pay/{booking.checkout_token}/paypal/order", headers={"X-CSRFToken": token},
                        json={"amount": 1, "purchase_units": [{"amount": {"value": "0.01"}}]})
    units = [call.json()["purchase_units"][0]["amount"] for call in fake_paypal.calls("/v2/checkout/orders")]
    assert units == [{"currency_code": "EUR", "value": "4250.00"}]  # and the second request reused the order
    assert [p.amount for p in db.session.query(Payment).all()] == [425000]


def test_a_script_gets_the_order_and_capture_as_json(browser, fake_paypal):
    booking = paypal_booking()
    headers = {"X-CSRFToken": browser.csrf_token(), "Accept": "application/json"}
    created = browser.client.post(f"/pay/{booking.checkout_token}/paypal/order", headers=headers).get_json()
    assert created["approve_url"].endswith(created["order_id"])
    fake_paypal.approve(created["order_id"])
    captured = browser.client.post(f"/pay/{booking.checkout_token}/paypal/capture", headers=headers,
                                   json={"order_id": created["order_id"]}).get_json()
    assert captured["status"] == "succeeded"


def test_capturing_someone_elses_order_is_not_found(browser, fake_paypal):
    mine, theirs = paypal_booking(), paypal_booking(reference="MID-THEIRS")
    order_id = order_id_from(browser.post(f"/pay/{theirs.checkout_token}/paypal/order"))
    fake_paypal.approve(order_id)
    response = browser.post(f"/pay/{mine.checkout_token}/paypal/capture", {"order_id": order_id})
    assert response.status_code == 404
    assert not fake_paypal.calls("/capture")


def test_a_declined_funding_source_explains_what_to_do(browser, fake_paypal):
    booking = paypal_booking()
    order_id = order_id_from(browser.post(f"/pay/{booking.checkout_token}/paypal/order"))
    fake_paypal.approve(order_id)
    fake_paypal.capture_outcome = "INSTRUMENT_DECLINED"
    response = browser.post(f"/pay/{booking.checkout_token}/paypal/capture", {"order_id": order_id})
    assert response.status_code == 402
    assert "choose another card or account" in soup(response).get_text()


def test_paypal_outage_shows_a_calm_page_and_charges_nothing(browser, fake_paypal):
    booking = paypal_booking()
    fake_paypal.fail_next("/v2/checkout/orders", 503, times=3)
    response = browser.post(f"/pay/{booking.checkout_token}/paypal/order")
    assert response.status_code == 503 and "Nothing was charged" in soup(response).get_text()


def test_order_creation_is_rate_limited_per_visitor(browser, fake_paypal):
    booking = paypal_booking()
    statuses = [browser.post(f"/pay/{booking.checkout_token}/paypal/order").status_code for _ in range(11)]
    assert statuses[:10] == [200] * 10 and statuses[10] == 429


def test_choosing_bank_transfer_shows_the_bank_details_and_the_reference_to_quote(browser):
    booking = paypal_booking()
    response = browser.post(f"/pay/{booking.checkout_token}/offline", {"method": "bank_transfer"}, htmx=True)
    assert response.status_code == 200
    fragment = soup(response)
    chosen = fragment.find(attrs={"data-chosen": "bank_transfer"})
    assert chosen.find(attrs={"data-reference": True}).get_text() == "MID-7KQ3X9"
    assert chosen.find(attrs={"data-amount": True}).get_text() == "€4,250.00"
    assert chosen.find(attrs={"data-iban": True}).get_text() == "GB33 BUKB 2020 1555 5555 55"
    assert chosen.find(attrs={"data-bic": True}).get_text() == "BUKBGB22"
    assert [f["data-method"] for f in fragment.select("form[data-method]")] == ["pay_on_pickup"]
    assert fragment.find("html") is None  # only the fragment


def test_without_htmx_the_choice_returns_to_the_checkout_page(browser):
    booking = paypal_booking()
    response = browser.post(f"/pay/{booking.checkout_token}/offline", {"method": "pay_on_pickup"})
    assert response.status_code == 303 and response.headers["Location"].endswith("#other-methods")
    chosen = other_methods(browser, booking).find(attrs={"data-chosen": True})
    assert chosen["data-chosen"] == "pay_on_pickup" and chosen["data-status"] == "pending"
    assert "when you collect your Riva Aquarama" in chosen.get_text()


def test_choosing_twice_records_one_pending_payment(browser):
    booking = paypal_booking()
    for _ in range(2):
        browser.post(f"/pay/{booking.checkout_token}/offline", {"method": "bank_transfer"}, htmx=True)
    assert [(p.provider, p.status) for p in db.session.query(Payment).all()] == [("bank_transfer", "pending")]


def test_an_unknown_method_is_refused_with_a_reason(browser):
    booking = paypal_booking()
    response = browser.post(f"/pay/{booking.checkout_token}/offline", {"method": "gold_bars"})
    assert response.status_code == 422 and "bank transfer or payment at pick-up" in soup(response).get_text()
    assert db.session.query(Payment).count() == 0


def test_choosing_without_the_pages_security_token_is_refused(client):
    booking = paypal_booking()
    response = client.post(f"/pay/{booking.checkout_token}/offline", data={"method": "bank_transfer"})
    assert response.status_code == 400 and db.session.query(Payment).count() == 0


def test_a_paid_booking_offers_no_other_method(app):
    booking = paypal_booking(status="confirmed")
    with app.test_request_context():
        html = render_template("checkout/_other_methods.html", booking=booking, state="paid")
    assert "<form" not in html


def test_bank_details_have_demo_values_on_a_laptop_and_none_in_production():
    assert TestConfig().BANK_IBAN == "GB33 BUKB 2020 1555 5555 55"
    production = Config({"MIDAS_ENV": "production", "SECRET_KEY": "s", "DATABASE_URL": "sqlite://"})
    assert (production.BANK_ACCOUNT_NAME, production.BANK_IBAN, production.BANK_BIC) == (None, None, None)
    given = Config({"MIDAS_ENV": "production", "SECRET_KEY": "s", "DATABASE_URL": "sqlite://",
                    "BANK_IBAN": "MC58 1122 2000 0101 2345 6789 030"})
    assert given.BANK_IBAN == "MC58 1122 2000 0101 2345 6789 030"


def test_admin_records_a_bank_transfer_as_received(login_as):
    booking = paypal_booking()
    payment = paypal_payments.choose_offline(booking.checkout_token, "bank_transfer")
    response = login_as("admin").post(f"/payments/{payment.id}/confirm-offline", {"reference_note": "BARC 88812"})
    assert response.status_code == 303 and response.headers["Location"].endswith(f"/payments/{payment.id}")
    assert db.session.get(Payment, payment.id).status == "succeeded"
    assert db.session.get(Booking, booking.id).status == "confirmed"


def test_a_missing_bank_reference_is_explained_and_changes_nothing(login_as):
    payment = paypal_payments.choose_offline(paypal_booking().checkout_token, "bank_transfer")
    admin = login_as("admin")
    response = admin.post(f"/payments/{payment.id}/confirm-offline", {"reference_note": ""})
    assert response.status_code == 303
    assert "Enter the bank's reference" in admin.page(response.headers["Location"]).get_text()
    assert db.session.get(Payment, payment.id).status == "pending"


def test_a_concierge_cannot_record_money_as_received(login_as):
    payment = paypal_payments.choose_offline(paypal_booking().checkout_token, "bank_transfer")
    response = login_as("concierge").post(f"/payments/{payment.id}/confirm-offline", {"reference_note": "x"})
    assert response.status_code == 403 and db.session.get(Payment, payment.id).status == "pending"
