"""The authorization matrix: every route × every kind of visitor, against a table a person can read.

EXPECTED names, for every endpoint in app.url_map, who may use it: PUBLIC (anyone, on purpose) or the
lowest staff role. Each route is requested with each method it accepts (with a valid CSRF token, so
only the role decides) by an anonymous visitor, a concierge, an admin, an owner, and an owner whose
account was deactivated after signing in. A new route without an entry here fails the first test.
Services check roles again, so a view that forgot its guard still cannot act: the last tests call
service functions directly with a role that is too low.
"""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from midas.extensions import db
from midas.models import AuditEntry, Item, Role, Setting, StaffUser, utcnow
from midas.services import PermissionDenied, auth, inventory, settings
from tests import factories
from tests.conftest import StaffClient, make_staff, soup

PUBLIC, CONCIERGE, ADMIN, OWNER = "public", Role.CONCIERGE, Role.ADMIN, Role.OWNER

EXPECTED = {
    # Anyone: signing in, health checks, the customer's checkout, calendar feeds (secret token in the URL),
    # provider webhooks (verified by signature), browser error reports (same origin only), static files.
    "auth.login": PUBLIC, "ops.healthz": PUBLIC, "ops.readyz": PUBLIC, "static": PUBLIC,
    "checkout.show": PUBLIC, "checkout.intent": PUBLIC, "checkout.deposit_intent": PUBLIC, "checkout.status": PUBLIC,
    "checkout_paypal.paypal_order": PUBLIC, "checkout_paypal.paypal_return": PUBLIC,
    "checkout_paypal.paypal_capture": PUBLIC, "checkout_paypal.offline": PUBLIC,
    "feeds.item": PUBLIC, "feeds.staff": PUBLIC,
    "stripe_webhooks.receive": PUBLIC, "paypal_ipn.receive": PUBLIC, "client_errors.create": PUBLIC,
    # Every signed-in staff member.
    "auth.logout": CONCIERGE, "home.index": CONCIERGE,
    "bookings.index": CONCIERGE, "bookings.today": CONCIERGE, "bookings.calendar": CONCIERGE,
    "bookings.show": CONCIERGE, "bookings.create": CONCIERGE, "bookings.create_customer_inline": CONCIERGE,
    "bookings.customer_choices": CONCIERGE, "bookings.export": CONCIERGE, "bookings.change": CONCIERGE,
    "bookings.cancel": CONCIERGE, "bookings.hand_over": CONCIERGE, "bookings.no_show": CONCIERGE,
    "bookings.reassign": CONCIERGE, "bookings.record_return": CONCIERGE,
    "bookings.send_checkout_link": CONCIERGE, "bookings.send_for_payment": CONCIERGE,
    "bookings.redeem_points": CONCIERGE,
    "inventory.index": CONCIERGE, "inventory.show": CONCIERGE, "inventory.available": CONCIERGE,
    "inventory.export": CONCIERGE,
    "customers.index": CONCIERGE, "customers.show": CONCIERGE, "customers.create": CONCIERGE,
    "customers.update": CONCIERGE, "customers.search_results": CONCIERGE,
    "payments.index": CONCIERGE, "payments.show": CONCIERGE, "payments.release_deposit": CONCIERGE,
    "refunds.index": CONCIERGE, "refunds.show": CONCIERGE, "refunds.create": CONCIERGE,
    "refunds.follow": CONCIERGE,  # asks the provider how a refund is going; changes nothing it does not report
    "communications.index": CONCIERGE, "communications.show": CONCIERGE, "communications.preview": CONCIERGE,
    # Admins: confirming by hand, inventory changes, money actions, customer data, operations pages.
    "bookings.confirm": ADMIN,
    "inventory.create": ADMIN, "inventory.update": ADMIN, "inventory.change_status": ADMIN, "inventory.bulk": ADMIN,
    "inventory.import_items": ADMIN, "inventory.import_template": ADMIN, "inventory.add_blackout": ADMIN,
    "inventory.edit_blackout": ADMIN, "inventory.remove_blackout": ADMIN,
    "customers.erase": ADMIN, "customers.export": ADMIN, "customers.merge": ADMIN,
    "payments.capture_deposit": ADMIN, "payments.confirm_offline": ADMIN, "payments.reconciliation_page": ADMIN,
    "payments.run_reconciliation": ADMIN, "payments.fix_difference": ADMIN,
    "refunds.approve": ADMIN, "refunds.reject": ADMIN, "refunds.execute": ADMIN, "refunds.offline": ADMIN,
    "refunds.retry": ADMIN,
    "communications.resend": ADMIN,
    "events.index": ADMIN, "events.show": ADMIN, "events.rerun": ADMIN,
    "errors.index": ADMIN, "errors.show": ADMIN, "errors.resolve": ADMIN, "errors.ignore": ADMIN,
    "errors.reopen": ADMIN, "errors.snooze": ADMIN,
    "jobs.index": ADMIN, "jobs.requeue": ADMIN, "jobs.delete": ADMIN, "jobs.requeue_all": ADMIN,
    "jobs.delete_all": ADMIN,
    "reports.index": ADMIN, "reports.show": ADMIN, "reports.export": ADMIN,
    # The owner: business settings and staff accounts (including password resets).
    "settings.index": OWNER, "settings.location": OWNER, "settings.season": OWNER, "settings.delete_season": OWNER,
    "settings.tiers": OWNER, "settings.refund_policy": OWNER, "settings.alerts": OWNER,
    "staff.index": OWNER, "staff.create": OWNER, "staff.activate": OWNER, "staff.deactivate": OWNER,
    "staff.reset_password": OWNER,
}
VISITORS = ("anonymous", "concierge", "admin", "owner", "deactivated")
# Ids that match no record: a request that passes the guard then gets a 404, and changes nothing.
PLACEHOLDERS = {"int": "987654", "reference": "MID-NOPE00", "token": "no-such-token", "queue_name": "default",
                "job_id": "no-such-job", "name": "no-such-report", "filename": "no-such-file.css"}


