"""The refund policy engine: pure functions from a policy, a booking's lines and the notice given to a quote.

A policy maps each item category to tiers ordered from the longest notice down, e.g. cars
`[{"notice": 7, "unit": "days", "refund_bp": 10000}, {"notice": 72, "unit": "hours", "refund_bp": 5000},
{"notice": 0, "unit": "hours", "refund_bp": 0}]`. A tier applies when the cancellation comes at least
that long before the start, boundaries included. Days are calendar days on the location's wall clock
(7 days before 10:00 is 10:00 a week earlier, 167 or 169 hours across a DST change); hours are elapsed time.
Service fees are never refunded and the security-deposit hold is released in full, outside the policy.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from midas.money import apply_bp, round_to_charge_unit

UNITS = ("days", "hours")
# The defaults; owners change them on /settings (a new version each time).
DEFAULT_POLICY: dict[str, list[dict]] = {
    "car": [{"notice": 7, "unit": "days", "refund_bp": 10000}, {"notice": 72, "unit": "hours", "refund_bp": 5000},
            {"notice": 0, "unit": "hours", "refund_bp": 0}],
    "yacht": [{"notice": 30, "unit": "days", "refund_bp": 10000}, {"notice": 14, "unit": "days", "refund_bp": 5000},
              {"notice": 0, "unit": "hours", "refund_bp": 0}],
    "property": [{"notice": 30, "unit": "days", "refund_bp": 10000},
                 {"notice": 14, "unit": "days", "refund_bp": 5000}, {"notice": 0, "unit": "hours", "refund_bp": 0}],
    "jet": [{"notice": 14, "unit": "days", "refund_bp": 9000}, {"notice": 72, "unit": "hours", "refund_bp": 5000},
            {"notice": 0, "unit": "hours", "refund_bp": 0}],
}
NOT_REFUNDABLE_KINDS = frozenset({"service_fee"})


@dataclass(frozen=True)
class QuoteLine:
    """One line of the booking as the preview shows it: its amount and whether the policy applies to it."""

    description: str
    kind: str
    amount: int
    refundable: bool
    note: str = ""


@dataclass(frozen=True)
class RefundQuote:
    """What the policy allows: refundable base × percentage (rounded once, half-up), capped by what is left."""

    amount: int
    currency: str
    refund_bp: int
    rule: str
    policy_version: int
    refundable_base: int
    available: int
    lines: list[QuoteLine] = field(default_factory=list)


def tier_cutoff(starts_at: datetime, tier: dict, tz: str) -> datetime:
    """The last moment (UTC) at which a cancellation still earns this tier."""
    if tier["unit"] == "days":
        local_start = starts_at.astimezone(ZoneInfo(tz))
        wall_clock = local_start.replace(tzinfo=None) - timedelta(days=tier["notice"])
        return wall_clock.replace(tzinfo=ZoneInfo(tz)).astimezone(starts_at.tzinfo)
    return starts_at - timedelta(hours=tier["notice"])


def matching_tier(tiers: list[dict], starts_at: datetime, now: datetime, tz: str) -> dict:
    """The first tier (longest notice first) whose cutoff has not passed; no tier at all refunds nothing."""
    for tier in sorted(tiers, key=lambda t: _tier_length(t), reverse=True):
        if now <= tier_cutoff(starts_at, tier, tz):
            return tier
    return {"notice": 0, "unit": "hours", "refund_bp": 0}


def rule_label(category: str, tier: dict) -> str:
    """'car: 50% at 72+ hours' — what the refund records as the rule it used."""
    percent = f"{tier['refund_bp'] / 100:g}%"
    if tier["notice"] == 0:
        return f"{category}: {percent} with less notice"
    return f"{category}: {percent} at {tier['notice']}+ {tier['unit']} notice"


def quote(policy: dict[str, list[dict]], version: int, category: str, starts_at: datetime, now: datetime, tz: str,
          lines: list[QuoteLine], currency: str, available: int, already: int = 0) -> RefundQuote:
    """The policy refund: refundable lines × the tier's percentage, less refunds `already` made, capped at
    `available` (what is left of the payment)."""
    tier = matching_tier(policy.get(category, []), starts_at, now, tz)
    base = sum(line.amount for line in lines if line.refundable)
    amount = round_to_charge_unit(apply_bp(max(base, 0), tier["refund_bp"]), currency) - already
    return RefundQuote(amount=max(0, min(amount, available)), currency=currency, refund_bp=tier["refund_bp"],
                       rule=rule_label(category, tier), policy_version=version, refundable_base=base,
                       available=available, lines=lines)


def quote_lines(lines: list) -> list[QuoteLine]:
    """Booking lines as quote lines: service fees and lines marked non-refundable are excluded."""
    result = []
    for line in lines:
        fee = line.kind in NOT_REFUNDABLE_KINDS
        refundable = line.refundable and not fee
        note = "service fee: not refundable" if fee else ("" if refundable else "not refundable")
        result.append(QuoteLine(line.description, line.kind, line.amount, refundable, note))
    return result


def valid_policy(policy: dict[str, list[dict]], categories: list[str]) -> dict[str, list[dict]]:
    """The policy cleaned up, or ValueError saying what is wrong (tiers sorted longest notice first)."""
    if set(policy) != set(categories):
        raise ValueError(f"Give refund tiers for each category: {', '.join(categories)}.")
    cleaned = {}
    for category in categories:
        tiers = policy[category]
        if not isinstance(tiers, list) or not tiers:
            raise ValueError(f"{category}: give at least one tier.")
        for tier in tiers:
            _valid_tier(category, tier)
        cleaned[category] = sorted(({k: tier[k] for k in ("notice", "unit", "refund_bp")} for tier in tiers),
                                   key=_tier_length, reverse=True)
    return cleaned


def _valid_tier(category: str, tier: dict) -> None:
    if not isinstance(tier, dict) or set(tier) != {"notice", "unit", "refund_bp"} or tier["unit"] not in UNITS:
        raise ValueError(f"{category}: each tier has a notice, a unit (days or hours) and refund_bp.")
    for key in ("notice", "refund_bp"):
        value = tier[key]
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise ValueError(f"{category}: {key} must be a whole number, not negative.")
    if tier["refund_bp"] > 10000 or tier["notice"] > 3650:
        raise ValueError(f"{category}: at most 10,000 bp (100%) and 3,650 days of notice.")


def _tier_length(tier: dict) -> int:
    return tier["notice"] * (24 if tier["unit"] == "days" else 1)


def format_tiers(tiers: list[dict]) -> str:
    """[{7 days 100%}, {72 hours 50%}, {0 hours 0%}] → '7d:100, 72h:50, 0h:0' (the settings form's notation)."""
    return ", ".join(f"{t['notice']}{t['unit'][0]}:{t['refund_bp'] / 100:g}" for t in tiers)


def parse_tiers(text: str) -> list[dict]:
    """'7d:100, 72h:50, 0h:0' → tiers; percentages may have two decimals. ValueError says what is wrong."""
    tiers = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        notice, _, percent = part.partition(":")
        unit = {"d": "days", "h": "hours"}.get(notice.strip()[-1:].lower())
        whole, _, fraction = percent.strip().partition(".")
        if unit is None or not notice.strip()[:-1].isdigit() or not whole.isdigit() or \
                (fraction and not fraction.isdigit()) or len(fraction) > 2:
            raise ValueError(f"{part!r}: write each tier as notice and percentage, e.g. 7d:100 or 72h:50.")
        tiers.append({"notice": int(notice.strip()[:-1]), "unit": unit,
                      "refund_bp": int(whole) * 100 + int(fraction.ljust(2, "0") or 0)})
    return tiers
