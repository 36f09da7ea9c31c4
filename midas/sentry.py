"""Optional forwarding of captured errors to Sentry when SENTRY_DSN is set; the error log works the same without it.

Only what our own capture records is forwarded, scrubbed the same way: no request bodies, no local
variables, no personal data, and log lines stay breadcrumbs (the capture decides what is an error).
"""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask

log = logging.getLogger(__name__)
LEVELS = {"HIGH": "error", "MEDIUM": "warning", "LOW": "info"}


def init_app(app: Flask) -> bool:
    """Start the Sentry client if SENTRY_DSN is set and sentry-sdk is installed; True when it started."""
    dsn = app.config.get("SENTRY_DSN")
    if not dsn:
        return False
    try:
        import sentry_sdk
        from sentry_sdk.integrations.logging import LoggingIntegration
    except ImportError:
        log.warning("SENTRY_DSN is set but sentry-sdk is not installed: errors stay in Midas only")
        return False
    sentry_sdk.init(
        dsn=dsn, environment=app.config.get("ENV_NAME"), include_local_variables=False,
        max_request_body_size="never", auto_enabling_integrations=False, trace_propagation_targets=[],
        integrations=[LoggingIntegration(event_level=None)], before_send=_scrubbed,
    )
    return True


def forward_exception(exc: BaseException) -> None:
    """Send an exception to Sentry if it is on; never raises."""
    client = _client()
    if client is not None:
        try:
            client.capture_exception(exc)
        except Exception:
            log.exception("forwarding to Sentry failed")


def forward_message(message: str, severity: str) -> None:
    """Send a business error (payment declined …) to Sentry if it is on; never raises."""
    client = _client()
    if client is not None:
        try:
            client.capture_message(message, level=LEVELS.get(severity, "error"))
        except Exception:
            log.exception("forwarding to Sentry failed")


def _client():
    try:
        import sentry_sdk
    except ImportError:
        return None
    return sentry_sdk if sentry_sdk.is_initialized() else None


def _scrubbed(event: dict[str, Any], _hint: dict) -> dict[str, Any]:
    from midas.services.error_capture import scrub

    return scrub(event)
