"""An admin manages the fleet in a real browser: filter, open an item, browse its calendar, add a blackout."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from midas.extensions import db
from midas.models import Blackout
from tests import factories
from tests.browser.helpers import PageProblems, sign_in
from tests.conftest import make_staff

pytestmark = pytest.mark.browser


def test_admin_filters_opens_an_item_moves_the_calendar_and_adds_a_blackout(page: Page, live_server: str):
    make_staff("admin", email="admin@midas.test")
    loc = factories.location()
    factories.item(loc, name="Sunseeker Predator 74", category="yacht")
    car_id = factories.item(loc, name="McLaren 750S").id
    db.session.close()
    problems = PageProblems(page)
    sign_in(page, "admin@midas.test")

    page.goto("/inventory")
    page.locator("select[name=category]").select_option("car")
    expect(page.locator("#results tbody tr")).to_have_count(1)
    expect(page).to_have_url(f"{live_server}/inventory?q=&category=car&location=&status=")
    page.get_by_role("link", name="McLaren 750S").click()
    expect(page.locator("h1")).to_have_text("McLaren 750S")

    month = page.locator("[data-month]").get_attribute("data-month")
    page.evaluate("window.__same_page = true")
    page.locator("a[rel=next]").click()
    expect(page.locator("[data-month]")).not_to_have_attribute("data-month", month)
    assert page.evaluate("window.__same_page") is True  # HTMX swapped the calendar, no reload
    next_month = page.locator("[data-month]").get_attribute("data-month")

    page.get_by_text("Add a blackout").click()
    page.locator("#blackout-form input[name=starts_at]").fill(f"{next_month}-10T09:00")
    page.locator("#blackout-form input[name=ends_at]").fill(f"{next_month}-12T18:00")
    page.locator("#blackout-form input[name=reason]").fill("Annual service")
    page.locator("#blackout-form button[type=submit]").click()

    expect(page.locator(".flash")).to_have_text("Blackout added.")
    expect(page.locator("table").filter(has_text="Annual service")).to_be_visible()
    problems.assert_none()
    assert db.session.query(Blackout).filter_by(item_id=car_id).count() == 1
