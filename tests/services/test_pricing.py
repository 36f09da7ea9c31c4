"""The pricing engine: worked examples a manager can check by hand, and properties that hold for any stay."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from midas.extensions import db
from midas.models import Item, LineKind, Location, SeasonRule
from midas.money import round_to_charge_unit
from midas.services import NotFound
from midas.services import settings as business_settings
from midas.services.pricing import (
    DEFAULT_TIER_MULTIPLIERS,
    ItemTerms,
    LocationTerms,
    PricingError,
    SeasonTerms,
    quote_for_item,
    quote_price,
)
from tests.conftest import make_staff

LONDON = LocationTerms("Europe/London", tax_rate_bp=2000, service_fee_bp=500, location_id=1)
TOKYO = LocationTerms("Asia/Tokyo", tax_rate_bp=1000, service_fee_bp=500, location_id=2)
KUWAIT = LocationTerms("Asia/Kuwait", tax_rate_bp=500, service_fee_bp=500, location_id=3)
MONACO = LocationTerms("Europe/Monaco", tax_rate_bp=0, service_fee_bp=0, location_id=4)
CAR = ItemTerms("car", "GBP", daily_rate=100000, security_deposit=500000, insurance_rate_bp=300)


def local(zone: str, *args) -> datetime:
    return datetime(*args, tzinfo=ZoneInfo(zone))


def amounts(quote) -> dict[LineKind, int]:
    return {line.kind: line.amount for line in quote.lines}


def test_three_day_london_car_adds_insurance_fee_and_tax_on_top():
    quote = quote_price(CAR, LONDON, local("Europe/London", 2026, 6, 1, 10), local("Europe/London", 2026, 6, 4, 10))
    assert quote.days == 3
    assert [(line.kind, line.description, line.amount) for line in quote.lines] == [
        (LineKind.RENTAL, "3 days × £1,000.00", 300000),
        (LineKind.INSURANCE, "Insurance (3%)", 9000),
        (LineKind.SERVICE_FEE, "Service fee (5%)", 15000),
        (LineKind.TAX, "Tax (20%)", 64800),  # 20% of 3,240.00: rental, insurance and fee
    ]
    assert quote.total == 388800 and quote.deposit == 500000
    assert [line.refundable for line in quote.lines] == [True, True, False, True]


def test_premium_customers_pay_the_tier_multiplier_before_insurance_fee_and_tax():
    quote = quote_price(CAR, LONDON, local("Europe/London", 2026, 6, 1, 10), local("Europe/London", 2026, 6, 4, 10),
                        tier="premium")
    assert amounts(quote) == {LineKind.RENTAL: 300000, LineKind.TIER: 90000, LineKind.INSURANCE: 11700,
                              LineKind.SERVICE_FEE: 19500, LineKind.TAX: 84240}
    assert quote.lines[1].description == "Premium service tier (+30%)"
    assert quote.total == 505440


def test_yen_prices_are_exact_whole_yen():
    lamborghini = ItemTerms("car", "JPY", daily_rate=333333, security_deposit=1000000)
    quote = quote_price(lamborghini, TOKYO, local("Asia/Tokyo", 2026, 4, 1, 9), local("Asia/Tokyo", 2026, 4, 2, 9))
    assert [(line.description, line.amount) for line in quote.lines] == [
        ("1 day × ¥333,333", 333333),
        ("Service fee (5%)", 16667),  # 16,666.65 rounds half-up once
        ("Tax (10%)", 35000),
    ]
    assert quote.total == 385000 and all(type(line.amount) is int for line in quote.lines)


def test_kuwaiti_dinar_lines_all_end_in_zero_for_stripe():
    cullinan = ItemTerms("car", "KWD", daily_rate=350125, security_deposit=5000005, insurance_rate_bp=250)
    quote = quote_price(cullinan, KUWAIT, local("Asia/Kuwait", 2026, 2, 1, 10), local("Asia/Kuwait", 2026, 2, 4, 10))
    # The daily rate is first brought to a chargeable 350.130; each line is then rounded once, to 10 fils.
    assert [(line.description, line.amount) for line in quote.lines] == [
        ("3 days × KWD 350.130", 1050390),
        ("Insurance (2.5%)", 26260),  # 26.25975 → 26.260
        ("Service fee (5%)", 52520),  # 52.5195 → 52.520
        ("Tax (5%)", 56460),  # 5% of 1,129.170 = 56.4585 → 56.460
    ]
    assert quote.total == 1185630 and quote.deposit == 5000010


def test_round_to_charge_unit_rounds_three_decimal_currencies_half_up_to_tens():
    assert round_to_charge_unit(12345, "KWD") == 12350
    assert round_to_charge_unit(12344, "BHD") == 12340
    assert round_to_charge_unit(-15, "OMR") == -20
    assert round_to_charge_unit(12345, "EUR") == 12345 and round_to_charge_unit(12345, "JPY") == 12345


GRAND_PRIX = SeasonTerms("Grand Prix", date(2026, 5, 21), date(2026, 5, 24), 20000, location_id=4, priority=10)
MAY = SeasonTerms("May shoulder", date(2026, 5, 1), date(2026, 5, 31), 11000)


def test_a_stay_spanning_the_grand_prix_is_priced_day_by_day():
    car = ItemTerms("car", "EUR", daily_rate=200000)
    quote = quote_price(car, MONACO, local("Europe/Monaco", 2026, 5, 19, 10), local("Europe/Monaco", 2026, 5, 23, 10),
                        seasons=[MAY, GRAND_PRIX])
    # 19 and 20 May at +10%, 21 and 22 May at the Grand Prix's +100% (higher priority than the May rule).
    assert amounts(quote) == {LineKind.RENTAL: 800000, LineKind.SEASON: 440000}
    assert quote.lines[1].description == "Season: May shoulder 2 days (+10%), Grand Prix 2 days (+100%)"
    assert quote.total == 200000 * (11000 + 11000 + 20000 + 20000) // 10000


def test_off_peak_days_are_a_discount_line():
    low = SeasonTerms("Low season", date(2026, 11, 1), date(2026, 11, 30), 7000)
    quote = quote_price(ItemTerms("yacht", "EUR", daily_rate=1000000), MONACO, local("Europe/Monaco", 2026, 10, 30, 10),
                        local("Europe/Monaco", 2026, 11, 3, 10), seasons=[low])
    # 30 and 31 October at list price, 1 and 2 November at 70%.
    assert amounts(quote)[LineKind.SEASON] == -2 * 300000
    assert quote.lines[1].description == "Season: Low season 2 days (-30%)"
    assert quote.total == 4 * 1000000 - 600000


def test_season_days_follow_the_locations_calendar_not_utc():
    car = ItemTerms("car", "JPY", daily_rate=100000)
    grand_prix_tokyo = SeasonTerms("Peak", date(2026, 5, 21), date(2026, 5, 21), 15000)
    starts = local("Asia/Tokyo", 2026, 5, 21, 8)  # still 20 May in UTC
    quote = quote_price(car, TOKYO, starts, starts + timedelta(hours=20), seasons=[grand_prix_tokyo])
    assert amounts(quote)[LineKind.SEASON] == 50000


def test_rules_for_another_location_or_category_do_not_apply():
    elsewhere = SeasonTerms("Dubai peak", date(2026, 1, 1), date(2026, 12, 31), 30000, location_id=99, priority=50)
    yachts = SeasonTerms("Yacht regatta", date(2026, 1, 1), date(2026, 12, 31), 30000, category="yacht", priority=50)
    quote = quote_price(CAR, LONDON, local("Europe/London", 2026, 6, 1, 10), local("Europe/London", 2026, 6, 2, 10),
                        seasons=[elsewhere, yachts])
    assert LineKind.SEASON not in amounts(quote)


def test_equal_priority_goes_to_the_more_specific_rule():
    general = SeasonTerms("Summer", date(2026, 6, 1), date(2026, 8, 31), 12000)
    cars = SeasonTerms("Summer cars", date(2026, 6, 1), date(2026, 8, 31), 15000, category="car")
    quote = quote_price(CAR, LONDON, local("Europe/London", 2026, 6, 1, 10), local("Europe/London", 2026, 6, 2, 10),
                        seasons=[general, cars])
    assert amounts(quote)[LineKind.SEASON] == 50000


def test_villa_minimum_stay_is_charged_even_for_a_shorter_request():
    villa = ItemTerms("property", "EUR", daily_rate=500000, min_days=7)
    quote = quote_price(villa, MONACO, local("Europe/Monaco", 2026, 7, 1, 15), local("Europe/Monaco", 2026, 7, 4, 11))
    assert quote.days == 7 and quote.lines[0].description == "7 days × €5,000.00"


def test_days_are_counted_on_the_local_clock_across_daylight_saving_changes():
    paris = LocationTerms("Europe/Paris")
    car = ItemTerms("car", "EUR", daily_rate=100000)
    spring = quote_price(car, paris, local("Europe/Paris", 2026, 3, 28, 10), local("Europe/Paris", 2026, 3, 31, 10))
    autumn = quote_price(car, paris, local("Europe/Paris", 2026, 10, 24, 10), local("Europe/Paris", 2026, 10, 27, 10))
    assert spring.days == autumn.days == 3  # 71 and 73 real hours
    late = quote_price(car, paris, local("Europe/Paris", 2026, 6, 1, 10), local("Europe/Paris", 2026, 6, 2, 11))
    assert late.days == 2  # an hour over the day is a second day


def test_bad_requests_are_refused_with_a_reason():
    starts = datetime(2026, 6, 1, 10, tzinfo=UTC)
    with pytest.raises(PricingError, match="after its start"):
        quote_price(CAR, LONDON, starts, starts)
    with pytest.raises(PricingError, match="time zone"):
        quote_price(CAR, LONDON, starts.replace(tzinfo=None), starts + timedelta(days=1))
    with pytest.raises(PricingError, match="Unknown service tier 'gold'"):
        quote_price(CAR, LONDON, starts, starts + timedelta(days=1), tier="gold")


def test_free_extras_are_not_shown_as_zero_lines():
    quote = quote_price(ItemTerms("jet", "USD", daily_rate=5000000), LocationTerms("America/New_York"),
                        datetime(2026, 6, 1, tzinfo=UTC), datetime(2026, 6, 2, tzinfo=UTC))
    assert [line.kind for line in quote.lines] == [LineKind.RENTAL] and quote.deposit == 0


# Properties -------------------------------------------------------------------------------------------------------

CURRENCIES = ["GBP", "EUR", "USD", "JPY", "KRW", "KWD", "BHD"]
ZONES = ["Europe/London", "Europe/Paris", "Asia/Tokyo", "Asia/Kuwait", "America/New_York", "Australia/Lord_Howe"]
LINE_ORDER = list(LineKind)
basis_points = st.integers(0, 10000)


@st.composite
def stays(draw, currencies=CURRENCIES):
    item = ItemTerms(draw(st.sampled_from(["car", "yacht", "jet", "property"])), draw(st.sampled_from(currencies)),
                     draw(st.integers(1, 10**9)), draw(st.integers(0, 10**10)), draw(basis_points),
                     draw(st.integers(1, 14)))
    location = LocationTerms(draw(st.sampled_from(ZONES)), draw(basis_points), draw(basis_points), location_id=1)
    starts = draw(st.datetimes(datetime(2025, 1, 1), datetime(2027, 12, 31), timezones=st.just(UTC)))
    seasons = draw(st.lists(season_rules(starts.date()), max_size=4))
    ends = starts + timedelta(hours=draw(st.integers(1, 24 * 40)))
    return item, location, starts, ends, draw(st.sampled_from(list(DEFAULT_TIER_MULTIPLIERS))), seasons


def season_rules(around: date):
    return st.builds(
        lambda offset, length, multiplier, location_id, category, priority: SeasonTerms(
            "Rule", around + timedelta(days=offset), around + timedelta(days=offset + length), multiplier,
            location_id, category, priority),
        st.integers(-10, 40), st.integers(0, 20), st.integers(1, 30000), st.sampled_from([None, 1, 2]),
        st.sampled_from([None, "car", "yacht"]), st.integers(0, 3),
    )


tiers = st.fixed_dictionaries({tier: st.integers(1, 100000) for tier in DEFAULT_TIER_MULTIPLIERS})
PROPERTY = settings(max_examples=200, deadline=None)


@PROPERTY
@given(stays(), tiers)
def test_lines_add_up_to_the_total_in_their_fixed_order(stay, multipliers):
    quote = quote_price(*stay, tier_multipliers=multipliers)
    assert quote.total == sum(line.amount for line in quote.lines)
    kinds = [line.kind for line in quote.lines]
    assert kinds[0] == LineKind.RENTAL and len(set(kinds)) == len(kinds)
    assert kinds == sorted(kinds, key=LINE_ORDER.index)
    assert all(line.amount != 0 for line in quote.lines[1:])


@PROPERTY
@given(stays(), tiers)
def test_a_total_is_never_negative(stay, multipliers):
    assert quote_price(*stay, tier_multipliers=multipliers).total >= 0


@PROPERTY
@given(stays(), st.integers(1, 24 * 10), tiers)
def test_a_longer_stay_never_costs_less(stay, extra_hours, multipliers):
    item, location, starts, ends, tier, seasons = stay
    shorter = quote_price(item, location, starts, ends, tier, seasons, multipliers)
    longer = quote_price(item, location, starts, ends + timedelta(hours=extra_hours), tier, seasons, multipliers)
    assert longer.days >= shorter.days and longer.total >= shorter.total


@PROPERTY
@given(stays(currencies=["JPY", "KRW"]))
def test_zero_decimal_currencies_are_exact_whole_units(stay):
    quote = quote_price(*stay)
    item = stay[0]
    assert all(type(line.amount) is int for line in quote.lines) and type(quote.total) is int
    assert quote.lines[0].amount == item.daily_rate * quote.days  # no unit rounding at all
    assert "." not in quote.lines[0].description


@PROPERTY
@given(stays(currencies=["KWD", "BHD"]), tiers)
def test_three_decimal_currency_lines_are_all_multiples_of_ten(stay, multipliers):
    quote = quote_price(*stay, tier_multipliers=multipliers)
    assert all(line.amount % 10 == 0 for line in quote.lines) and quote.deposit % 10 == 0


# The loader --------------------------------------------------------------------------------------------------------

@pytest.fixture
def monaco_car(app) -> Item:
    monaco = Location(code="MCO", name="Monaco", city="Monaco", country="MC", timezone="Europe/Monaco",
                      currency="EUR", tax_rate_bp=2000, service_fee_bp=500)
    car = Item(location=monaco, category="car", name="Ferrari SF90 Stradale", currency="EUR", daily_rate=200000,
               security_deposit=1000000, insurance_rate_bp=0, min_days=1)
    db.session.add_all([monaco, car,
                        SeasonRule(name="Grand Prix", location=monaco, starts_on=date(2026, 5, 21),
                                   ends_on=date(2026, 5, 24), multiplier_bp=20000, priority=10),
                        SeasonRule(name="Yacht week", category="yacht", starts_on=date(2026, 5, 1),
                                   ends_on=date(2026, 5, 31), multiplier_bp=30000, priority=20),
                        SeasonRule(name="Last year", starts_on=date(2025, 5, 1), ends_on=date(2025, 5, 31),
                                   multiplier_bp=30000, priority=20)])
    db.session.commit()
    return car


def test_quote_for_item_uses_the_stored_seasons_and_the_owners_tier_multipliers(monaco_car):
    business_settings.set_tier_multipliers(make_staff("owner"), {"standard": 10000, "premium": 15000, "vvip": 20000})
    starts = local("Europe/Monaco", 2026, 5, 20, 10)
    quote = quote_for_item(monaco_car.id, starts, starts + timedelta(days=2), "premium")
    assert amounts(quote) == {LineKind.RENTAL: 400000, LineKind.SEASON: 200000, LineKind.TIER: 300000,
                              LineKind.SERVICE_FEE: 45000, LineKind.TAX: 189000}
    assert quote.deposit == 1000000 and quote.currency == "EUR"


def test_quote_for_an_unknown_item_or_a_naive_time_is_refused(monaco_car):
    starts = datetime(2026, 5, 20, 10)
    with pytest.raises(NotFound):
        quote_for_item(monaco_car.id + 1, starts.replace(tzinfo=UTC), starts.replace(tzinfo=UTC) + timedelta(days=1),
                       "standard")
    with pytest.raises(PricingError, match="time zone"):
        quote_for_item(monaco_car.id, starts, starts + timedelta(days=1), "standard")
