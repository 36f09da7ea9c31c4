"""Request ids, one-line JSON logs to stdout, and security headers on every response."""

from __future__ import annotations

import json
import logging
import re
import sys
import time
import uuid

from flask import Flask, Response, abort, g, has_request_context, request

REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{8,64}$")


class JsonFormatter(logging.Formatter):
    """One JSON object per line, with the request id when there is a request."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": self.formatTime(record, "%Y-%m-%dT%H:%M:%S%z"),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        if has_request_context():
            entry["request_id"] = getattr(g, "request_id", None)
        entry.update(getattr(record, "fields", {}))
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def configure_logging(level: str) -> None:
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    logging.getLogger("werkzeug").setLevel(logging.WARNING)


def init_app(app: Flask) -> None:
    if not app.testing:
        configure_logging(app.config["LOG_LEVEL"])
    # Stripe's SDK logs whole response bodies (client secrets, customer details) at DEBUG: never let them
    # through, whatever LOG_LEVEL says.
    logging.getLogger("stripe").setLevel(logging.INFO)
    app.before_request(_start_request)
    app.after_request(_finish_request)


def _start_request() -> None:
    _refuse_nul_bytes()
    incoming = request.headers.get("X-Request-ID", "")
    g.request_id = incoming if REQUEST_ID.match(incoming) else uuid.uuid4().hex
    g.started = time.perf_counter()


def _refuse_nul_bytes() -> None:
    """No text we store may hold a NUL: PostgreSQL refuses it, so refuse the request first, with the reason."""
    # Provider webhooks read their raw body themselves (PayPal's must be posted back byte for byte).
    parse_form = request.method == "POST" and not request.path.startswith("/webhooks/")
    values = [*request.args.values(), *(request.form.values() if parse_form else ())]
    if any("\x00" in value for value in values):
        abort(400, "The request contained a NUL character, which no field accepts.")


def _finish_request(response: Response) -> Response:
    response.headers["X-Request-ID"] = getattr(g, "request_id", "")
    _security_headers(response)
    if request.htmx:
        response.vary.add("HX-Request")
    if request.endpoint not in ("static", "ops.healthz"):
        elapsed = (time.perf_counter() - g.get("started", time.perf_counter())) * 1000
        logging.getLogger("midas.request").info(
            "%s %s %s", request.method, _loggable_path(), response.status_code,
            extra={"fields": {"status": response.status_code, "ms": round(elapsed, 1),
                              "ip": request.remote_addr}},
        )
    return response


# Paths whose URL carries a secret (checkout links, calendar feeds): logged as their route pattern.
SECRET_PATH_PREFIXES = ("/pay/", "/feeds/")


def _loggable_path() -> str:
    if request.path.startswith(SECRET_PATH_PREFIXES) and request.url_rule is not None:
        return request.url_rule.rule
    return request.path


# Stripe.js must load from Stripe and frame its Payment Element; nothing may use eval.
CSP = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self' https://js.stripe.com https://*.js.stripe.com",
        "style-src 'self'",
        "img-src 'self' data: https://*.stripe.com",
        "connect-src 'self' https://api.stripe.com",
        "frame-src https://js.stripe.com https://*.js.stripe.com https://hooks.stripe.com",
        "frame-ancestors 'none'",
        "form-action 'self'",
        "base-uri 'self'",
        "object-src 'none'",
    ]
)


def _security_headers(response: Response) -> None:
    from flask import current_app

    headers = response.headers
    headers.setdefault("Content-Security-Policy", CSP)
    headers.setdefault("X-Frame-Options", "DENY")
    headers.setdefault("X-Content-Type-Options", "nosniff")
    headers.setdefault("Referrer-Policy", "strict-origin-when-cross-origin")
    headers.setdefault("Permissions-Policy", "camera=(), microphone=(), geolocation=()")
    if current_app.config["SESSION_COOKIE_SECURE"]:
        headers.setdefault("Strict-Transport-Security", "max-age=31536000; includeSubDomains")