def concrete(rule) -> str:
    def fill(match: re.Match) -> str:
        converter, name = match.group(1), match.group(2)
        return PLACEHOLDERS.get(converter) or PLACEHOLDERS.get(name, "987654")

    return re.sub(r"<(?:(\w+):)?(\w+)>", fill, rule.rule)


def requests_to_try(app) -> list[tuple[str, str, str]]:
    """(endpoint, method, url) for every rule and method; sign-out last, as it ends the visitor's session."""
    tried = [(rule.endpoint, method, concrete(rule)) for rule in app.url_map.iter_rules()
             for method in sorted(rule.methods - {"HEAD", "OPTIONS"})]
    return sorted(tried, key=lambda request: request[0] == "auth.logout")


def may_use(visitor: str, expected) -> bool:
    if expected == PUBLIC:
        return True
    return visitor not in ("anonymous", "deactivated") and Role(visitor).at_least(expected)


@pytest.fixture
def visitors(app, login_as, monkeypatch) -> dict[str, tuple[StaffClient, str]]:
    """Each visitor's client and a CSRF token from its own session."""
    # An (empty) IPN posted by the matrix is verified with PayPal in its job: let that fail locally, not online.
    monkeypatch.setitem(app.config, "PAYPAL_IPN_VERIFY_URL", "http://127.0.0.1:9/cgi-bin/webscr")
    clients = {"anonymous": StaffClient(app.test_client())}
    clients.update({role: login_as(role) for role in ("concierge", "admin", "owner")})
    deactivated = login_as("owner")
    token = deactivated.csrf_token()
    user = db.session.get(StaffUser, deactivated.user_id)
    user.is_active_account = False  # switched off behind the session's back (another owner did it)
    db.session.commit()
    tokens = {name: client.csrf_token() for name, client in clients.items()}
    return {**{name: (client, tokens[name]) for name, client in clients.items()},
            "deactivated": (deactivated, token)}


def test_every_route_has_an_entry_in_the_expected_table(app):
    endpoints = {rule.endpoint for rule in app.url_map.iter_rules()}
    assert endpoints - EXPECTED.keys() == set(), "a new route needs its row in EXPECTED: public or a minimum role"
    assert EXPECTED.keys() - endpoints == set(), "EXPECTED names a route that no longer exists"


def test_the_table_agrees_with_the_guards_declared_on_each_view(app):
    for endpoint, expected in EXPECTED.items():
        if expected == PUBLIC:
            continue
        view = app.view_functions[endpoint]
        blueprint = app.blueprints[endpoint.split(".")[0]]
        declared = getattr(view, "minimum_role", None) or getattr(blueprint, "minimum_role", Role.CONCIERGE)
        assert declared is expected, endpoint


