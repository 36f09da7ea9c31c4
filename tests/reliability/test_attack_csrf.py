"""CSRF on every state-changing route, the session cookie's flags, and what a forged request leaves behind.

Each POST/PUT/PATCH/DELETE rule in app.url_map is sent, by a signed-in owner against the demo business
(real ids, so the route would act if the request got through), as a forged cross-site request: a form
without a token, a form with another session's token, a mangled token, and the HTMX variants (the
HX-Request header with no X-CSRFToken, or with another session's). Each must be a 400 that names the
security token, and every table must be exactly as before. Then the same request with the page's own
token must get past the check, which shows the 400 came from CSRF and not from the empty form.
Routes that take no token are listed in CSRF_EXEMPT with what protects them instead.
"""

from __future__ import annotations

import re

import pytest
from flask import Flask

from midas.extensions import csrf, db
from midas.models import (
    Customer,
    StaffUser,
)
from midas.services.demo import seed_demo
from tests.conftest import PASSWORD, StaffClient, make_staff
from tests.reliability import demo_targets
from tests.reliability.demo_targets import concrete, fingerprint, real_ids

production_app = demo_targets.production_app  # a fixture shared by the attack tests

# Endpoints that accept a state-changing request without our token, and what protects them instead.
CSRF_EXEMPT = {
    "stripe_webhooks.receive": "Stripe's signature (tests/webhooks, the storm)",
    "paypal_ipn.receive": "PayPal's verification of the message, posted back byte for byte",
    "client_errors.create": "same-origin check and a rate limit; it only records a browser error",
}
STATE_CHANGING = {"POST", "PUT", "PATCH", "DELETE"}
CSRF_REFUSAL = "security token"


def state_changing_requests(app: Flask) -> list[tuple[str, str, str]]:
    """(endpoint, method, rule) for every protected state-changing route; sign-out last."""
    found = [(rule.endpoint, method, rule.rule) for rule in app.url_map.iter_rules()
             for method in sorted(rule.methods & STATE_CHANGING) if rule.endpoint not in CSRF_EXEMPT]
    return sorted(found, key=lambda request: request[0] == "auth.logout")


def test_the_exempt_routes_are_exactly_the_listed_ones(app):
    exempt_blueprints = {bp.name for bp in csrf._exempt_blueprints}
    exempt = {rule.endpoint for rule in app.url_map.iter_rules()
              if rule.endpoint.split(".")[0] in exempt_blueprints or
              f"{app.view_functions[rule.endpoint].__module__}.{app.view_functions[rule.endpoint].__name__}"
              in csrf._exempt_views}
    state_changing_exempt = {e for e in exempt if any(
        r.methods & STATE_CHANGING for r in app.url_map.iter_rules(endpoint=e))}
    assert state_changing_exempt == set(CSRF_EXEMPT)


def test_every_state_changing_route_refuses_a_forged_request_and_changes_nothing(app, backend_env,
                                                                                reliability_report):
    if "postgresql" in backend_env["DATABASE_URL"]:
        pytest.skip("the token check runs before any query: one backend is enough (CI time)")
    seed_demo()
    owner = StaffClient(app.test_client())
    make_staff("owner", email="csrf-owner@midas.test")
    assert owner.login("csrf-owner@midas.test").status_code == 302
    own_token = owner.csrf_token()
    other = StaffClient(app.test_client())  # someone else's valid token: the attacker's own session
    foreign_token = other.csrf_token()
    ids = real_ids()
    routes = state_changing_requests(app)
    assert len(routes) > 50
    forged = 0
    before = fingerprint()
    for endpoint, method, rule in routes:  # every forgery first, against the untouched demo business …
        url = concrete(rule, ids)
        for headers, data in (
            ({}, {}),
            ({}, {"csrf_token": foreign_token}),
            ({}, {"csrf_token": own_token[:-4] + "AAAA"}),
            ({"HX-Request": "true"}, {}),
            ({"HX-Request": "true", "X-CSRFToken": foreign_token}, {}),
            ({"Origin": "https://evil.example", "Referer": "https://evil.example/"}, {}),
        ):
            response = owner.client.open(url, method=method, data=data, headers=headers)
            assert response.status_code == 400, (endpoint, method, headers, data, response.status_code)
            assert CSRF_REFUSAL in response.get_data(as_text=True), endpoint
            forged += 1
    assert fingerprint() == before, "a request without a valid token changed the database"
    for endpoint, method, rule in routes:  # … then each with the page's own token, which gets past the check
        control = owner.client.open(concrete(rule, ids), method=method, data={"csrf_token": own_token},
                                    headers={"Origin": "http://localhost"})
        assert control.status_code != 500, (endpoint, control.status_code)  # 503: a provider not configured here
        assert CSRF_REFUSAL not in control.get_data(as_text=True), f"{endpoint} refuses even a genuine token"
    reliability_report.add("bad_inputs", forged)


def test_htmx_requests_carry_the_token_in_a_header_and_pass(app, login_as):
    owner = login_as("owner")
    concierge = make_staff("concierge", email="c@midas.test")
    response = owner.post(f"/staff/{concierge.id}/deactivate", htmx=True)
    assert response.status_code in (200, 302)
    assert db.session.get(StaffUser, concierge.id).is_active_account is False


# The session cookie.

def session_cookie(response) -> str:
    [cookie] = [c for c in response.headers.getlist("Set-Cookie") if c.startswith("session=")]
    return cookie


def test_session_cookie_is_httponly_and_samesite_lax_and_not_readable_by_script(app, browser):
    make_staff("concierge", email="c@midas.test")
    response = browser.login("c@midas.test")
    cookie = session_cookie(response).lower()
    assert "; httponly" in cookie and "; samesite=lax" in cookie
    assert "; secure" not in cookie  # development and tests run over plain http on 127.0.0.1


def test_outside_development_the_session_cookie_is_also_secure(app, production_app):
    make_staff("concierge", email="c@midas.test")
    db.session.commit()
    client = StaffClient(production_app.test_client())
    https = {"X-Forwarded-Proto": "https", "X-Forwarded-For": "203.0.113.7"}
    page = client.client.get("/login", headers=https, base_url="https://midas.example")
    token = re.search(r'name="csrf-token" content="([^"]+)"', page.get_data(as_text=True)).group(1)
    response = client.client.post("/login", data={"email": "c@midas.test", "password": PASSWORD, "csrf_token": token},
                                  headers={**https, "Referer": "https://midas.example/login"},
                                  base_url="https://midas.example")
    assert response.status_code == 302, response.get_data(as_text=True)[:500]
    cookie = session_cookie(response).lower()
    assert "; secure" in cookie and "; httponly" in cookie and "; samesite=lax" in cookie
    assert production_app.config["REMEMBER_COOKIE_SECURE"] is True


def test_customer_record_untouched_by_a_forged_customer_edit(app, login_as):
    """The most common forgery in practice: a hidden form on another site editing a record."""
    staff = login_as("concierge")
    customer = Customer(name="Ada Lovelace", email="ada@example.com", phone="+447700900123")
    db.session.add(customer)
    db.session.commit()
    response = staff.client.post(f"/customers/{customer.id}/edit",
                                 data={"name": "Mallory", "email": "mallory@evil.example", "phone": "+15550000000"},
                                 headers={"Origin": "https://evil.example"})
    assert response.status_code == 400
    db.session.expire_all()
    assert (customer.name, customer.email) == ("Ada Lovelace", "ada@example.com")
