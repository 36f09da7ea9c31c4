"""Alert rules: staff hear of failures at the threshold (not below it), at most every 15 minutes, with a digest.

Alerts travel through the outbox to a fake Slack webhook (pytest-httpserver) and a local SMTP server
(aiosmtpd). On PostgreSQL with Redis the alert and send jobs wait until `run_jobs()` runs a real worker.
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from midas.extensions import db
from midas.models import AuditEntry, ErrorGroup, Notification, Setting, utcnow
from midas.services import DomainError, PermissionDenied, alerts, errors, settings
from midas.services.error_capture import record_error
from tests.conftest import make_staff
from tests.integrations import fakes
from tests.integrations.fakes import run_jobs

closed_port, fake_api, fake_api_server = fakes.closed_port, fakes.fake_api, fakes.fake_api_server
providers, smtp_server = fakes.providers, fakes.smtp_server
OPS = "ops@midas.test"


@pytest.fixture
def channels(app, providers, smtp_server, fake_api):
    """Slack and email configured for alerts, both pointing at local fakes."""
    fake_api.expect_request("/slack", method="POST").respond_with_data("ok")
    providers(EMAIL_PROVIDERS=["smtp"], SMTP_URL=smtp_server.url, ALERT_EMAILS=[OPS],
              SLACK_WEBHOOK_URL=fake_api.url_for("/slack"))
    return smtp_server


def capture(category: str = "PAYMENT", severity: str = "MEDIUM", message: str = "Card declined for booking 7",
            **details) -> ErrorGroup:
    db.session.commit()  # the test's reads end first, as a request's would
    group = record_error(category, severity, message, **details)
    run_jobs()
    return group


def alert_rows(**where) -> list[Notification]:
    db.session.commit()
    return db.session.query(Notification).filter_by(template="error_alert", **where).order_by(Notification.id).all()


def slack_texts(fake_api) -> list[str]:
    return [request.get_json()["text"] for request, _ in fake_api.log if request.path == "/slack"]


def test_a_rule_fires_at_its_threshold_and_not_below_it(channels, fake_api):
    capture()
    capture()
    assert alert_rows() == []  # PAYMENT: 3 MEDIUM errors in 15 minutes; two is below it
    group = capture()
    rows = alert_rows()
    assert {(row.channel, row.recipient, row.status) for row in rows} == {("email", OPS, "sent"),
                                                                         ("slack", "slack", "sent")}
    assert rows[0].context["window_count"] == 3 and rows[0].context["group_id"] == group.id
    [mail] = channels.messages
    assert mail["To"] == OPS and "PAYMENT" in mail["Subject"]
    assert "Card declined" in mail.get_body(("plain",)).get_content()
    [text] = slack_texts(fake_api)
    assert "PAYMENT" in text and "Card declined" in text


def test_the_threshold_counts_the_whole_category_but_only_errors_at_the_minimum_severity(channels):
    capture(severity="LOW")
    capture(severity="LOW", message="Apple Pay sheet closed")
    capture(message="Card declined for booking 7")
    capture(message="3-D Secure timed out")
    assert alert_rows() == []
    capture(message="Insufficient funds")
    assert len(alert_rows(channel="email")) == 1


def test_a_high_payment_error_alerts_at_once(channels, fake_api):
    capture(severity="HIGH", message="Charge succeeded but booking 12 could not be confirmed", amount=250000,
            currency="EUR")
    assert [row.status for row in alert_rows()] == ["sent", "sent"]
    assert "a HIGH PAYMENT error" in alert_rows()[0].context["reason"]


def test_a_group_alerts_at_most_once_in_15_minutes_then_sends_a_digest(channels, fake_api):
    group = capture(severity="HIGH", message="Stripe API unreachable")
    for _ in range(4):
        capture(severity="HIGH", message="Stripe API unreachable")
    assert len(alert_rows(channel="slack")) == 1  # throttled: one alert for five errors

    assert alerts.check_alerts(now=utcnow() + timedelta(minutes=5)) == 0
    assert alerts.check_alerts(now=utcnow() + timedelta(minutes=16)) == 1
    run_jobs()
    digest = alert_rows(channel="slack")[-1]
    assert digest.context["more"] == 4 and digest.context["digest"].startswith("and 4 more since ")
    assert len(alert_rows(channel="slack")) == 2 and errors.get_group(group.id).occurrences == 5
    assert "and 4 more since" in slack_texts(fake_api)[-1] and "Why now" in slack_texts(fake_api)[-1]
    assert alerts.check_alerts(now=utcnow() + timedelta(minutes=40)) == 0  # nothing new since the digest


def test_ignored_and_snoozed_groups_stay_quiet(channels):
    admin = make_staff("admin")
    ignored = capture(severity="HIGH", message="PayPal sandbox refused the order")
    snoozed = capture(severity="HIGH", message="Stripe webhook late")
    errors.ignore_group(admin, ignored.id)
    errors.snooze_group(admin, snoozed.id, events=2)
    before = len(alert_rows())
    capture(severity="HIGH", message="PayPal sandbox refused the order")
    capture(severity="HIGH", message="Stripe webhook late")
    assert alerts.check_alerts(now=utcnow() + timedelta(minutes=16)) == 0
    assert len(alert_rows()) == before
    capture(severity="HIGH", message="Stripe webhook late")  # the snooze ran out after 2 more events
    assert alerts.check_alerts(now=utcnow() + timedelta(minutes=16)) == 1


def test_a_disabled_rule_never_fires_but_high_payment_errors_still_do(channels):
    owner = make_staff("owner")
    rules = settings.get_alert_rules()
    rules["PAYMENT"] = {**rules["PAYMENT"], "enabled": False}
    rules["BOOKING"] = {**rules["BOOKING"], "min_severity": "LOW", "events": 2, "minutes": 5}
    settings.set_alert_rules(owner, rules)
    for _ in range(5):
        capture(severity="MEDIUM", message="Card declined")
    assert alert_rows() == []
    capture("BOOKING", "LOW", "Conflict while booking item 4")
    capture("BOOKING", "LOW", "Conflict while booking item 4")
    assert len(alert_rows(channel="email")) == 1
    capture(severity="HIGH", message="Refund failed")
    assert len(alert_rows(channel="email")) == 2


def test_without_alert_emails_the_admins_are_alerted(app, providers, smtp_server):
    providers(EMAIL_PROVIDERS=["smtp"], SMTP_URL=smtp_server.url)
    admin = make_staff("admin", email="admin@midas.test")
    make_staff("concierge", email="desk@midas.test")
    capture(severity="HIGH", message="Payout failed")
    assert [row.recipient for row in alert_rows()] == [admin.email]
    assert [mail["To"] for mail in smtp_server.messages] == [admin.email]


def test_a_failing_alert_job_is_recorded_but_never_alerts_about_itself(channels, monkeypatch):
    rules = settings.get_alert_rules()
    settings.set_alert_rules(make_staff("owner"), {**rules, "SYSTEM": {**rules["SYSTEM"], "min_severity": "LOW",
                                                                       "events": 1}})
    monkeypatch.setattr(alerts, "_stage", lambda *args: (_ for _ in ()).throw(RuntimeError("outbox broken")))
    capture(severity="HIGH", message="Payout failed")
    [failure] = db.session.query(ErrorGroup).filter_by(category="SYSTEM").all()
    assert failure.error_type == "RuntimeError" and failure.occurrences == 1
    assert alert_rows() == []


def test_owners_edit_alert_rules_which_are_versioned_and_audited(app):
    owner, admin = make_staff("owner"), make_staff("admin")
    rules = settings.get_alert_rules()
    assert rules["PAYMENT"] == {"enabled": True, "min_severity": "MEDIUM", "events": 3, "minutes": 15}
    settings.set_alert_rules(owner, {**rules, "WEBHOOK": {**rules["WEBHOOK"], "events": 2}})
    settings.set_alert_rules(owner, {**rules, "WEBHOOK": {**rules["WEBHOOK"], "events": 4}})
    assert db.session.get(Setting, "alert_rules").version == 2 and settings.get_alert_rules()["WEBHOOK"]["events"] == 4
    assert db.session.query(AuditEntry).filter_by(action="settings.alert_rules").count() == 2
    with pytest.raises(PermissionDenied):
        settings.set_alert_rules(admin, rules)
    for bad in ({**rules, "PAYMENT": {**rules["PAYMENT"], "events": 0}},
                {**rules, "PAYMENT": {**rules["PAYMENT"], "min_severity": "CRITICAL"}},
                {k: v for k, v in rules.items() if k != "SYSTEM"}):
        with pytest.raises(DomainError):
            settings.set_alert_rules(owner, bad)
