"""Business settings and the state of each provider integration."""

from __future__ import annotations

from flask import current_app

from midas.extensions import db
from midas.models import Role, Setting, StaffUser, Tier
from midas.services import DomainError, audit
from midas.services.auth import require_role

TIER_MULTIPLIERS = "tier_multipliers"
# What each service tier pays relative to the list price, in basis points, until an owner changes it.
DEFAULT_TIER_MULTIPLIERS = {Tier.STANDARD.value: 10000, Tier.PREMIUM.value: 13000, Tier.VVIP.value: 18000}
MAX_MULTIPLIER_BP = 100000


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
    require_role(actor, Role.OWNER)
    clean = _valid_tier_multipliers(values)
    before = get_tier_multipliers()
    setting = db.session.get(Setting, TIER_MULTIPLIERS)
    if setting is None:
        setting = Setting(key=TIER_MULTIPLIERS, value=clean, version=1)
        db.session.add(setting)
    else:
        setting.value = clean
        setting.version += 1
    setting.updated_by_id = actor.id
    audit.record("settings.tier_multipliers", "setting", TIER_MULTIPLIERS, actor=actor, before=before, after=clean)
    db.session.commit()
    return clean


def _valid_tier_multipliers(values: dict[str, int]) -> dict[str, int]:
    if set(values) != set(Tier.values()):
        raise DomainError(f"Give a multiplier for each tier, and only those: {', '.join(Tier.values())}.")
    for tier, bp in values.items():
        # bool is an int in Python; a checkbox value must not become a 0.0001× multiplier.
        if not isinstance(bp, int) or isinstance(bp, bool) or not 1 <= bp <= MAX_MULTIPLIER_BP:
            raise DomainError(f"The {tier} multiplier must be a whole number of basis points "
                              f"from 1 to {MAX_MULTIPLIER_BP:,} (10,000 is the list price).")
    return {tier: values[tier] for tier in Tier.values()}