@pytest.mark.parametrize("visitor", VISITORS)
def test_every_route_answers_each_visitor_as_the_table_says(app, visitors, visitor, reliability_report):
    client, token = visitors[visitor]
    wrong = []
    refused = 0
    for endpoint, method, url in requests_to_try(app):
        data = {"csrf_token": token} if method != "GET" else None
        response = client.client.open(url, method=method, data=data, headers={"Origin": "http://localhost"})
        status, location = response.status_code, response.headers.get("Location", "")
        sent_to_login = status == 302 and location.startswith("/login?next=")  # sign-out's own redirect has no next
        if status >= 500:
            wrong.append((method, url, status, "server error"))
        elif may_use(visitor, EXPECTED[endpoint]):
            if status == 403 or sent_to_login:
                wrong.append((method, url, status, "refused but allowed"))
        elif visitor in ("anonymous", "deactivated"):
            refused += 1
            if not sent_to_login:
                wrong.append((method, url, status, "not sent to sign in"))
        else:
            refused += 1
            if status != 403:
                wrong.append((method, url, status, "not forbidden"))
    reliability_report.add("bad_inputs", refused)
    assert wrong == []


def test_a_forbidden_post_changes_nothing(app, login_as):
    """The guard runs before the view: a concierge's full, valid-looking settings form is not saved."""
    concierge = login_as("concierge")
    before = _counts()
    response = concierge.post("/settings/tiers", {"standard": "10000", "premium": "1", "vvip": "1"})
    assert response.status_code == 403
    response = concierge.post("/staff/new", {"email": "mole@midas.test", "name": "Mole", "role": "owner",
                                             "password": "a long enough password"})
    assert response.status_code == 403
    assert _counts() == before


def test_a_deactivated_owner_is_signed_out_instead_of_served(app, visitors):
    client, _ = visitors["deactivated"]
    response = client.get("/staff")
    assert response.status_code == 302 and response.headers["Location"].startswith("/login")
    assert "Please sign in" in soup(client.get(response.headers["Location"])).get_text()


# Services check again: the view guard is not the only lock.

def test_services_refuse_a_staff_account_below_the_role_they_need(app):
    concierge = make_staff("concierge", email="c@midas.test")
    admin = make_staff("admin", email="a@midas.test")
    target = make_staff("concierge", email="target@midas.test")
    item = factories.item(factories.location())
    before = _counts()
    with pytest.raises(PermissionDenied):
        auth.reset_password(admin, target.id, "a brand new password")
    with pytest.raises(PermissionDenied):
        auth.create_staff(admin, "mole@midas.test", "Mole", "owner", "a long enough password")
    with pytest.raises(PermissionDenied):
        auth.set_active(admin, target.id, False)
    with pytest.raises(PermissionDenied):
        settings.set_tier_multipliers(admin, {"standard": 10000, "premium": 9000, "vvip": 1})
    with pytest.raises(PermissionDenied):
        inventory.set_status(concierge, item.id, "retired")
    with pytest.raises(PermissionDenied):
        inventory.add_blackout(concierge, item.id, utcnow(), utcnow() + timedelta(days=1), "not allowed")
    db.session.rollback()
    assert _counts() == before
    assert auth.authenticate("target@midas.test", "correct horse battery staple").id == target.id


def test_services_refuse_a_deactivated_owner(app):
    owner = make_staff("owner", email="gone@midas.test", active=False)
    target = make_staff("concierge", email="target@midas.test")
    with pytest.raises(PermissionDenied):
        auth.reset_password(owner, target.id, "a brand new password")
    with pytest.raises(PermissionDenied):
        settings.set_tier_multipliers(owner, {"standard": 10000, "premium": 9000, "vvip": 1})


def test_only_an_owner_resets_a_password_through_the_page(app, login_as):
    target = make_staff("concierge", email="target@midas.test")
    for role in ("concierge", "admin"):
        response = login_as(role).post(f"/staff/{target.id}/password", {"password": "an attacker's choice!"})
        assert response.status_code == 403, role
    assert db.session.scalar(select(func.count()).select_from(AuditEntry)
                             .where(AuditEntry.action == "staff.password_reset")) == 0
    response = login_as("owner").post(f"/staff/{target.id}/password", {"password": "a new long password"})
    assert response.status_code in (200, 302), response.status_code
    assert auth.authenticate("target@midas.test", "a new long password").id == target.id


def _counts() -> dict[str, int]:
    tables = (StaffUser, Item, Setting, AuditEntry)
    return {t.__name__: db.session.scalar(select(func.count()).select_from(t)) for t in tables}
