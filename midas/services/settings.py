"""Business settings and the state of each provider integration."""

from __future__ import annotations

from flask import current_app


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
