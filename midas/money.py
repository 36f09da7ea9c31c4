"""Money as integer minor units plus an ISO 4217 code; formatting and the one rounding rule."""

from __future__ import annotations

# ISO 4217 minor-unit exponents that differ from 2 (Stripe's zero-decimal list, plus 3-decimal dinars).
EXPONENTS = {
    "BIF": 0, "CLP": 0, "DJF": 0, "GNF": 0, "JPY": 0, "KMF": 0, "KRW": 0, "MGA": 0, "PYG": 0,
    "RWF": 0, "UGX": 0, "VND": 0, "VUV": 0, "XAF": 0, "XOF": 0, "XPF": 0,
    "BHD": 3, "JOD": 3, "KWD": 3, "OMR": 3, "TND": 3,
}
SYMBOLS = {"USD": "$", "EUR": "€", "GBP": "£", "JPY": "¥", "CHF": "CHF ", "AED": "AED ", "KRW": "₩"}


def exponent(currency: str) -> int:
    return EXPONENTS.get(currency.upper(), 2)


def format_money(amount: int | None, currency: str) -> str:
    """1234550, 'EUR' → '€12,345.50'; 120000, 'JPY' → '¥120,000'."""
    if amount is None:
        return "—"
    digits = exponent(currency)
    sign = "-" if amount < 0 else ""
    major, minor = divmod(abs(amount), 10**digits) if digits else (abs(amount), 0)
    text = f"{major:,}" + (f".{minor:0{digits}d}" if digits else "")
    symbol = SYMBOLS.get(currency.upper(), currency.upper() + " ")
    return f"{sign}{symbol}{text}"


def parse_major(value: str, currency: str) -> int:
    """'12,345.50' in EUR → 1234550 minor units, exactly (no floats); ValueError if malformed."""
    text = value.strip().replace(",", "").replace(" ", "")
    digits = exponent(currency)
    whole, _, fraction = text.partition(".")
    if not whole.lstrip("-").isdigit() or (fraction and not fraction.isdigit()) or len(fraction) > digits:
        raise ValueError(f"{value!r} is not an amount in {currency} (at most {digits} decimals)")
    negative = whole.startswith("-")
    minor = int(whole.lstrip("-")) * 10**digits + int((fraction or "0").ljust(digits, "0") or 0)
    return -minor if negative else minor


def apply_bp(amount: int, basis_points: int) -> int:
    """amount × bp / 10,000, rounded half-up (away from zero for negatives): the one rounding step."""
    numerator = abs(amount) * basis_points
    rounded = (numerator + 5000) // 10000
    return -rounded if amount < 0 else rounded


def round_to_charge_unit(amount: int, currency: str) -> int:
    """Round half-up (away from zero) to what Stripe can charge: three-decimal amounts must end in 0."""
    if exponent(currency) != 3:
        return amount
    rounded = (abs(amount) + 5) // 10 * 10
    return -rounded if amount < 0 else rounded
