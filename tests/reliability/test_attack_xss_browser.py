"""Stored and reflected script payloads, shown in Chromium on every page: no dialog ever opens.

The demo business gets `<script>alert(1)</script>` and `"><img src=x onerror=alert(1)>` appended to every
name, note, reason and message a page can show (customers, items, locations, bookings and their lines,
staff, blackouts, seasons, refunds, payments' failure messages, notifications, error groups). An owner
then opens every page — each detail page per state too — and the list pages with the payloads in their
search arguments. The pages are served without their CSP here, so escaping alone must hold (the CSP is the
second lock, checked in test_attack_headers.py): any alert, confirm or prompt fails the test.
"""

from __future__ import annotations

import re
from urllib.parse import quote

import pytest
from playwright.sync_api import Dialog, Page, Route
from sqlalchemy import func, update

from midas.extensions import db
from midas.models import (
    Blackout,
    Booking,
    BookingLine,
    Customer,
    ErrorGroup,
    Item,
    Location,
    Notification,
    Payment,
    Refund,
    SeasonRule,
    StaffUser,
)
from midas.services.demo import seed_demo
from tests.browser.helpers import sign_in
from tests.conftest import make_staff
from tests.reliability.demo_targets import pages, real_ids, record_pages

pytestmark = pytest.mark.browser
PAYLOAD = '<script>alert(1)</script>"><img src=x onerror=alert(2)><svg onload=alert(3)>'
SHOWN_TEXT = [
    (Customer.name, 60), (Customer.notes, 200), (Item.name, 60), (Item.description, 200), (Location.name, 40),
    (Location.city, 40), (Booking.notes, 200), (Booking.special_requests, 200), (Booking.cancel_reason, 100),
    (BookingLine.description, 100), (StaffUser.name, 40), (Blackout.reason, 100), (SeasonRule.name, 40),
    (Refund.reason, 200), (Refund.decision_reason, 200), (Payment.failure_message, 200),
    (Notification.subject, 100), (ErrorGroup.message, 200),
]
SEARCHED = ("/bookings", "/customers", "/inventory", "/payments", "/refunds", "/communications", "/errors",
            "/webhooks/events", "/jobs", "/customers/search", "/bookings/new/customers")


def plant_payloads() -> None:
    """Every shown text column gets the payload after (a prefix of) its own value, within its length."""
    for column, keep in SHOWN_TEXT:
        db.session.execute(update(column.class_).where(column.is_not(None))
                           .values({column.key: func.substr(column, 1, keep) + " " + PAYLOAD}))
    db.session.commit()


def without_csp(route: Route) -> None:
    """Serve pages without their CSP, so only escaping stands between a payload and the browser."""
    if route.request.resource_type != "document":
        route.continue_()
        return
    response = route.fetch(max_redirects=0)  # the browser follows redirects itself, keeping its URL right
    headers = {k: v for k, v in response.headers.items() if k.lower() != "content-security-policy"}
    route.fulfill(response=response, headers=headers)


def test_no_dialog_fires_on_any_page_showing_stored_or_reflected_payloads(app, page: Page, backend_env,
                                                                          reliability_report):
    if "postgresql" in backend_env["DATABASE_URL"]:
        pytest.skip("what the browser is shown does not depend on the database: one backend is enough")
    seed_demo()
    make_staff("owner", email="xss-owner@midas.test")
    plant_payloads()
    urls = [url for _e, url in pages(app, real_ids()) if not re.search(r"\.(csv|json|ics)$|/healthz|/readyz", url)]
    urls += record_pages() + [f"{url}?q={quote(PAYLOAD)}" for url in SEARCHED]
    db.session.close()  # the live server must be free to write (SQLite: one writer)

    dialogs: list[str] = []

    def on_dialog(dialog: Dialog) -> None:
        dialogs.append(f"{dialog.type}: {dialog.message} on {page.url}")
        dialog.dismiss()

    page.on("dialog", on_dialog)
    page.route("**/*", without_csp)
    sign_in(page, "xss-owner@midas.test")
    page.wait_for_url(re.compile(r"/$"))
    shown = 0
    for url in urls:
        response = page.goto(url, wait_until="load")
        assert response is not None and response.status != 500, url
        page.wait_for_load_state("networkidle")  # htmx fragments (search results, counters) have arrived too
        shown += page.content().count("alert(1)")
    reliability_report.add("bad_inputs", len(urls))
    assert dialogs == []
    assert shown > len(urls), "the payloads were not on the pages: the test proved nothing"
    page.set_content(f"<p>{PAYLOAD}</p>")  # the same text unescaped: the watcher does see what it looks for
    page.wait_for_timeout(200)
    assert len(dialogs) >= 1
