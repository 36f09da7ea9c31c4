"""A concierge records a late return in a real browser and sees the late fee asked of the customer."""

from __future__ import annotations

from datetime import timedelta

import pytest
from playwright.sync_api import Page, expect

from midas.extensions import db
from midas.models import utcnow
from midas.timeutil import to_local
from tests import factories
from tests.browser.helpers import PageProblems, sign_in
from tests.conftest import make_staff
from tests.fakes.stripe_api import run_jobs

pytestmark = pytest.mark.browser


def test_concierge_records_a_late_return_and_sees_the_fee_and_its_balance(app, page: Page, live_server: str):
    make_staff("concierge", email="chloe@midas.test")
    item = factories.item(factories.location(), name="Ferrari 296 GTB")
    booking = factories.booking(item, starts_at=utcnow() - timedelta(days=2), days=1, status="in_progress")
    reference, tz = booking.reference, item.location.timezone
    back = to_local(booking.ends_at + timedelta(hours=2, minutes=40), tz).strftime("%Y-%m-%dT%H:%M")
    db.session.close()
    problems = PageProblems(page)
    sign_in(page, "chloe@midas.test")

    page.goto(f"/bookings/{reference}")
    page.get_by_role("button", name="Record return").click()
    page.locator("input[name=returned_at]").fill(back)
    page.get_by_role("button", name="Complete booking").click()

    expect(page.locator(".flash")).to_contain_text("returned and completed")
    expect(page.locator("[data-status]").first).to_have_attribute("data-status", "completed")
    expect(page.locator("table").first).to_contain_text("Late return: 3 h after the agreed time")
    run_jobs(app)  # the worker charges the fee (without Redis it already ran, right after the return)
    page.reload()
    fee = page.locator("[data-late-fee-status]")
    expect(fee).to_have_attribute("data-late-fee-status", "balance_due")
    expect(fee).to_contain_text("awaits the customer's payment")
    expect(page.locator("ol.timeline")).to_contain_text("Late fee balance asked of the customer")
    problems.assert_none()
