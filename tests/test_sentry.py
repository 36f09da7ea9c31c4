"""Sentry is optional: off without SENTRY_DSN; with it, captured errors are forwarded scrubbed."""

from __future__ import annotations

import gzip
import json

import pytest
import sentry_sdk
from pytest_httpserver import HTTPServer

from midas import sentry
from midas.services.error_capture import capture_exception, record_error


@pytest.fixture
def sentry_server():
    server = HTTPServer(host="127.0.0.1", port=0)
    server.expect_request("/api/1/envelope/", method="POST").respond_with_data("{}")
    server.start()
    yield server
    sentry_sdk.get_client().close()
    sentry_sdk.get_global_scope().set_client(None)
    server.stop()


def envelopes(server: HTTPServer) -> str:
    bodies = []
    for request, _ in server.log:
        data = request.get_data()
        bodies.append((gzip.decompress(data) if request.headers.get("Content-Encoding") == "gzip" else data).decode())
    return "\n".join(bodies)


def test_without_a_dsn_sentry_stays_off(app):
    assert sentry.init_app(app) is False and not sentry_sdk.is_initialized()


def test_with_a_dsn_captured_errors_reach_sentry_scrubbed(app, sentry_server, monkeypatch):
    monkeypatch.setitem(app.config, "SENTRY_DSN", f"http://publickey@127.0.0.1:{sentry_server.port}/1")
    assert sentry.init_app(app) is True
    try:
        raise RuntimeError("charge failed with sk_live_51Habcdefghijklmnop")
    except RuntimeError as exc:
        assert capture_exception(exc) is not None  # the error log works the same
    record_error("PAYMENT", "HIGH", "Card 4242 4242 4242 4242 declined")
    sentry_sdk.flush(timeout=5)
    sent = envelopes(sentry_server)
    assert "RuntimeError" in sent and "PAYMENT: Card [scrubbed]" in sent
    assert "sk_live_51H" not in sent and "4242 4242" not in sent
    assert json.loads(sent.splitlines()[0])["trace"]["public_key"] == "publickey"
