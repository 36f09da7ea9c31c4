"""Business settings and the state of each provider integration."""

from __future__ import annotations

from flask import current_app

from midas.extensions import db
from midas.models import Category, Role, Setting, StaffUser, Tier
from midas.services import DomainError, audit
from midas.services.auth import require_role

TIER_MULTIPLIERS = "tier_multipliers"
# What each service tier pays relative to the list price, in basis points, until an owner changes it.
DEFAULT_TIER_MULTIPLIERS = {Tier.STANDARD.value: 10000, Tier.PREMIUM.value: 13000, Tier.VVIP.value: 18000}
MAX_MULTIPLIER_BP = 100000
LATE_FEES = "late_fee_rules"
LATE_FEE_FIELDS = ("hourly_bp", "cap_bp", "grace_minutes")
# Late returns pay a share of the daily rate per started hour, capped; a short grace period is free.
DEFAULT_LATE_FEES = {
    Category.CAR.value: {"hourly_bp": 1500, "cap_bp": 20000, "grace_minutes": 30},
    Category.YACHT.value: {"hourly_bp": 2000, "cap_bp": 20000, "grace_minutes": 30},
    Category.JET.value: {"hourly_bp": 2500, "cap_bp": 30000, "grace_minutes": 15},
    Category.PROPERTY.value: {"hourly_bp": 1000, "cap_bp": 10000, "grace_minutes": 60},
}


def integrations() -> list[dict]:
    """Which providers this deployment is configured for (never the secrets themselves)."""
    config = current_app.config
    return [
        {"name": "Stripe (cards)", "on": bool(config["STRIPE_SECRET_KEY"]), "detail": config["STRIPE_API_BASE"]},
        {"name": "Stripe webhooks", "on": bool(config["STRIPE_WEBHOOK_SECRETS"]),
         "detail": f"{len(config['STRIPE_WEBHOOK_SECRETS'])} signing secret(s)"},
        {"name": "PayPal", "on": bool(config["PAYPAL_CLIENT_ID"] and config["PAYPAL_CLIENT_SECRET"]),
         "detail": config["PAYPAL_API_BASE"]},
        {"name": "Email", "on": bool(config["EMAIL_PROVIDERS"]),
         "detail": " → ".join(config["EMAIL_PROVIDERS"]) or "captured locally"},
        {"name": "SMS (Twilio)", "on": bool(config["TWILIO_ACCOUNT_SID"]), "detail": config["TWILIO_API_BASE"]},
        {"name": "Slack alerts", "on": bool(config["SLACK_WEBHOOK_URL"]), "detail": ""},
        {"name": "Redis queues", "on": bool(config["REDIS_URL"]), "detail": "jobs run in-process" if not
         config["REDIS_URL"] else "RQ queues high, default, low"},
    ]


def get_tier_multipliers() -> dict[str, int]:
    """The price multiplier of each service tier in basis points (the defaults until an owner sets them)."""
    setting = db.session.get(Setting, TIER_MULTIPLIERS)
    return {**DEFAULT_TIER_MULTIPLIERS, **(setting.value if setting else {})}


def set_tier_multipliers(actor: StaffUser, values: dict[str, int]) -> dict[str, int]:
    """Owner only: replace every tier's multiplier, audited and versioned."""
    return _save(actor, TIER_MULTIPLIERS, _valid_tier_multipliers(values), get_tier_multipliers())


def get_late_fee_rules() -> dict[str, dict[str, int]]:
    """Per category: hourly late fee and its cap (basis points of the daily rate), and the grace period."""
    setting = db.session.get(Setting, LATE_FEES)
    return {**DEFAULT_LATE_FEES, **(setting.value if setting else {})}


def set_late_fee_rules(actor: StaffUser, rules: dict[str, dict[str, int]]) -> dict[str, dict[str, int]]:
    """Owner only: replace the late-fee rules of every category, audited and versioned."""
    return _save(actor, LATE_FEES, _valid_late_fees(rules), get_late_fee_rules())


def _save(actor: StaffUser, key: str, value: dict, before: dict) -> dict:
    require_role(actor, Role.OWNER)
    setting = db.session.get(Setting, key)
    if setting is None:
        setting = Setting(key=key, value=value, version=1)
        db.session.add(setting)
    else:
        setting.value = value
        setting.version += 1
    setting.updated_by_id = actor.id
    audit.record(f"settings.{key}", "setting", key, actor=actor, before=_flat(before), after=_flat(value))
    db.session.commit()
    return value


def _flat(value: dict) -> dict:
    return {key: str(item) if isinstance(item, dict) else item for key, item in value.items()}


def _valid_late_fees(rules: dict[str, dict[str, int]]) -> dict[str, dict[str, int]]:
    if set(rules) != set(Category.values()):
        raise DomainError(f"Give late-fee rules for each category: {', '.join(Category.values())}.")
    for category, rule in rules.items():
        if set(rule) != set(LATE_FEE_FIELDS) or not all(isinstance(v, int) and v >= 0 for v in rule.values()):
            raise DomainError(f"{category}: give {', '.join(LATE_FEE_FIELDS)} as whole numbers, none negative.")
        if rule["hourly_bp"] > 10000 or rule["cap_bp"] > 100000 or rule["grace_minutes"] > 24 * 60:
            raise DomainError(f"{category}: at most 10,000 bp an hour, a cap of 100,000 bp and 24 hours' grace.")
    return {category: dict(rules[category]) for category in Category.values()}


def _valid_tier_multipliers(values: dict[str, int]) -> dict[str, int]:
    if set(values) != set(Tier.values()):
        raise DomainError(f"Give a multiplier for each tier, and only those: {', '.join(Tier.values())}.")
    for tier, bp in values.items():
        # bool is an int in Python; a checkbox value must not become a 0.0001× multiplier.
        if not isinstance(bp, int) or isinstance(bp, bool) or not 1 <= bp <= MAX_MULTIPLIER_BP:
            raise DomainError(f"The {tier} multiplier must be a whole number of basis points "
                              f"from 1 to {MAX_MULTIPLIER_BP:,} (10,000 is the list price).")
    return {tier: values[tier] for tier in Tier.values()}
