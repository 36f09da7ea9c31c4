"""Configuration read from the environment, with embedded defaults for a laptop."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
INSTANCE = ROOT / "instance"


def database_url(raw: str | None) -> str:
    """Normalise DATABASE_URL: Heroku's `postgres://` and plain `postgresql://` use psycopg 3."""
    if not raw:
        INSTANCE.mkdir(exist_ok=True)
        return f"sqlite:///{INSTANCE / 'midas.db'}"
    for prefix in ("postgres://", "postgresql://"):
        if raw.startswith(prefix):
            return "postgresql+psycopg://" + raw[len(prefix) :]
    return raw


def development_secret_key() -> str:
    """A stable random key kept in instance/ so sessions survive restarts on a laptop."""
    INSTANCE.mkdir(exist_ok=True)
    path = INSTANCE / "secret_key"
    if not path.exists():
        path.write_text(secrets.token_urlsafe(48))
        path.chmod(0o600)
    return path.read_text().strip()


def engine_options(url: str, env: dict[str, str]) -> dict:
    """Pool sizing for a 20-connection hosted database.

    Two gunicorn processes x (4 + 1) plus one worker dyno x (4 + 1) is 15, leaving room for
    the release phase and a one-off `heroku run`.
    """
    if url.startswith("sqlite"):
        return {"connect_args": {"timeout": 30}}
    return {
        "pool_pre_ping": True,
        "pool_size": int(env.get("DB_POOL_SIZE", "4")),
        "max_overflow": int(env.get("DB_MAX_OVERFLOW", "1")),
        "pool_recycle": 300,
        "pool_timeout": 10,
    }


