"""A member of staff in a real browser: signs in with the keyboard, walks the main navigation, searches, signs out."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from midas.extensions import db
from midas.models import Customer
from tests.browser.helpers import PageProblems, sign_in
from tests.conftest import make_staff

pytestmark = pytest.mark.browser


def test_staff_signs_in_follows_navigation_and_signs_out(page: Page, live_server: str):
    make_staff("owner", email="owner@midas.test", name="Olivia Owner")
    db.session.close()  # no transaction of the test's stays open while the server works
    problems = PageProblems(page)

    sign_in(page, "owner@midas.test")

    expect(page).to_have_url(f"{live_server}/")
    expect(page.locator(".flash")).to_have_text("Welcome back, Olivia Owner.")
    expect(page.locator("h1")).to_have_text("Good day, Olivia")
    expect(page.locator("#tiles .tile").first).to_be_visible()

    nav_links = page.locator("header nav .nav-areas a")
    labels = nav_links.all_inner_texts()
    assert labels[0] == "Home" and "Staff" in labels, labels  # an owner sees every area
    for label in labels:
        link = nav_links.get_by_text(label, exact=True)
        href = link.get_attribute("href")
        link.click()
        expect(page).to_have_url(re.compile(re.escape(f"{live_server}{href}") + r"$"))
        expect(page.locator("main h1")).to_be_visible()
        expect(page.locator(".error-page")).to_have_count(0)
        expect(nav_links.get_by_text(label, exact=True)).to_have_attribute("aria-current", "page")
        expect(page.locator("header nav .nav-areas a[aria-current=page]")).to_have_count(1)

    page.get_by_role("button", name="Sign out").click()
    expect(page).to_have_url(f"{live_server}/login")
    expect(page.get_by_text("You have signed out.")).to_be_visible()
    expect(page.locator("header nav")).to_have_count(0)

    page.goto("/bookings")
    expect(page).to_have_url(re.compile(re.escape(f"{live_server}/login") + r"(\?.*)?$"))
    expect(page.locator("main h1")).to_have_text("Sign in")
    problems.assert_none()


def test_htmx_search_updates_results_without_full_reload(page: Page, live_server: str):
    db.session.add_all([
        Customer(name="Ada Lovelace", email="ada@example.com"),
        Customer(name="Grace Hopper", email="grace@example.com"),
    ])
    db.session.commit()
    make_staff("concierge")
    db.session.close()
    problems = PageProblems(page)

    sign_in(page, "concierge@midas.test")
    expect(page).to_have_url(f"{live_server}/")
    page.goto("/customers")
    rows = page.locator("#results tbody tr")
    expect(rows).to_have_count(2)
    page.evaluate("window.__marker = 1")

    page.locator("input[name=q]").press_sequentially("grace")

    expect(page).to_have_url(re.compile(r"/customers\?(.*&)?q=grace(&|$)"))  # hx-push-url
    expect(rows).to_have_count(1)
    expect(rows.first.locator("td").first).to_have_text("Grace Hopper")
    expect(page.locator("#results")).not_to_contain_text("Ada Lovelace")
    assert page.evaluate("window.__marker") == 1, "the search reloaded the whole page instead of swapping #results"
    expect(page.locator("input[name=q]")).to_have_value("grace")  # the form was not re-rendered under the typist
    problems.assert_none()
