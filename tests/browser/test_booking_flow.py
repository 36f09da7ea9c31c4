"""A concierge books a car for a customer in a real browser, from search to checkout link."""

from __future__ import annotations

from datetime import timedelta

import pytest
from playwright.sync_api import Page, expect

from midas.extensions import db
from midas.models import Booking, utcnow
from tests import factories
from tests.browser.helpers import PageProblems, sign_in
from tests.conftest import make_staff

pytestmark = pytest.mark.browser


def test_concierge_searches_customer_picks_dates_sees_price_and_creates_booking(page: Page, live_server: str):
    make_staff("concierge", email="chloe@midas.test")
    loc = factories.location()
    loc_id = loc.id
    factories.item(loc, name="Ferrari 296 GTB")
    factories.customer(name="Grace Hopper", email="grace@example.com", tier="vvip")
    db.session.close()
    problems = PageProblems(page)
    sign_in(page, "chloe@midas.test")

    page.goto("/bookings/new")
    page.locator("#customer_q").press_sequentially("grace", delay=30)
    page.get_by_label("Grace Hopper").check()
    page.locator("select[name=location_id]").select_option(str(loc_id))
    start = (utcnow() + timedelta(days=30)).strftime("%Y-%m-%d")
    end = (utcnow() + timedelta(days=33)).strftime("%Y-%m-%d")
    page.locator("input[name=starts_at]").fill(f"{start}T10:00")
    page.locator("input[name=ends_at]").fill(f"{end}T10:00")
    page.locator("input[name=ends_at]").dispatch_event("change")

    page.get_by_label("Ferrari 296 GTB").check()
    quote = page.locator(".quote")
    expect(quote).to_contain_text("VVIP tier")
    expect(quote).to_contain_text("Total")
    page.locator("textarea[name=special_requests]").fill("Red interior please")
    page.get_by_role("button", name="Create booking").click()

    expect(page.locator(".flash")).to_contain_text("created")
    checkout_url = page.locator("[data-checkout-url]").get_attribute("data-checkout-url")
    assert "/pay/" in checkout_url
    expect(page.locator("[data-status]").first).to_have_attribute("data-status", "pending_payment")
    problems.assert_none()
    booking = db.session.query(Booking).one()
    assert checkout_url.endswith(booking.checkout_token) and booking.special_requests == "Red interior please"
