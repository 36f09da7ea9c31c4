"""The refund policy table: every category at every boundary, in the location's time zone, DST included."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from midas.services.refund_policy import DEFAULT_POLICY, QuoteLine, quote, tier_cutoff, valid_policy

START = datetime(2026, 6, 20, 8, 0, tzinfo=UTC)  # 10:00 in Monaco
TZ = "Europe/Monaco"
SECOND = timedelta(seconds=1)
RENTAL = [QuoteLine("3 days", "rental", 1_000_000, True)]


def percent(category: str, before_start: timedelta, start: datetime = START, tz: str = TZ) -> int:
    result = quote(DEFAULT_POLICY, 0, category, start, start - before_start, tz, RENTAL, "EUR", 10**9)
    return result.refund_bp


@pytest.mark.parametrize(("category", "notice", "expected_bp"), [
    ("car", timedelta(days=7), 10000), ("car", timedelta(days=7) - SECOND, 5000),
    ("car", timedelta(hours=72), 5000), ("car", timedelta(hours=72) - SECOND, 0), ("car", timedelta(0), 0),
    ("yacht", timedelta(days=30), 10000), ("yacht", timedelta(days=30) - SECOND, 5000),
    ("yacht", timedelta(days=14), 5000), ("yacht", timedelta(days=14) - SECOND, 0),
    ("property", timedelta(days=30), 10000), ("property", timedelta(days=14) - SECOND, 0),
    ("jet", timedelta(days=14), 9000), ("jet", timedelta(days=14) - SECOND, 5000),
    ("jet", timedelta(hours=72), 5000), ("jet", timedelta(hours=72) - SECOND, 0),
])
def test_policy_table_at_every_boundary(category, notice, expected_bp):
    assert percent(category, notice) == expected_bp


def test_seven_days_across_spring_forward_are_seven_local_days_not_168_hours():
    start = datetime(2026, 4, 1, 8, 0, tzinfo=UTC)  # 10:00 CEST; a week earlier 10:00 was CET (09:00 UTC)
    cutoff = tier_cutoff(start, {"notice": 7, "unit": "days", "refund_bp": 10000}, TZ)
    assert start - cutoff == timedelta(hours=167)
    assert percent("car", timedelta(hours=167), start) == 10000
    assert percent("car", timedelta(hours=167) - SECOND, start) == 5000


def test_thirty_days_across_fall_back_are_thirty_local_days():
    start = datetime(2026, 11, 10, 9, 0, tzinfo=UTC)  # 10:00 CET; 30 days earlier 10:00 was CEST (08:00 UTC)
    assert percent("yacht", timedelta(days=30, hours=1), start) == 10000
    assert percent("yacht", timedelta(days=30, hours=1) - SECOND, start) == 5000


def test_hours_are_elapsed_time_even_across_dst():
    start = datetime(2026, 3, 30, 8, 0, tzinfo=UTC)
    assert percent("car", timedelta(hours=72), start) == 5000
    assert percent("car", timedelta(hours=72) - SECOND, start) == 0


def test_service_fees_and_non_refundable_lines_are_left_out():
    lines = [QuoteLine("rental", "rental", 200_000, True), QuoteLine("fee", "service_fee", 10_000, False),
             QuoteLine("insurance", "insurance", 50_001, True)]
    result = quote(DEFAULT_POLICY, 3, "car", START, START - timedelta(days=3), TZ, lines, "EUR", 10**9)
    assert result.refundable_base == 250_001 and result.refund_bp == 5000
    assert result.amount == 125_001  # half-up, once
    assert result.policy_version == 3 and result.rule == "car: 50% at 72+ hours notice"


def test_zero_decimal_currency_rounds_half_up_once():
    lines = [QuoteLine("rental", "rental", 1_234_567, True)]
    result = quote(DEFAULT_POLICY, 0, "jet", START, START - timedelta(days=15), TZ, lines, "JPY", 10**9)
    assert result.amount == 1_111_110  # 1,234,567 × 90% = 1,111,110.3


def test_three_decimal_currency_rounds_to_a_chargeable_amount():
    lines = [QuoteLine("rental", "rental", 100_011, True)]
    result = quote(DEFAULT_POLICY, 0, "car", START, START - timedelta(days=4), TZ, lines, "KWD", 10**9)
    assert result.amount == 50_010


def test_refund_is_capped_by_what_is_left_of_the_payment():
    result = quote(DEFAULT_POLICY, 0, "car", START, START - timedelta(days=10), TZ, RENTAL, "EUR", 300_000)
    assert result.amount == 300_000


def test_policy_validation_refuses_missing_categories_and_bad_tiers():
    with pytest.raises(ValueError, match="each category"):
        valid_policy({"car": DEFAULT_POLICY["car"]}, list(DEFAULT_POLICY))
    bad = {**DEFAULT_POLICY, "car": [{"notice": 7, "unit": "weeks", "refund_bp": 10000}]}
    with pytest.raises(ValueError, match="unit"):
        valid_policy(bad, list(DEFAULT_POLICY))
    over = {**DEFAULT_POLICY, "car": [{"notice": 7, "unit": "days", "refund_bp": 10001}]}
    with pytest.raises(ValueError, match="10,000"):
        valid_policy(over, list(DEFAULT_POLICY))


def test_settings_notation_round_trips():
    from midas.services.refund_policy import format_tiers, parse_tiers

    assert format_tiers(DEFAULT_POLICY["jet"]) == "14d:90, 72h:50, 0h:0"
    assert parse_tiers("14d:90, 72h:50.5, 0h:0") == [
        {"notice": 14, "unit": "days", "refund_bp": 9000}, {"notice": 72, "unit": "hours", "refund_bp": 5050},
        {"notice": 0, "unit": "hours", "refund_bp": 0}]
    with pytest.raises(ValueError, match="7w:100"):
        parse_tiers("7w:100")
