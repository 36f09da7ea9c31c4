"""What the error log computes: money at risk, bookings and customers touched, trends, triage and snoozes."""

from __future__ import annotations

from datetime import timedelta

import pytest

from midas.extensions import db
from midas.models import ErrorEvent, ErrorGroup, Setting, utcnow
from midas.services import DomainError, PermissionDenied, errors
from midas.services.error_capture import record_error
from tests import factories
from tests.conftest import make_staff


def group_with(*events: dict, category: str = "PAYMENT") -> ErrorGroup:
    group = ErrorGroup(fingerprint=f"{len(events)}-{utcnow().timestamp()}", category=category, severity="HIGH",
                       error_type="CardError", message="Card declined", occurrences=max(len(events), 1))
    db.session.add(group)
    db.session.add_all(ErrorEvent(group=group, severity="HIGH", message="Card declined", **event) for event in events)
    db.session.commit()
    return group


def test_revenue_at_risk_counts_each_booking_once_per_currency(app):
    london, dubai = factories.booking(factories.item()), factories.booking(factories.item(
        factories.location("DXB", name="Dubai Marina", currency="AED", timezone="Asia/Dubai")))
    group = group_with(
        {"booking_id": london.id, "amount": 250000, "currency": "GBP"},
        {"booking_id": london.id, "amount": 250000, "currency": "GBP"},  # the customer tried again
        {"booking_id": dubai.id, "amount": 900000, "currency": "AED"},
        {"amount": 10000, "currency": "GBP"},  # no booking: counted on its own
        {"amount": 10000, "currency": "GBP"},
        {"customer_id": factories.customer().id},
    )
    impact = errors.impact_by_group([group.id])[group.id]
    assert impact.revenue == {"AED": 900000, "GBP": 270000}
    assert (impact.bookings, impact.customers) == (2, 3)


def test_a_group_without_money_or_bookings_has_an_empty_impact(app):
    group = group_with({}, category="SYSTEM")
    assert errors.impact_by_group([group.id]) == {group.id: errors.Impact()}
    assert errors.impact_by_group([]) == {}


def test_trends_count_events_per_bucket_oldest_first(app):
    now = utcnow()
    group = group_with({"occurred_at": now - timedelta(minutes=30)}, {"occurred_at": now - timedelta(minutes=40)},
                       {"occurred_at": now - timedelta(hours=5, minutes=30)}, {"occurred_at": now - timedelta(days=3)})
    trend = errors.trends_by_group([group.id], "24h", now)[group.id]
    assert len(trend) == 24 and trend[23] == 2 and trend[18] == 1 and sum(trend) == 3
    assert sum(errors.trends_by_group([group.id], "7d", now)[group.id]) == 4


def test_the_hour_trend_has_five_minute_buckets(app):
    now = utcnow()
    group = group_with({"occurred_at": now - timedelta(minutes=2)}, {"occurred_at": now - timedelta(minutes=58)})
    trend = errors.trends_by_group([group.id], "1h", now)[group.id]
    assert len(trend) == 12 and trend[0] == 1 and trend[11] == 1


def test_only_admins_triage_and_a_snooze_needs_an_open_group(app):
    group = record_error("WEBHOOK", "LOW", "Late webhook")
    with pytest.raises(PermissionDenied):
        errors.resolve_group(make_staff("concierge"), group.id)
    admin = make_staff("admin")
    errors.ignore_group(admin, group.id)
    with pytest.raises(DomainError, match="open"):
        errors.snooze_group(admin, group.id, period="1h")


def test_a_snooze_ends_after_its_period_or_its_count_and_reopening_clears_it(app):
    admin = make_staff("admin")
    group = record_error("WEBHOOK", "LOW", "Late webhook")
    errors.snooze_group(admin, group.id, period="1h")
    group = errors.get_group(group.id)
    assert errors.snooze_for(group, utcnow()) is not None
    assert errors.snooze_for(group, utcnow() + timedelta(minutes=61)) is None
    errors.snooze_group(admin, group.id, events=2)
    assert db.session.get(Setting, f"snooze:{group.id}").value["until_count"] == 3
    errors.reopen_group(admin, group.id)
    assert db.session.get(Setting, f"snooze:{group.id}") is None


def test_resolving_records_who_and_clears_the_regression_flag(app):
    admin = make_staff("admin")
    group = record_error("PAYMENT", "HIGH", "Card declined")
    errors.resolve_group(admin, group.id)
    record_error("PAYMENT", "HIGH", "Card declined")
    assert errors.get_group(group.id).regression is True
    resolved = errors.resolve_group(admin, group.id)
    assert (resolved.status, resolved.regression, resolved.resolved_by_id) == ("resolved", False, admin.id)
    assert errors.group_detail(group.id).resolved_by == admin.name


def test_a_browser_error_that_starts_repeating_raises_its_groups_severity(app):
    group = record_error("SYSTEM", "LOW", "ResizeObserver loop")
    record_error("SYSTEM", "MEDIUM", "ResizeObserver loop")
    record_error("SYSTEM", "LOW", "ResizeObserver loop")
    assert errors.get_group(group.id).severity == "MEDIUM"
