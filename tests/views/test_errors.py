"""The error log as staff see it, and `POST /errors` as a browser (or an attacker) sees it."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from midas.extensions import db
from midas.models import AuditEntry, ErrorEvent, ErrorGroup, Payment, utcnow
from midas.services import errors
from midas.services.error_capture import record_error
from tests import factories
from tests.conftest import soup

ORIGIN = {"Origin": "http://localhost"}


def capture(*args, **kwargs) -> ErrorGroup:
    db.session.commit()
    return record_error(*args, **kwargs)


def failed_payment(amount: int = 250000) -> Payment:
    booking = factories.booking(factories.item())
    payment = Payment(booking=booking, provider="stripe", status="failed", amount=amount, currency="GBP",
                      idempotency_key=f"pay-{booking.reference}")
    db.session.add(payment)
    db.session.commit()
    return payment


def stored() -> tuple[int, int]:
    db.session.commit()
    return db.session.query(ErrorGroup).count(), db.session.query(ErrorEvent).count()


# The dashboard.

def test_the_error_log_lists_groups_with_a_trend_line_and_the_money_at_risk(app, login_as):
    payment = failed_payment()
    for _ in range(3):
        capture("PAYMENT", "HIGH", "Card declined", booking_id=payment.booking_id, payment_id=payment.id,
                amount=payment.amount, currency="GBP")
    capture("WEBHOOK", "LOW", "Signature verification failed")
    page = login_as("admin").page("/errors")
    rows = page.select("table.error-groups tbody tr")
    assert len(rows) == 2
    declined = page.find("a", string=lambda s: s and "Card declined" in s).find_parent("tr")
    assert "£2,500.00" in declined.get_text() and "1 booking, 1 customer" in declined.get_text()
    line = declined.select_one("svg.sparkline polyline")
    assert line is not None and line.has_attr("points") and not declined.select("[style]")
    assert "3 events" in declined.select_one("svg.sparkline")["aria-label"]


@pytest.mark.parametrize("query, expected", [
    ("category=WEBHOOK", ["Signature verification failed"]),
    ("severity=HIGH", ["Card declined"]),
    ("status=resolved", ["Old outage"]),
    ("period=1h", ["Signature verification failed", "Card declined"]),
])
def test_the_error_log_filters_by_category_severity_state_and_period(app, login_as, query, expected):
    old = capture("SYSTEM", "MEDIUM", "Old outage")
    db.session.query(ErrorGroup).filter_by(id=old.id).update(
        {"status": "resolved", "last_seen_at": utcnow() - timedelta(days=2)})
    capture("PAYMENT", "HIGH", "Card declined")
    capture("WEBHOOK", "LOW", "Signature verification failed")
    page = login_as("admin").page(f"/errors?{query}")
    shown = [a.get_text().split(": ", 1)[1] for a in page.select("table.error-groups tbody td a")]
    assert shown == expected


def test_an_htmx_filter_gets_only_the_results(app, login_as):
    capture("PAYMENT", "HIGH", "Card declined")
    response = login_as("admin").get("/errors?category=PAYMENT", headers={"HX-Request": "true"})
    html = response.get_data(as_text=True)
    assert response.status_code == 200 and "<table" in html and "<html" not in html


def test_the_group_page_shows_scrubbed_context_the_stack_and_links(app, login_as):
    payment = failed_payment()
    group = capture("PAYMENT", "HIGH", "Card 4242 4242 4242 4242 declined", booking_id=payment.booking_id,
                    payment_id=payment.id, amount=payment.amount, currency="GBP",
                    stack_trace="Traceback: charge() in stripe_gateway.py", context={
                        "password": "hunter2-hunter2", "stripe_key": "sk_live_51Habcdefghijklmnop",
                        "headers": {"Authorization": "Bearer abc.def.ghi-token-value"},
                        "provider_code": "card_declined"})
    page = login_as("admin").page(f"/errors/{group.id}")
    text = str(page)
    for secret in ("hunter2", "sk_live_51H", "abc.def.ghi", "4242 4242"):
        assert secret not in text, secret
    assert "card_declined" in text and "[scrubbed]" in text
    assert page.select_one("pre.stack-trace").get_text() == "Traceback: charge() in stripe_gateway.py"
    assert page.select_one(f'a[href="/bookings/{payment.booking.reference}"]')
    assert page.select_one(f'a[href="/payments/{payment.id}"]')
    assert page.select_one("#group-header")["data-status"] == "open"
    assert "£2,500.00" in page.select_one("[data-impact]").get_text()


def test_a_groups_events_are_paginated(app, login_as):
    for _ in range(errors.EVENTS_PER_PAGE + 3):
        group = capture("BOOKING", "LOW", "Conflict while booking")
    staff = login_as("admin")
    assert len(staff.page(f"/errors/{group.id}").select("article.error-event")) == errors.EVENTS_PER_PAGE
    assert len(staff.page(f"/errors/{group.id}?page=2").select("article.error-event")) == 3


def test_resolve_then_reopen_via_htmx_returns_the_header_and_is_audited(app, login_as):
    group = capture("PAYMENT", "HIGH", "Card declined")
    staff = login_as("admin")
    response = staff.post(f"/errors/{group.id}/resolve", htmx=True)
    header = soup(response).select_one("#group-header")
    assert response.status_code == 200 and header["data-status"] == "resolved" and "<html" not in response.text
    assert "Resolved" in header.get_text() and header.select_one("form[hx-post$='/reopen']")
    response = staff.post(f"/errors/{group.id}/reopen", htmx=True)
    assert soup(response).select_one("#group-header")["data-status"] == "open"
    entries = db.session.query(AuditEntry).filter_by(entity_type="error_group").order_by(AuditEntry.id)
    actions = [entry.action for entry in entries]
    assert actions == ["errors.resolve", "errors.reopen"]


def test_a_resolved_group_that_recurs_shows_as_a_regression(app, login_as):
    group = capture("PAYMENT", "HIGH", "Card declined")
    staff = login_as("admin")
    staff.post(f"/errors/{group.id}/resolve")
    capture("PAYMENT", "HIGH", "Card declined")
    page = staff.page("/errors")
    assert "regression" in page.select_one(f"#group-{group.id}").get_text()


def test_ignore_and_snooze_without_htmx_redirect_with_a_message(app, login_as):
    group = capture("WEBHOOK", "LOW", "Late webhook")
    staff = login_as("admin")
    response = staff.post(f"/errors/{group.id}/snooze", {"period": "8h"})
    assert response.status_code == 302
    page = staff.page(f"/errors/{group.id}")
    assert "Snoozed" in page.get_text() and "snoozed until" in page.select_one("[data-snooze]").get_text()
    staff.post(f"/errors/{group.id}/ignore")
    assert staff.page(f"/errors/{group.id}").select_one("#group-header")["data-status"] == "ignored"


@pytest.mark.parametrize("data", [{}, {"period": "8h", "events": "3"}, {"events": "0"}])
def test_a_snooze_needs_a_period_or_a_number_of_events(app, login_as, data):
    group = capture("WEBHOOK", "LOW", "Late webhook")
    response = login_as("admin").post(f"/errors/{group.id}/snooze", data, htmx=True)
    assert soup(response).select_one(".snooze-form .field-error") is not None
    assert db.session.query(AuditEntry).filter_by(entity_type="error_group").count() == 0


def test_snoozing_until_more_events_shows_how_many_are_left(app, login_as):
    group = capture("WEBHOOK", "LOW", "Late webhook")
    response = login_as("admin").post(f"/errors/{group.id}/snooze", {"events": "5"}, htmx=True)
    assert "until 5 more events" in soup(response).select_one("[data-snooze]").get_text()


def test_concierges_cannot_see_or_change_the_error_log(app, login_as):
    group = capture("PAYMENT", "HIGH", "Card declined")
    staff = login_as("concierge")
    assert staff.get("/errors").status_code == 403
    assert staff.post(f"/errors/{group.id}/resolve", htmx=True).status_code == 403
    assert db.session.get(ErrorGroup, group.id).status == "open"


def test_an_exception_in_a_staff_view_lands_in_one_group_naming_the_user(app, login_as, monkeypatch):
    monkeypatch.setitem(app.config, "PROPAGATE_EXCEPTIONS", False)
    monkeypatch.setattr(errors, "list_groups", lambda *a, **k: 1 / 0)
    staff = login_as("admin")
    assert staff.get("/errors").status_code == 500
    assert staff.get("/errors?page=2").status_code == 500
    [group] = db.session.query(ErrorGroup).all()
    assert (group.category, group.error_type, group.occurrences) == ("SYSTEM", "ZeroDivisionError", 2)
    event = db.session.query(ErrorEvent).first()
    assert event.context["staff_user"].startswith("admin-") and event.context["path"] == "/errors"


def test_the_home_page_counts_open_high_groups_and_errors_in_the_last_hour(app, login_as):
    capture("PAYMENT", "HIGH", "Card declined")
    capture("PAYMENT", "HIGH", "Card declined")
    capture("WEBHOOK", "LOW", "Late webhook")
    tiles = {t.select_one(".label").get_text(): t for t in login_as("admin").page("/").select("a.tile")}
    assert tiles["Open high-severity errors"].select_one(".value").get_text() == "1"
    assert tiles["Errors in the last hour"].select_one(".value").get_text() == "3"
    assert tiles["Errors in the last hour"]["href"] == "/errors?period=1h"


# POST /errors from browsers.

def report(client, body, headers=ORIGIN, **kwargs):
    data = body if isinstance(body, bytes | str) else json.dumps(body)
    return client.post("/errors", data=data, headers=headers, content_type="application/json", **kwargs)


def test_a_browser_error_from_checkout_is_stored_low_and_linked_to_the_booking(app, client):
    booking = factories.booking(factories.item())
    response = report(client, {"message": "TypeError: stripe is undefined", "user_agent": "Safari/17",
                               "url": f"http://localhost/pay/{booking.checkout_token}",
                               "stack": "TypeError: stripe is undefined\n    at mount (http://localhost/static/js/checkout.js:12:5)"})
    assert response.status_code == 204
    [group] = db.session.query(ErrorGroup).all()
    event = db.session.query(ErrorEvent).one()
    assert (group.category, group.severity, group.error_type) == ("PAYMENT", "LOW", "ClientError")
    assert event.booking_id == booking.id and event.customer_id == booking.customer_id
    assert event.context["page"] == "/pay/…" and booking.checkout_token not in json.dumps(event.context)
    assert event.context["user_agent"] == "Safari/17"


def test_a_browser_error_repeating_five_times_in_an_hour_becomes_medium(app, client):
    for _ in range(4):
        report(client, {"message": "ResizeObserver loop limit exceeded", "url": "http://localhost/pay/x"})
    assert {e.severity for e in db.session.query(ErrorEvent)} == {"LOW"}
    report(client, {"message": "ResizeObserver loop limit exceeded", "url": "http://localhost/pay/x"})
    [group] = db.session.query(ErrorGroup).all()
    assert group.severity == "MEDIUM" and group.occurrences == 5


@pytest.mark.parametrize("body, status", [
    (json.dumps({"message": "x" * 9000}), 413),
    ("not json at all", 400),
    (b"\xff\xfe\x00garbage", 400),
    ("[1, 2, 3]", 400),
    ({"stack": "at x.js:1:1"}, 400),
    ({"message": "   "}, 400),
    ({"message": "boom", "url": {"href": "/pay/x"}}, 400),
])
def test_oversized_or_malformed_reports_are_refused_and_nothing_is_stored(app, client, body, status):
    response = report(client, body)
    assert response.status_code == status and response.get_json()["reason"]
    assert stored() == (0, 0)


@pytest.mark.parametrize("headers", [
    {"Origin": "https://evil.example"},
    {"Origin": "null"},
    {"Origin": "https://localhost"},
    {"Referer": "https://evil.example/pay/x"},
    {},
])
def test_cross_origin_or_unattributed_reports_are_refused(app, client, headers):
    response = report(client, {"message": "boom"}, headers=headers)
    assert response.status_code == 403 and "own pages" in response.get_json()["reason"]
    assert stored() == (0, 0)


def test_a_same_origin_referer_is_enough(app, client):
    assert report(client, {"message": "boom"}, headers={"Referer": "http://localhost/pay/x"}).status_code == 204


def test_reports_are_rate_limited_per_address(app, client):
    statuses = [report(client, {"message": f"boom {n}"}).status_code for n in range(31)]
    assert statuses[:30] == [204] * 30 and statuses[30] == 429
    assert stored()[1] == 30


def test_the_report_endpoint_needs_no_login_or_csrf_token_but_the_log_does(app, client):
    assert report(client, {"message": "boom"}).status_code == 204
    assert client.get("/errors").status_code == 302


def test_checkout_pages_load_the_error_reporter_and_staff_pages_do_not(app, client, login_as):
    booking = factories.booking(factories.item())
    script = soup(client.get(f"/pay/{booking.checkout_token}")).select_one('script[src$="client-errors.js"]')
    assert script is not None and script["data-endpoint"] == "/errors" and script.has_attr("defer")
    assert login_as("admin").page("/errors").select_one('script[src$="client-errors.js"]') is None


# Alert rules on /settings.

def test_owners_edit_alert_rules_on_the_settings_page(app, login_as):
    owner = login_as("owner")
    assert owner.page("/settings").select_one("#alert-rules [hx-get='/settings/alerts']")
    fragment = owner.get("/settings/alerts", headers={"HX-Request": "true"})
    form = soup(fragment).select_one("form.alert-rules-form")
    assert form is not None and "<html" not in fragment.get_data(as_text=True)
    data = {f"{c}-{k}": v for c in ("PAYMENT", "BOOKING", "AUTHENTICATION", "WEBHOOK", "NOTIFICATION", "SYSTEM")
            for k, v in (("enabled", "y"), ("min_severity", "MEDIUM"), ("events", "4"), ("minutes", "20"))}
    del data["SYSTEM-enabled"]
    assert owner.post("/settings/alerts", data).status_code == 302
    rules = owner.page("/settings/alerts")
    assert rules.select_one('input[name="PAYMENT-events"]')["value"] == "4"
    assert not rules.select_one('input[name="SYSTEM-enabled"]').has_attr("checked")
    assert owner.post("/settings/alerts", {**data, "WEBHOOK-events": "0"}).status_code == 422
    assert login_as("admin").get("/settings/alerts").status_code == 403