class Config:
    """Built from an environment mapping, so tests can pass their own."""

    def __init__(self, env: dict[str, str] | None = None) -> None:
        env = dict(os.environ if env is None else env)
        self.ENV_NAME = env.get("MIDAS_ENV", "production" if env.get("DYNO") else "development")
        self.DEBUG = False
        self.TESTING = False
        self.SECRET_KEY = env.get("SECRET_KEY") or self._secret_key_fallback()
        self.SQLALCHEMY_DATABASE_URI = database_url(env.get("DATABASE_URL"))
        self.SQLALCHEMY_ENGINE_OPTIONS = engine_options(self.SQLALCHEMY_DATABASE_URI, env)
        self.REDIS_URL = env.get("REDIS_URL") or None
        self.RATELIMIT_STORAGE_URI = self.REDIS_URL or "memory://"
        self.RATELIMIT_KEY_PREFIX = env.get("RATELIMIT_KEY_PREFIX", "midas-limits")
        self.RATELIMIT_HEADERS_ENABLED = True
        # Redis down must not turn a checkout or a login into a 500: limits fall back to per-process memory.
        self.RATELIMIT_IN_MEMORY_FALLBACK_ENABLED = True
        self.RATELIMIT_SWALLOW_ERRORS = True
        # A hung Redis (accepting, never answering) must cost a request a second, not the router's 30.
        self.RATELIMIT_STORAGE_OPTIONS = {"socket_connect_timeout": 1, "socket_timeout": 1} if self.REDIS_URL else {}
        self.LOGIN_RATE_LIMIT = env.get("LOGIN_RATE_LIMIT", "10 per minute")
        self.WTF_CSRF_TIME_LIMIT = None  # the token lives as long as the session
        self.SESSION_COOKIE_HTTPONLY = True
        self.SESSION_COOKIE_SAMESITE = "Lax"
        self.SESSION_COOKIE_SECURE = self.is_production
        self.REMEMBER_COOKIE_SECURE = self.is_production
        self.PERMANENT_SESSION_LIFETIME = 12 * 3600
        self.MAX_CONTENT_LENGTH = 2 * 1024 * 1024
        self.PROXY_HOPS = int(env.get("PROXY_HOPS", "1"))
        self.STRIPE_SECRET_KEY = env.get("STRIPE_SECRET_KEY")
        self.STRIPE_PUBLISHABLE_KEY = env.get("STRIPE_PUBLISHABLE_KEY")
        self.STRIPE_WEBHOOK_SECRETS = _split(env.get("STRIPE_WEBHOOK_SECRET"))
        self.STRIPE_API_BASE = env.get("STRIPE_API_BASE", "https://api.stripe.com")
        self.PAYPAL_CLIENT_ID = env.get("PAYPAL_CLIENT_ID")
        self.PAYPAL_CLIENT_SECRET = env.get("PAYPAL_CLIENT_SECRET")
        self.PAYPAL_API_BASE = env.get("PAYPAL_API_BASE", "https://api-m.sandbox.paypal.com")
        self.PAYPAL_IPN_VERIFY_URL = env.get(
            "PAYPAL_IPN_VERIFY_URL", "https://ipnpb.sandbox.paypal.com/cgi-bin/webscr"
        )
        self.PAYPAL_RECEIVER_EMAIL = env.get("PAYPAL_RECEIVER_EMAIL")
        self.BANK_ACCOUNT_NAME = env.get("BANK_ACCOUNT_NAME") or self._demo("Midas Rentals Ltd (demo)")
        self.BANK_IBAN = env.get("BANK_IBAN") or self._demo("GB33 BUKB 2020 1555 5555 55")
        self.BANK_BIC = env.get("BANK_BIC") or self._demo("BUKBGB22")
        self.SMTP_URL = env.get("SMTP_URL")
        self.SENDGRID_API_KEY = env.get("SENDGRID_API_KEY")
        self.SENDGRID_API_BASE = env.get("SENDGRID_API_BASE", "https://api.sendgrid.com")
        self.MAILGUN_API_KEY = env.get("MAILGUN_API_KEY")
        self.MAILGUN_DOMAIN = env.get("MAILGUN_DOMAIN")
        self.MAILGUN_API_BASE = env.get("MAILGUN_API_BASE", "https://api.mailgun.net")
        self.EMAIL_PROVIDERS = _split(env.get("EMAIL_PROVIDERS")) or self._configured_email()
        self.MAIL_FROM = env.get("MAIL_FROM", "Midas Concierge <concierge@localhost>")
        self.TWILIO_ACCOUNT_SID = env.get("TWILIO_ACCOUNT_SID")
        self.TWILIO_AUTH_TOKEN = env.get("TWILIO_AUTH_TOKEN")
        self.TWILIO_FROM_NUMBER = env.get("TWILIO_FROM_NUMBER")
        self.TWILIO_API_BASE = env.get("TWILIO_API_BASE", "https://api.twilio.com")
        self.SLACK_WEBHOOK_URL = env.get("SLACK_WEBHOOK_URL")
        self.ALERT_EMAILS = _split(env.get("ALERT_EMAILS"))
        self.SENTRY_DSN = env.get("SENTRY_DSN")
        self.LOG_LEVEL = env.get("LOG_LEVEL", "INFO")
        # Links in messages sent by background jobs (no request to take the host from).
        self.PUBLIC_URL = env.get("PUBLIC_URL", "http://127.0.0.1:5000")
        # How often the home page refreshes its board (seconds); short in tests, never below one.
        self.HOME_REFRESH_SECONDS = max(1, int(env.get("HOME_REFRESH_SECONDS", "30")))

    @property
    def is_production(self) -> bool:
        return self.ENV_NAME == "production"

    def _demo(self, value: str) -> str | None:
        """A placeholder shown on a laptop; production shows nothing it was not given."""
        return None if self.is_production else value

    def _secret_key_fallback(self) -> str:
        if self.is_production:
            raise RuntimeError("SECRET_KEY must be set in production")
        return development_secret_key()

    def _configured_email(self) -> list[str]:
        chain = {"smtp": self.SMTP_URL, "sendgrid": self.SENDGRID_API_KEY, "mailgun": self.MAILGUN_API_KEY}
        return [name for name, setting in chain.items() if setting]

    def as_dict(self) -> dict:
        return {key: getattr(self, key) for key in dir(self) if key.isupper()}


class TestConfig(Config):
    """Testing settings on top of an explicit environment (never the developer's)."""

    __test__ = False  # not a pytest test class

    def __init__(self, env: dict[str, str] | None = None) -> None:
        base = {"MIDAS_ENV": "testing", "SECRET_KEY": "test-secret-key"}
        super().__init__({**base, **(env or {})})
        self.TESTING = True


def _split(value: str | None) -> list[str]:
    return [part.strip() for part in (value or "").split(",") if part.strip()]
