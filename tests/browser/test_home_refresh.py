"""The home page in Chromium: a booking confirmed elsewhere shows up on the open page by itself, through HTMX
refetching the board alone (no reload, nothing blocked by the CSP)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from playwright.sync_api import Page, expect

from midas.extensions import db
from midas.models import utcnow
from midas.services import booking_states
from midas.timeutil import to_local
from tests import factories
from tests.browser.helpers import PageProblems, sign_in
from tests.conftest import make_staff

pytestmark = pytest.mark.browser
ZONES = ["Europe/London", "Asia/Tokyo", "America/New_York", "Asia/Kolkata", "America/Los_Angeles", "Pacific/Auckland"]


def _midday_zone() -> str:
    """A zone where it is now nearest noon, so a booking an hour from now starts today there."""
    now = utcnow()
    return min(ZONES, key=lambda zone: abs(to_local(now, zone).hour - 12))


@pytest.fixture
def short_refresh(app):
    """The refresh interval through configuration, as an operator would set HOME_REFRESH_SECONDS."""
    app.config["HOME_REFRESH_SECONDS"] = 1
    yield
    app.config["HOME_REFRESH_SECONDS"] = 30


def test_a_booking_confirmed_in_the_background_appears_on_the_open_home_page(page: Page, live_server: str,
                                                                             short_refresh):
    venue = factories.location("VEN", name="Venue", timezone=_midday_zone())
    booking = factories.booking(factories.item(venue), utcnow() + timedelta(hours=1), days=1, status="pending_payment")
    booking.hold_expires_at = utcnow() + timedelta(minutes=30)
    db.session.commit()
    reference = booking.reference
    make_staff("admin", email="admin@midas.test")
    db.session.close()  # no transaction of the test's stays open while the server works
    problems = PageProblems(page)
    refreshes: list[str] = []
    page.on("request", lambda request: refreshes.append(request.url) if request.headers.get("hx-request") else None)
    sign_in(page, "admin@midas.test")

    page.goto("/")
    board = page.locator("section.location-board[data-location=VEN]")
    awaiting = board.locator("[data-tile=awaiting-payment] .value")
    pickups = board.locator("[data-tile=pickups] .value")
    expect(awaiting).to_have_text("1")
    expect(pickups).to_have_text("0")
    page.evaluate("window.midasNotReloaded = true")

    booking_states.confirm(None, reference)  # the customer paid: confirmed by the payment path, not by this page
    db.session.close()

    expect(pickups).to_have_text("1")
    expect(awaiting).to_have_text("0")
    assert page.evaluate("window.midasNotReloaded === true")  # the board was swapped in, the page never reloaded
    assert refreshes and all(url.rstrip("/") == live_server for url in refreshes)
    expect(page.locator("figure.kpi[data-kpi=bookings] svg[role=img]")).to_be_visible()
    problems.assert_none()
