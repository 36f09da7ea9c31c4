"""Business settings and the state of each provider integration."""

from __future__ import annotations

from flask import current_app
from sqlalchemy.orm import Session

from midas.extensions import db
from midas.models import Category, ErrorCategory, Role, Setting, Severity, StaffUser, Tier
from midas.money import exponent, parse_major
from midas.services import DomainError, InvalidInput, audit
from midas.services.auth import require_role
from midas.services.refund_policy import DEFAULT_POLICY, format_tiers, parse_tiers, valid_policy

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


ALERT_RULES = "alert_rules"
ALERT_RULE_FIELDS = ("enabled", "min_severity", "events", "minutes")
# Per error category: alert when `events` errors of at least `min_severity` happen within `minutes`.
DEFAULT_ALERT_RULES = {
    ErrorCategory.PAYMENT.value: {"enabled": True, "min_severity": Severity.MEDIUM.value, "events": 3, "minutes": 15},
    ErrorCategory.BOOKING.value: {"enabled": True, "min_severity": Severity.HIGH.value, "events": 3, "minutes": 15},
    ErrorCategory.AUTHENTICATION.value: {"enabled": True, "min_severity": Severity.MEDIUM.value, "events": 20,
                                         "minutes": 10},
    ErrorCategory.WEBHOOK.value: {"enabled": True, "min_severity": Severity.MEDIUM.value, "events": 5, "minutes": 15},
    ErrorCategory.NOTIFICATION.value: {"enabled": True, "min_severity": Severity.MEDIUM.value, "events": 10,
                                       "minutes": 30},
    ErrorCategory.SYSTEM.value: {"enabled": True, "min_severity": Severity.HIGH.value, "events": 5, "minutes": 15},
}


def get_alert_rules(session: Session | None = None) -> dict[str, dict]:
    """Per error category: on or off, minimum severity, and N events in M minutes (`session`: capture's own)."""
    setting = (session or db.session).get(Setting, ALERT_RULES)
    return {**DEFAULT_ALERT_RULES, **(setting.value if setting else {})}


def set_alert_rules(actor: StaffUser, rules: dict[str, dict]) -> dict[str, dict]:
    """Owner only: replace the alert rule of every error category, audited and versioned."""
    return _save(actor, ALERT_RULES, _valid_alert_rules(rules), get_alert_rules())


def _valid_alert_rules(rules: dict[str, dict]) -> dict[str, dict]:
    if set(rules) != set(ErrorCategory.values()):
        raise DomainError(f"Give an alert rule for each category: {', '.join(ErrorCategory.values())}.")
    for category, rule in rules.items():
        if set(rule) != set(ALERT_RULE_FIELDS) or not isinstance(rule["enabled"], bool):
            raise DomainError(f"{category}: give {', '.join(ALERT_RULE_FIELDS)}.")
        if rule["min_severity"] not in Severity.values():
            raise DomainError(f"{category}: the minimum severity is one of {', '.join(Severity.values())}.")
        if not all(isinstance(rule[k], int) and not isinstance(rule[k], bool) for k in ("events", "minutes")) or \
                not 1 <= rule["events"] <= 10000 or not 1 <= rule["minutes"] <= 24 * 60:
            raise DomainError(f"{category}: from 1 to 10,000 events within 1 to 1,440 minutes.")
    return {category: {key: rules[category][key] for key in ALERT_RULE_FIELDS} for category in ErrorCategory.values()}


REFUND_POLICY = "refund_policy"
APPROVAL_THRESHOLDS = "refund_approval_thresholds"
# Refunds above these (minor units, per currency; about 5,000 USD each) wait for an admin's approval.
DEFAULT_APPROVAL_THRESHOLDS = {"USD": 500000, "EUR": 460000, "GBP": 395000, "CHF": 440000, "AED": 1835000,
                               "JPY": 75000000, "KRW": 7000000, "SGD": 650000, "HKD": 3900000}


def get_refund_policy() -> tuple[dict[str, list[dict]], int]:
    """The refund tiers of every category and the policy's version (0: the built-in defaults)."""
    setting = db.session.get(Setting, REFUND_POLICY)
    if setting is None:
        return DEFAULT_POLICY, 0
    return {**DEFAULT_POLICY, **setting.value}, setting.version


def set_refund_policy(actor: StaffUser, policy: dict[str, list[dict]]) -> dict[str, list[dict]]:
    """Owner only: replace the refund tiers of every category; refunds record the version they used."""
    try:
        cleaned = valid_policy(policy, Category.values())
    except ValueError as exc:
        raise DomainError(str(exc)) from exc
    return _save(actor, REFUND_POLICY, cleaned, get_refund_policy()[0])


def get_approval_thresholds() -> dict[str, int]:
    """Per currency, the refund amount (minor units) above which an admin must approve."""
    setting = db.session.get(Setting, APPROVAL_THRESHOLDS)
    return {**DEFAULT_APPROVAL_THRESHOLDS, **(setting.value if setting else {})}


def set_approval_thresholds(actor: StaffUser, thresholds: dict[str, int]) -> dict[str, int]:
    """Owner only: set the approval threshold of each listed currency (ISO codes, minor units)."""
    cleaned = {}
    for currency, amount in thresholds.items():
        code = str(currency).strip().upper()
        if len(code) != 3 or not code.isalpha():
            raise DomainError(f"{currency!r} is not an ISO 4217 currency code.")
        if not isinstance(amount, int) or isinstance(amount, bool) or amount < 0:
            raise DomainError(f"{code}: the threshold is a whole number of minor units, not negative.")
        cleaned[code] = amount
    return _save(actor, APPROVAL_THRESHOLDS, cleaned, get_approval_thresholds())


def refund_policy_form() -> dict[str, str]:
    """The refund policy and thresholds in the settings form's notation ('7d:100, 72h:50, 0h:0'; 'EUR 4600.00')."""
    policy, _ = get_refund_policy()
    values = {category: format_tiers(policy[category]) for category in Category.values()}
    values["thresholds"] = "\n".join(f"{code} {_major(amount, code)}"
                                     for code, amount in sorted(get_approval_thresholds().items()))
    return values


def _major(amount: int, currency: str) -> str:
    digits = exponent(currency)
    return f"{amount // 10**digits}.{amount % 10**digits:0{digits}d}" if digits else str(amount)


def save_refund_policy_form(actor: StaffUser, fields: dict[str, str]) -> None:
    """Parse and save the settings form; each part that changed gets a new version (InvalidInput names the field)."""
    policy = {category: _parsed(category, lambda c=category: parse_tiers(fields.get(c, ""))) for category in
              Category.values()}
    thresholds = _parsed("thresholds", lambda: _parse_thresholds(fields.get("thresholds", "")))
    if policy != get_refund_policy()[0]:
        try:
            set_refund_policy(actor, policy)
        except DomainError as exc:
            field = next((c for c in Category.values() if str(exc).startswith(c)), Category.CAR.value)
            raise InvalidInput(str(exc), field) from exc
    if thresholds != get_approval_thresholds():
        set_approval_thresholds(actor, thresholds)


def _parsed(field: str, parse):
    try:
        return parse()
    except ValueError as exc:
        raise InvalidInput(str(exc), field) from exc


def _parse_thresholds(text: str) -> dict[str, int]:
    thresholds = {}
    for line in filter(None, (raw.strip() for raw in text.splitlines())):
        code, _, amount = line.partition(" ")
        code = code.upper()
        if len(code) != 3 or not code.isalpha():
            raise ValueError(f"{line!r}: write one currency a line, e.g. EUR 4600.00.")
        thresholds[code] = parse_major(amount, code)
    return thresholds
