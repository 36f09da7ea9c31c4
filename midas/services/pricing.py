"""The pricing engine: what a stay costs, as lines that add up to the total.

Everything but `quote_for_item` is pure: plain values in, a `Quote` out. The rules, in line order:

- RENTAL: daily rate × days. Days are counted on the location's wall clock: ceil(duration / 24 h),
  so a week across a DST change is still 7 days; never fewer than the item's minimum days (or 1).
- SEASON: each priced day is a local calendar day (the first is the local start date). It takes the
  matching season rule (date range, and location / category when the rule names them) of highest
  priority, ties going to the more specific rule, then to the first given; no rule means 10,000 bp.
  The adjustment is daily rate × Σ(multiplier − 10,000) / 10,000: negative for off-peak days.
- TIER: (rental + season) × (tier multiplier − 10,000) / 10,000; premium tiers cost more.
- INSURANCE: the item's insurance rate on rental + season + tier.
- SERVICE_FEE: the location's fee on rental + season + tier; never refunded.
- TAX: the location's tax rate on the sum of every line above.
- The security deposit is shown beside the total, never in it.
Zero lines are left out, except RENTAL.

Rounding: money is integer minor units, rates are basis points. Each line is rounded once, half-up
(away from zero), by `apply_bp`; the total is the plain sum of the lines. Stripe charges
three-decimal currencies (KWD, BHD, JOD, OMR, TND) in multiples of 10, so there the daily rate and the
deposit are first rounded to 10 (`round_to_charge_unit`) and every line is computed in units of 10:
each is still rounded exactly once, and "days × rate" is exactly what is charged.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from sqlalchemy import or_, select

from midas.extensions import db
from midas.models import Item, LineKind, SeasonRule
from midas.money import apply_bp, exponent, format_money, round_to_charge_unit
from midas.services import DomainError, NotFound
from midas.services.settings import DEFAULT_TIER_MULTIPLIERS, get_tier_multipliers

LIST_PRICE_BP = 10000
DAY = timedelta(days=1)


class PricingError(DomainError):
    """The stay cannot be priced as asked (bad period, unknown tier)."""


@dataclass(frozen=True)
class ItemTerms:
    category: str
    currency: str
    daily_rate: int
    security_deposit: int = 0
    insurance_rate_bp: int = 0
    min_days: int = 1


@dataclass(frozen=True)
class LocationTerms:
    timezone: str
    tax_rate_bp: int = 0
    service_fee_bp: int = 0
    location_id: int | None = None


@dataclass(frozen=True)
class SeasonTerms:
    name: str
    starts_on: date
    ends_on: date  # inclusive
    multiplier_bp: int
    location_id: int | None = None
    category: str | None = None
    priority: int = 0

    def applies(self, day: date, item: ItemTerms, location: LocationTerms) -> bool:
        return (self.starts_on <= day <= self.ends_on
                and self.location_id in (None, location.location_id) and self.category in (None, item.category))

    @property
    def rank(self) -> tuple[int, int]:
        return self.priority, (self.location_id is not None) + (self.category is not None)


@dataclass(frozen=True)
class PriceLine:
    kind: LineKind
    description: str
    amount: int
    refundable: bool = True


@dataclass(frozen=True)
class Quote:
    currency: str
    days: int
    lines: tuple[PriceLine, ...]
    deposit: int  # refundable, held separately: not part of the total

    @property
    def total(self) -> int:
        return sum(line.amount for line in self.lines)


def quote_price(
    item: ItemTerms,
    location: LocationTerms,
    starts_at: datetime,
    ends_at: datetime,
    tier: str = "standard",
    seasons: tuple[SeasonTerms, ...] | list[SeasonTerms] = (),
    tier_multipliers: dict[str, int] | None = None,
) -> Quote:
    """Price a stay of `item` at `location` for a customer of `tier`: the lines, their total and the deposit."""
    multipliers = DEFAULT_TIER_MULTIPLIERS if tier_multipliers is None else tier_multipliers
    _check_period(starts_at, ends_at)
    if tier not in multipliers:
        raise PricingError(f"Unknown service tier {tier!r}: choose one of {', '.join(multipliers)}.")
    days = rental_days(item, location, starts_at, ends_at)
    day_rules = [_rule_for(day, item, location, seasons) for day in stay_dates(location, starts_at, days)]
    lines = _lines(item, location, days, day_rules, tier, multipliers[tier])
    shown = tuple(line for line in lines if line.amount or line.kind == LineKind.RENTAL)
    return Quote(item.currency, days, shown, round_to_charge_unit(item.security_deposit, item.currency))


def _check_period(starts_at: datetime, ends_at: datetime) -> None:
    if starts_at.tzinfo is None or ends_at.tzinfo is None:
        raise PricingError("Rental times must carry a time zone (a naive time is ambiguous).")
    if ends_at <= starts_at:
        raise PricingError("The end of the rental must be after its start.")


def rental_days(item: ItemTerms, location: LocationTerms, starts_at: datetime, ends_at: datetime) -> int:
    """Days charged: the local wall-clock duration rounded up to whole days, at least the item's minimum."""
    zone = ZoneInfo(location.timezone)
    wall = ends_at.astimezone(zone).replace(tzinfo=None) - starts_at.astimezone(zone).replace(tzinfo=None)
    return max(-(-wall // DAY), item.min_days, 1)


def stay_dates(location: LocationTerms, starts_at: datetime, days: int) -> list[date]:
    """The local calendar days a stay is priced by, from the local start date."""
    first = starts_at.astimezone(ZoneInfo(location.timezone)).date()
    return [first + timedelta(days=offset) for offset in range(days)]


def _rule_for(day: date, item: ItemTerms, location: LocationTerms, seasons) -> SeasonTerms | None:
    matching = [rule for rule in seasons if rule.applies(day, item, location)]
    return max(matching, key=lambda rule: rule.rank, default=None)


def _lines(item: ItemTerms, location: LocationTerms, days: int, day_rules: list[SeasonTerms | None],
           tier: str, tier_bp: int) -> list[PriceLine]:
    """Every line, computed in charge units (see the module docstring) with one half-up rounding each."""
    unit = 10 if exponent(item.currency) == 3 else 1
    rate = round_to_charge_unit(item.daily_rate, item.currency) // unit
    rental = rate * days
    season = _share(rate, sum((rule.multiplier_bp if rule else LIST_PRICE_BP) - LIST_PRICE_BP for rule in day_rules))
    tier_extra = _share(rental + season, tier_bp - LIST_PRICE_BP)
    base = rental + season + tier_extra
    insurance = apply_bp(base, item.insurance_rate_bp)
    service_fee = apply_bp(base, location.service_fee_bp)
    tax = apply_bp(base + insurance + service_fee, location.tax_rate_bp)
    return [
        PriceLine(LineKind.RENTAL, _rental_text(days, format_money(rate * unit, item.currency)), rental * unit),
        PriceLine(LineKind.SEASON, _season_text(day_rules), season * unit),
        PriceLine(LineKind.TIER, _tier_text(tier, tier_bp), tier_extra * unit),
        PriceLine(LineKind.INSURANCE, f"Insurance ({_percent(item.insurance_rate_bp)})", insurance * unit),
        PriceLine(LineKind.SERVICE_FEE, f"Service fee ({_percent(location.service_fee_bp)})", service_fee * unit,
                  refundable=False),
        PriceLine(LineKind.TAX, f"Tax ({_percent(location.tax_rate_bp)})", tax * unit),
    ]


def _share(amount: int, bp: int) -> int:
    """amount × bp / 10,000, half-up away from zero for negative bp too (apply_bp wants bp ≥ 0)."""
    return apply_bp(amount if bp >= 0 else -amount, abs(bp))


def _rental_text(days: int, rate: str) -> str:
    return f"{days} day{'s' if days != 1 else ''} × {rate}"


def _season_text(day_rules: list[SeasonTerms | None]) -> str:
    counts = Counter(rule for rule in day_rules if rule and rule.multiplier_bp != LIST_PRICE_BP)
    parts = [f"{rule.name} {n} day{'s' if n != 1 else ''} "
             f"({_percent(rule.multiplier_bp - LIST_PRICE_BP, signed=True)})" for rule, n in counts.items()]
    return "Season: " + ", ".join(parts)


def _tier_text(tier: str, tier_bp: int) -> str:
    name = "VVIP" if tier == "vvip" else tier.capitalize()
    return f"{name} service tier ({_percent(tier_bp - LIST_PRICE_BP, signed=True)})"


def _percent(bp: int, signed: bool = False) -> str:
    return f"{'+' if signed and bp > 0 else ''}{Decimal(bp) / 100:f}%"


def quote_for_item(item_id: int, starts_at: datetime, ends_at: datetime, tier: str) -> Quote:
    """Price a stay of a stored item for a customer of `tier`, with the season rules and tier multipliers in force."""
    item = db.session.get(Item, item_id)
    if item is None:
        raise NotFound("No such item.")
    item_terms, location_terms = terms_of(item)
    _check_period(starts_at, ends_at)
    seasons = _season_terms(item_terms, location_terms, starts_at, ends_at)
    return quote_price(item_terms, location_terms, starts_at, ends_at, tier, seasons, get_tier_multipliers())


def terms_of(item: Item) -> tuple[ItemTerms, LocationTerms]:
    """The pricing terms of a stored item and its location."""
    location = item.location
    return (ItemTerms(item.category, item.currency, item.daily_rate, item.security_deposit, item.insurance_rate_bp,
                      item.min_days),
            LocationTerms(location.timezone, location.tax_rate_bp, location.service_fee_bp, location.id))


def season_terms(rule: SeasonRule) -> SeasonTerms:
    return SeasonTerms(rule.name, rule.starts_on, rule.ends_on, rule.multiplier_bp, rule.location_id, rule.category,
                       rule.priority)


def _season_terms(item: ItemTerms, location: LocationTerms, starts_at: datetime,
                  ends_at: datetime) -> list[SeasonTerms]:
    dates = stay_dates(location, starts_at, rental_days(item, location, starts_at, ends_at))
    rules = db.session.scalars(
        select(SeasonRule)
        .where(SeasonRule.starts_on <= dates[-1], SeasonRule.ends_on >= dates[0])
        .where(or_(SeasonRule.location_id.is_(None), SeasonRule.location_id == location.location_id))
        .where(or_(SeasonRule.category.is_(None), SeasonRule.category == item.category))
        .order_by(SeasonRule.id)
    )
    return [season_terms(rule) for rule in rules]
