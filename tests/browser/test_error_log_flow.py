"""In Chromium: a script error on the checkout page reaches the error log, and an admin resolves it there."""

from __future__ import annotations

import os
import re
import time

import pytest
from playwright.sync_api import Page, expect

from midas.extensions import db
from midas.models import ErrorEvent
from tests import factories
from tests.browser.helpers import PageProblems, sign_in
from tests.conftest import make_staff

pytestmark = pytest.mark.browser


def wait_for_events(count: int, timeout: float = 15.0) -> list[tuple[str, str, int | None]]:
    """(message, severity, booking id) of the stored events, once there are `count` of them."""
    deadline = time.monotonic() + timeout
    while True:
        events = [(e.message, e.severity, e.booking_id) for e in db.session.query(ErrorEvent).order_by(ErrorEvent.id)]
        db.session.close()  # never hold a transaction while the server works (SQLite)
        if len(events) >= count or time.monotonic() > deadline:
            return events
        time.sleep(0.1)


def test_checkout_script_errors_are_reported_and_an_admin_resolves_them(page: Page, live_server: str):
    booking = factories.booking(factories.item())
    make_staff("admin", email="admin@midas.test")
    token, booking_id = booking.checkout_token, booking.id
    db.session.close()

    page.goto(f"/pay/{token}")
    page.evaluate("() => { setTimeout(() => { throw new TypeError('stripe.elements is not a function'); }); }")
    page.evaluate("() => { Promise.reject(new Error('3-D Secure frame never answered')); }")
    events = wait_for_events(2)
    assert sorted(message.split(": ", 1)[-1] for message, _, _ in events) == [
        "3-D Secure frame never answered", "stripe.elements is not a function"]
    assert {(severity, booking_id) for _, severity, booking_id in events} == {("LOW", booking_id)}

    staff = page.context.new_page()  # the checkout tab's own errors are not the staff pages' problems
    problems = PageProblems(staff)
    sign_in(staff, "admin@midas.test")
    staff.goto("/errors")
    staff.get_by_role("link", name=re.compile("stripe.elements is not a function")).click()
    header = staff.locator("#group-header")
    expect(header).to_have_attribute("data-status", "open")
    header.get_by_role("button", name="Resolve").click()
    expect(staff.locator("#group-header")).to_have_attribute("data-status", "resolved")
    expect(staff.locator("#group-header")).to_contain_text("Resolved")
    if os.environ.get("MIDAS_SCREENSHOTS"):
        staff.screenshot(path=f"{os.environ['MIDAS_SCREENSHOTS']}/error-group.png", full_page=True)
        staff.goto("/errors")
        staff.screenshot(path=f"{os.environ['MIDAS_SCREENSHOTS']}/error-log.png", full_page=True)
    problems.assert_none()
