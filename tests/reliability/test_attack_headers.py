"""Security headers on every page: a CSP with no eval and no inline script, frame denial, HSTS in production.

Every GET page of the demo business is fetched by an owner and parsed: the CSP must be there and strict,
and the HTML must hold nothing that CSP would have to be loosened for (inline <script>, on* handler
attributes, javascript: URLs, htmx's eval-based hx-on / js: values). The checkout page must be able to
load Stripe.js under that CSP; tests/browser/test_checkout.py shows it mounting in Chromium.
"""

from __future__ import annotations

import pytest
from bs4 import BeautifulSoup

from midas.config import ROOT
from midas.services.demo import seed_demo
from tests.conftest import StaffClient, make_staff
from tests.reliability import demo_targets
from tests.reliability.demo_targets import pages, real_ids

production_app = demo_targets.production_app  # a fixture shared by the attack tests

SCRIPTED_ATTRIBUTE_PREFIXES = ("on", "hx-on")
# The email preview is our own page framed by the message's detail page (in a sandboxed iframe):
# it may be framed by us, and its policy allows no script at all.
FRAMED_BY_US = {"communications.preview"}


def directives(csp: str) -> dict[str, list[str]]:
    parsed = {}
    for part in csp.split(";"):
        name, *values = part.split()
        parsed[name] = values
    return parsed


def assert_strict_csp(csp: str) -> None:
    policy = directives(csp)
    scripts = policy.get("script-src", policy["default-src"])
    assert "'unsafe-eval'" not in csp and "'unsafe-inline'" not in scripts, csp
    assert "'wasm-unsafe-eval'" not in csp and "*" not in scripts and "data:" not in scripts, csp
    assert policy["frame-ancestors"] == ["'none'"] and policy["object-src"] == ["'none'"], csp
    assert policy["base-uri"] == ["'self'"] and policy["default-src"] == ["'self'"], csp


def inline_script_problems(html: str) -> list[str]:
    """What this page would need `unsafe-inline` or `unsafe-eval` for; the CSP carries no nonce, so any."""
    document = BeautifulSoup(html, "html.parser")
    problems = [f"inline <script>: {tag.get_text()[:60]!r}" for tag in document.find_all("script")
                if not tag.get("src") and (tag.get("type") or "text/javascript") != "application/json"]
    for tag in document.find_all(True):
        for name, value in tag.attrs.items():
            text = " ".join(value) if isinstance(value, list) else str(value)
            if name.startswith(SCRIPTED_ATTRIBUTE_PREFIXES) and name not in ("one", "only"):
                problems.append(f"<{tag.name} {name}=…>")
            if name in ("href", "src", "action", "formaction") and text.strip().lower().startswith("javascript:"):
                problems.append(f"<{tag.name} {name}=javascript:…>")
            if name in ("hx-vals", "hx-headers", "hx-vars") and text.strip().startswith(("js:", "javascript:")):
                problems.append(f"<{tag.name} {name}=js:…> (htmx would eval it)")
    return problems


def test_every_page_sends_a_strict_csp_and_holds_no_script_it_would_need_loosened_for(app, backend_env,
                                                                                     reliability_report):
    if "postgresql" in backend_env["DATABASE_URL"]:
        pytest.skip("headers and markup do not depend on the database: one backend is enough (CI time)")
    seed_demo()
    make_staff("owner", email="headers-owner@midas.test")
    owner = StaffClient(app.test_client())
    owner.login("headers-owner@midas.test")
    checked, problems = 0, {}
    for endpoint, url in pages(app, real_ids()):
        response = owner.get(url)
        response.get_data()  # read to the end: a streamed export closes its context
        assert response.status_code < 500, (url, response.status_code)
        headers = response.headers
        if endpoint in FRAMED_BY_US:
            policy = directives(headers["Content-Security-Policy"])
            assert policy["default-src"] == ["'none'"] and "script-src" not in policy, url
            assert policy["frame-ancestors"] == ["'self'"] and headers["X-Frame-Options"] == "SAMEORIGIN", url
        else:
            assert_strict_csp(headers["Content-Security-Policy"])
            assert headers["X-Frame-Options"] == "DENY", url
        assert headers["X-Content-Type-Options"] == "nosniff", url
        assert "Strict-Transport-Security" not in headers  # plain http in tests: HSTS only where it is https
        if response.mimetype == "text/html":
            found = inline_script_problems(response.get_data(as_text=True))
            if found:
                problems[url] = found
            checked += 1
    assert problems == {}
    assert checked > 40


def test_the_checker_finds_what_it_looks_for():
    html = ('<script>alert(1)</script><a href=" javascript:alert(1)">x</a><img src=x onerror="alert(1)">'
            '<div hx-on:click="alert(1)"></div><div hx-vals=\'js:{a: alert(1)}\'></div>'
            '<script src="/static/js/midas.js"></script>')
    assert len(inline_script_problems(html)) == 5


def test_checkout_loads_stripe_js_from_stripe_under_the_csp(app):
    from tests.fakes.stripe_api import card_booking

    booking = card_booking()
    response = StaffClient(app.test_client()).get(f"/pay/{booking.checkout_token}")
    assert response.status_code == 200
    policy = directives(response.headers["Content-Security-Policy"])
    assert "https://js.stripe.com" in policy["script-src"]
    assert "https://js.stripe.com" in policy["frame-src"]  # the Payment Element is an iframe from Stripe
    assert "https://api.stripe.com" in policy["connect-src"]
    page = BeautifulSoup(response.get_data(as_text=True), "html.parser")
    scripts = [tag["src"] for tag in page.find_all("script", src=True)]
    assert "/static/js/checkout.js" in scripts
    assert 'const STRIPE_JS = "https://js.stripe.com/v3/";' in (ROOT / "static/js/checkout.js").read_text()
    assert inline_script_problems(str(page)) == []


def test_production_sends_hsts_and_denies_framing(production_app):
    client = production_app.test_client()
    response = client.get("/login", headers={"X-Forwarded-Proto": "https"}, base_url="https://midas.example")
    assert response.status_code == 200
    assert response.headers["Strict-Transport-Security"] == "max-age=31536000; includeSubDomains"
    assert response.headers["X-Frame-Options"] == "DENY"
    assert_strict_csp(response.headers["Content-Security-Policy"])
    assert production_app.config["SESSION_COOKIE_SECURE"] is True


def test_error_pages_carry_the_same_headers(app, client):
    response = client.get("/no-such-page")
    assert response.status_code == 404
    assert_strict_csp(response.headers["Content-Security-Policy"])
    assert response.headers["X-Frame-Options"] == "DENY"
