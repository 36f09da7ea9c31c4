"""A customer opens their checkout link in a real browser. Stripe.js never loads from the internet here:
it is blocked (the page must still work and say so) or replaced by a small stand-in that behaves like it."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from midas.extensions import db
from midas.services import payment_events
from tests import factories
from tests.browser.helpers import PageProblems
from tests.fakes import stripe_api
from tests.fakes.stripe_api import card_booking, succeeded

pytestmark = pytest.mark.browser
fake_stripe, stripe_server = stripe_api.fake_stripe, stripe_api.stripe_server
STRIPE_JS = re.compile(r"^https://js\.stripe\.com/")

# Enough of Stripe.js for our script: a Payment Element that mounts, and a card that is declined.
STAND_IN = """
window.Stripe = function (key) {
  window.stripeKey = key;
  return {
    elements: function (options) {
      window.stripeClientSecret = options.clientSecret;
      return {
        create: function () {
          var handlers = {};
          return {
            on: function (name, handler) { handlers[name] = handler; },
            mount: function (target) {
              var field = document.createElement("div");
              field.setAttribute("data-stand-in-element", "");
              field.textContent = "Card number";
              target.appendChild(field);
              if (handlers.ready) { handlers.ready(); }
            },
          };
        },
      };
    },
    confirmPayment: function () {
      return Promise.resolve({ error: { message: "Your card was declined." } });
    },
  };
};
"""


def open_checkout(page: Page, token: str, stripe_js: str | None) -> PageProblems:
    problems = PageProblems(page)
    if stripe_js is None:
        page.route(STRIPE_JS, lambda route: route.abort())
    else:
        page.route(STRIPE_JS, lambda route: route.fulfill(body=stripe_js, content_type="application/javascript"))
    db.session.close()  # the live server must be free to write (SQLite: one writer)
    page.goto(f"/pay/{token}")
    return problems


def only_stripe_blocked(problems: PageProblems) -> None:
    assert problems.page_errors == [] and problems.server_errors == []
    assert all("js.stripe.com" in error for error in problems.console_errors), problems.console_errors


def test_the_booking_summary_stays_and_the_page_says_so_when_stripe_js_cannot_load(page: Page, live_server: str,
                                                                                   fake_stripe):
    booking = card_booking(total=425000)
    token, item = booking.checkout_token, booking.item.name

    problems = open_checkout(page, token, stripe_js=None)

    expect(page.get_by_role("heading", level=1)).to_have_text(item)
    expect(page.locator("tfoot")).to_contain_text("€4,250.00")
    expect(page.locator("[data-payment-message]")).to_contain_text("secure card form could not be loaded")
    expect(page.locator("[data-pay]")).to_be_hidden()
    assert fake_stripe.calls("POST") == []
    only_stripe_blocked(problems)


def test_the_card_form_mounts_and_shows_a_declined_card(page: Page, live_server: str, fake_stripe):
    booking = card_booking(total=425000)
    token = booking.checkout_token

    problems = open_checkout(page, token, stripe_js=STAND_IN)

    pay = page.get_by_role("button", name="Pay €4,250.00")
    expect(pay).to_be_visible()
    expect(page.locator("[data-stand-in-element]")).to_have_count(1)
    [intent] = fake_stripe.intents.values()
    assert page.evaluate("window.stripeClientSecret") == intent["client_secret"]
    assert page.evaluate("window.stripeKey") == stripe_api.PUBLISHABLE_KEY
    assert intent["amount"] == 425000 and intent["metadata"]["booking_reference"] == booking.reference
    pay.click()
    expect(page.locator("[data-payment-message]")).to_have_text("Your card was declined.")
    expect(pay).to_be_enabled()
    problems.assert_none()


def test_the_return_page_shows_the_confirmation_once_the_payment_is_applied(page: Page, live_server: str,
                                                                           fake_stripe):
    booking = card_booking()
    payment = stripe_api.card_payment(booking)
    token, intent = booking.checkout_token, stripe_api.intent_for(payment)

    problems = open_checkout(page, f"{token}?payment_intent={intent['id']}&redirect_status=succeeded", STAND_IN)
    expect(page.locator("[data-payment-status]")).to_have_attribute("data-payment-status", "pending")

    payment_events.apply_payment_intent(succeeded(intent), "test")  # what the webhook job does
    db.session.close()

    expect(page.locator("[data-payment-status]")).to_have_attribute("data-payment-status", "confirmed", timeout=8000)
    expect(page.locator("[data-payment-status]")).to_contain_text("is confirmed")
    problems.assert_none()


def test_an_unknown_link_shows_the_invalid_link_page(page: Page, live_server: str):
    problems = PageProblems(page)
    page.goto("/pay/this-link-was-never-issued-0000")

    expect(page.get_by_role("heading", level=1)).to_have_text("This payment link is not valid")
    expect(page.locator("body")).to_contain_text("ask your concierge for a new one")
    assert problems.server_errors == [] and problems.page_errors == []


def test_an_expired_hold_whose_dates_were_taken_shows_the_expired_page(page: Page, live_server: str, fake_stripe):
    booking = card_booking(status="quote")
    factories.booking(booking.item, starts_at=booking.starts_at, days=1, status="confirmed")

    problems = open_checkout(page, booking.checkout_token, STAND_IN)

    expect(page.locator("[data-expired]")).to_contain_text("no longer available")
    expect(page.locator("form[data-stripe-payment]")).to_have_count(0)
    assert fake_stripe.calls("POST") == []
    problems.assert_none()
