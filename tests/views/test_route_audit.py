"""Every route is either public on purpose or behind login and the right role."""

from __future__ import annotations

import re

import pytest

from midas.models import Role
from tests.conftest import make_staff

# The only endpoints anyone may reach without signing in.
PUBLIC = {"auth.login", "ops.healthz", "ops.readyz", "static", "checkout.show", "feeds.item", "feeds.staff",
          "checkout_paypal.paypal_order", "checkout_paypal.paypal_return", "checkout_paypal.paypal_capture",
          "checkout_paypal.offline", "paypal_ipn.receive",
          "checkout.intent", "checkout.deposit_intent", "checkout.status", "stripe_webhooks.receive",
          "client_errors.create"}


def staff_routes(app):
    """(endpoint, url with placeholder ids, methods) for every non-public rule."""
    for rule in app.url_map.iter_rules():
        if rule.endpoint in PUBLIC:
            continue
        url = re.sub(r"<(?:int:)?(\w+)>", "1", rule.rule)
        yield rule.endpoint, url, sorted(rule.methods - {"HEAD", "OPTIONS"})


def minimum_role(app, endpoint: str) -> Role:
    view = app.view_functions[endpoint]
    blueprint = app.blueprints.get(endpoint.split(".")[0])
    return getattr(view, "minimum_role", None) or getattr(blueprint, "minimum_role", Role.CONCIERGE)


def test_public_endpoints_are_exactly_the_expected_ones(app):
    public = {rule.endpoint for rule in app.url_map.iter_rules()} & PUBLIC
    assert public == PUBLIC


def test_anonymous_visitors_are_sent_to_login_from_every_staff_route(app, client):
    checked = 0
    for endpoint, url, methods in staff_routes(app):
        for method in methods:
            response = client.open(url, method=method)
            if method == "GET":
                assert response.status_code == 302, (endpoint, url)
                assert response.headers["Location"].startswith("/login"), (endpoint, url)
            else:  # a POST without a session has no CSRF token either: refused before anything runs
                assert response.status_code in (302, 400), (endpoint, url, response.status_code)
            checked += 1
    assert checked > 20


@pytest.mark.parametrize("role", ["concierge", "admin"])
def test_roles_below_an_areas_minimum_get_403(app, login_as, role):
    staff = login_as(role)
    forbidden = [(e, u) for e, u, m in staff_routes(app)
                 if "GET" in m and not Role(role).at_least(minimum_role(app, e))]
    assert forbidden, "every role below owner has something it may not see"
    for endpoint, url in forbidden:
        assert staff.get(url).status_code == 403, (role, endpoint)


def test_staff_pages_are_owner_only_and_settings_too(app):
    assert minimum_role(app, "staff.index") is Role.OWNER
    assert minimum_role(app, "staff.create") is Role.OWNER
    assert minimum_role(app, "settings.index") is Role.OWNER
    assert minimum_role(app, "errors.index") is Role.ADMIN


def test_forbidden_page_is_styled_and_explains(login_as):
    response = login_as("concierge").get("/staff")
    assert response.status_code == 403
    assert "You do not have access to this page" in response.get_data(as_text=True)


def test_deactivated_staff_is_signed_out_on_next_request(app, login_as):
    staff = login_as("admin")
    owner = login_as("owner")
    owner.post(f"/staff/{staff.user_id}/deactivate")
    assert staff.get("/").status_code == 302


def test_every_navigation_area_opens_for_an_owner(app, login_as):
    from flask import url_for

    from midas.formatting import NAV_AREAS

    owner = login_as("owner")
    make_staff("concierge", email="other@midas.test")
    for endpoint, label, _ in NAV_AREAS:
        with app.test_request_context():
            url = url_for(endpoint)
        page = owner.page(url)
        assert page.h1, label
