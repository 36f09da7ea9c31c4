"""Money is integers in minor units; the one rounding step is half-up."""

import pytest

from midas.money import apply_bp, exponent, format_money, parse_major


def test_amounts_format_with_the_currency_symbol_and_minor_units():
    assert format_money(1234550, "EUR") == "€12,345.50"
    assert format_money(-500, "GBP") == "-£5.00"
    assert format_money(None, "USD") == "—"


def test_zero_decimal_currencies_have_no_minor_unit():
    assert exponent("JPY") == 0 and exponent("KRW") == 0
    assert format_money(350000, "JPY") == "¥350,000"
    assert parse_major("350,000", "JPY") == 350000
    with pytest.raises(ValueError):
        parse_major("350000.5", "JPY")


def test_three_decimal_currencies_keep_three_places():
    assert format_money(12345, "KWD") == "KWD 12.345"
    assert parse_major("1.5", "BHD") == 1500


def test_parsing_a_typed_amount_is_exact_without_floats():
    assert parse_major("0.29", "USD") == 29  # float(0.29) * 100 would be 28.999…
    assert parse_major("1,234.5", "EUR") == 123450
    for bad in ("", "abc", "1.234", "1.2.3", "1e5"):
        with pytest.raises(ValueError):
            parse_major(bad, "EUR")


def test_basis_points_round_half_up_once():
    assert apply_bp(1000, 1250) == 125
    assert apply_bp(1, 5000) == 1  # 0.5 rounds up
    assert apply_bp(3, 5000) == 2  # 1.5 rounds up
    assert apply_bp(-3, 5000) == -2  # symmetric for discounts
