"""An admin reads a report in Chromium: charts draw without breaking the CSP, filters refresh it, and it prints."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from midas.extensions import db
from tests.browser.helpers import PageProblems, sign_in
from tests.conftest import make_staff
from tests.services.test_reports import build_business

pytestmark = pytest.mark.browser


def test_admin_filters_a_report_and_prints_it_without_navigation(page: Page, live_server: str):
    business = build_business()
    make_staff("admin", email="admin@midas.test")
    tokyo_id = business.tokyo.id
    db.session.close()  # no transaction of the test's stays open while the server works
    problems = PageProblems(page)
    sign_in(page, "admin@midas.test")

    page.goto("/reports")
    page.get_by_role("link", name="Revenue").click()
    page.locator("input[name=from]").fill("2026-03-01")
    page.locator("input[name=to]").fill("2026-04-30")
    page.get_by_role("button", name="Filter").click()
    by_location = page.locator("section[data-table=by_location]")
    expect(by_location.locator("tbody tr")).to_have_count(2)
    expect(by_location.locator("svg[role=img]")).to_have_count(2)  # one chart per currency
    expect(by_location.locator("svg .bar-fill").first).to_be_visible()

    page.locator("select[name=location]").select_option(str(tokyo_id))
    expect(by_location.locator("tbody tr")).to_have_count(1)
    expect(page).to_have_url(f"{live_server}/reports/revenue?from=2026-03-01&to=2026-04-30&location={tokyo_id}"
                             "&category=")

    page.emulate_media(media="print")
    expect(page.locator("header.topbar")).to_be_hidden()
    expect(page.locator("form.filters")).to_be_hidden()
    expect(by_location.locator("svg[role=img]")).to_be_visible()
    problems.assert_none()
