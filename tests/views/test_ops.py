"""What the platform and its operators see: probes, headers, logs, proxies."""

from __future__ import annotations

import json
import logging

from midas import create_app
from midas.config import TestConfig


def test_healthz_answers_without_login(client):
    response = client.get("/healthz")
    assert response.status_code == 200 and response.json == {"status": "ok"}


def test_readyz_reports_database_and_redis(app, client):
    response = client.get("/readyz")
    assert response.status_code == 200
    body = response.json
    assert body["ready"] is True and body["checks"]["database"] == "ok"
    expected_redis = "ok" if app.config["REDIS_URL"] else "not configured"
    assert body["checks"]["redis"] == expected_redis


def test_readyz_is_503_with_a_reason_when_redis_is_unreachable(app, client, monkeypatch):
    from redis import Redis

    dead = "redis://127.0.0.1:1/0"
    monkeypatch.setitem(app.config, "REDIS_URL", dead)
    monkeypatch.setitem(app.extensions, "midas_redis", Redis.from_url(dead, socket_connect_timeout=1))
    response = client.get("/readyz")
    assert response.status_code == 503
    assert "redis: unreachable" in response.json["reason"]


def test_readyz_is_503_when_the_database_is_unreachable(backend_env):
    app = create_app(TestConfig({**backend_env, "DATABASE_URL": "postgresql://nobody@127.0.0.1:1/none"}))
    response = app.test_client().get("/readyz")
    assert response.status_code == 503
    assert response.json["checks"]["database"].startswith("unreachable")


def test_security_headers_on_every_page(client):
    headers = client.get("/login").headers
    csp = headers["Content-Security-Policy"]
    assert "unsafe-eval" not in csp and "frame-ancestors 'none'" in csp
    assert headers["X-Frame-Options"] == "DENY"
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["Referrer-Policy"] == "strict-origin-when-cross-origin"
    assert "Strict-Transport-Security" not in headers  # development and tests are plain HTTP


def test_production_adds_hsts_and_secure_cookies(backend_env):
    app = create_app(TestConfig({**backend_env, "MIDAS_ENV": "production", "SECRET_KEY": "x" * 40}))
    assert app.config["SESSION_COOKIE_SECURE"] is True
    response = app.test_client().get("/login")
    assert "max-age=31536000" in response.headers["Strict-Transport-Security"]
    assert "Secure" in response.headers["Set-Cookie"] and "HttpOnly" in response.headers["Set-Cookie"]


def test_request_id_is_kept_from_the_router_or_made_up(client):
    assert client.get("/healthz", headers={"X-Request-ID": "abc12345-router"}).headers["X-Request-ID"] == \
        "abc12345-router"
    assert len(client.get("/healthz", headers={"X-Request-ID": "<script>"}).headers["X-Request-ID"]) == 32


def test_request_log_is_one_json_line_with_the_request_id(client, caplog):
    from midas.observability import JsonFormatter

    with caplog.at_level(logging.INFO, logger="midas.request"):
        client.get("/login", headers={"X-Request-ID": "req-0001-abcd"})
    record = next(r for r in caplog.records if r.name == "midas.request")
    with client.application.test_request_context():
        from flask import g

        g.request_id = "req-0001-abcd"
        line = JsonFormatter().format(record)
    entry = json.loads(line)
    assert "\n" not in line
    assert entry["status"] == 200 and entry["msg"] == "GET /login 200" and entry["request_id"] == "req-0001-abcd"


def test_client_ip_comes_from_exactly_one_proxy_hop(backend_env):
    from flask import request

    app = create_app(TestConfig(backend_env))
    seen = {}

    @app.get("/_test_ip")  # registered on a throwaway rule to read what ProxyFix produced
    def _ip():
        seen["ip"] = request.remote_addr
        return "ok"

    app.test_client().get("/_test_ip", headers={"X-Forwarded-For": "6.6.6.6, 198.51.100.7"})
    assert seen["ip"] == "198.51.100.7"


def test_a_nul_character_in_any_field_is_refused_with_a_reason(client):
    response = client.get("/login?next=/\x00evil")
    assert response.status_code == 400 and "NUL character" in response.get_data(as_text=True)


def test_home_warns_when_a_provider_feed_goes_quiet(app, login_as):
    from datetime import timedelta

    from midas.extensions import db
    from midas.models import WebhookEvent, utcnow

    db.session.add(WebhookEvent(provider="stripe", event_id="evt_old", type="payment_intent.succeeded", payload={},
                                status="processed", received_at=utcnow() - timedelta(hours=7)))
    db.session.commit()
    page = login_as("concierge").page("/")
    assert page.select_one("[data-stale-feed]")["data-stale-feed"] == "stripe"
