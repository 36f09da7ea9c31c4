"""Hypothesis against every form and both webhook endpoints: never a 500, and a refused request changes nothing.

The forms are found by reading every page of the demo business (tests/reliability/demo_targets.py), so a
new form is fuzzed without being listed here. Each example picks a form and replaces some of its fields
with junk; when the answer is a refusal (4xx) every table must hold exactly the rows it held before
(error records excepted: noticing bad input is their job). The webhook examples post junk bodies under
junk, forged, stale and valid signatures (Stripe) and junk messages that PayPal does not vouch for (IPN).
"""

from __future__ import annotations

import json
import time

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from midas.extensions import db
from midas.models import Booking, Dispute, Payment, Refund, WebhookEvent
from midas.services.demo import seed_demo
from tests.conftest import StaffClient, make_staff
from tests.fakes import paypal_api, stripe_api
from tests.fakes.paypal_api import run_jobs
from tests.fakes.stripe_api import WEBHOOK_SECRET, signature
from tests.reliability.demo_targets import endpoint_of, every_form, real_ids

fake_paypal, paypal_server = paypal_api.fake_paypal, paypal_api.paypal_server
stripe_webhooks = stripe_api.stripe_webhooks
OBSERVABILITY = {"error_groups", "error_events"}  # where a refusal is noticed; everything else must stay put
FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                        HealthCheck.too_slow])
junk = st.one_of(
    st.text(max_size=60),
    st.integers(-10**15, 10**15).map(str),
    st.decimals(allow_nan=True, allow_infinity=True).map(str),
    st.sampled_from(["", " ", "0", "-1", "1e309", "NaN", "9" * 40, "2031-02-30", "2031-02-30T10:00", "0000-00-00",
                     "yesterday", "<script>alert(1)</script>", "' OR 1=1 --", "\x00", "\u202e", "🏎️", "x" * 5000,
                     "{}", "[]", "null", "true", "on", "owner", "confirmed", "refunded", "EUR", "JPY"]),
)


def row_counts() -> dict[str, int]:
    db.session.rollback()
    with db.engine.connect() as conn:
        return {t.name: conn.execute(sa.select(sa.func.count()).select_from(t)).scalar_one()
                for t in db.metadata.sorted_tables if t.name not in OBSERVABILITY}


@pytest.fixture
def demo_forms(app):
    """The demo business, a signed-in owner, and every kind of form its pages hold (found once per test)."""
    seed_demo()
    make_staff("owner", email="fuzz-owner@midas.test")
    owner = StaffClient(app.test_client())
    assert owner.login("fuzz-owner@midas.test").status_code == 302
    forms = [form for form in every_form(app, owner, real_ids()) if form.method == "POST"]
    assert len(forms) > 40
    return {"owner": owner, "forms": forms, "token": owner.csrf_token(), "tried": 0}


# POST routes no demo page shows a form for, and where their input is covered instead.
NOT_ON_A_DEMO_PAGE = {
    "auth.login": "the sign-in page (anonymous): tests/views/test_auth.py, rate-limited",
    "auth.logout": "takes no fields",
    "bookings.create_customer_inline": "fetched into the new-booking page by HTMX: tests/views/test_bookings.py",
    "checkout.intent": "reads no body (the amount is the server's): JSON for checkout.js",
    "checkout.deposit_intent": "reads no body: JSON for checkout.js",
    "checkout_paypal.paypal_order": "reads no body: JSON for the PayPal button",
    "checkout_paypal.paypal_capture": "reads no body: JSON for the PayPal button",
    "client_errors.create": "JSON from client-errors.js, size- and rate-limited: tests/views/test_errors.py",
    "stripe_webhooks.receive": "fuzzed below",
    "paypal_ipn.receive": "fuzzed below",
    "customers.merge": "shown only beside a likely duplicate: tests/views/test_customers.py",
    "errors.reopen": "shown only on a resolved group; takes no fields",
    "inventory.remove_blackout": "takes no fields",
    "jobs.requeue": "needs a failed job in Redis; takes no fields",
    "jobs.delete": "needs a failed job in Redis; takes no fields",
    "jobs.requeue_all": "takes no fields",
    "jobs.delete_all": "takes no fields",
    "payments.fix_difference": "shown only beside a reconciliation difference: tests/views/test_reconciliation_page.py",
    "refunds.execute": "shown only on an approved refund; takes no fields",
    "refunds.follow": "shown only on a processing PayPal refund; takes no fields",
    "refunds.offline": "shown only on an approved offline refund: tests/views/test_refunds.py",
    "staff.activate": "shown only beside a deactivated account; takes no fields",
}


def test_every_post_route_is_fuzzed_here_or_accounted_for(app, demo_forms):
    found = {endpoint_of(app, form.action, form.method) for form in demo_forms["forms"]}
    posts = {rule.endpoint for rule in app.url_map.iter_rules() if "POST" in rule.methods}
    assert posts - found - NOT_ON_A_DEMO_PAGE.keys() == set(), "a new form: make it appear on a demo page"
    assert NOT_ON_A_DEMO_PAGE.keys() <= posts, "NOT_ON_A_DEMO_PAGE names a route that no longer exists"


@FUZZ
@given(data=st.data())
def test_fuzzed_forms_never_fail_and_refused_posts_change_nothing(demo_forms, reliability_report, data):
    owner: StaffClient = demo_forms["owner"]
    form = data.draw(st.sampled_from(demo_forms["forms"]), label="form")
    names = sorted(dict(form.fields)) or ["unexpected"]
    replaced = data.draw(st.dictionaries(st.sampled_from(names), junk, min_size=1, max_size=len(names)),
                         label="fields")
    if owner.get("/customers/search").status_code == 302:  # an earlier example ended our session
        owner.login("fuzz-owner@midas.test")
        demo_forms["token"] = owner.csrf_token()
    before = row_counts()
    response = owner.client.post(form.action, data={**form.data(**replaced), "csrf_token": demo_forms["token"]})
    reliability_report.add("bad_inputs", 1)
    assert response.status_code != 500, (form.action, replaced)
    if 400 <= response.status_code < 500:
        assert row_counts() == before, (form.action, response.status_code, replaced)


# Stripe: only a valid, fresh signature over these exact bytes gets anything stored.

SIGNATURES = st.sampled_from(["none", "junk", "valid", "wrong secret", "stale", "future", "other body"])
envelopes = st.fixed_dictionaries({
    "id": st.one_of(st.text(max_size=30), st.just("evt_fuzz"), st.integers()),
    "type": st.one_of(st.sampled_from(["payment_intent.succeeded", "charge.refunded", "charge.dispute.closed",
                                       "refund.updated", "customer.created"]), st.text(max_size=20)),
    "data": st.one_of(st.none(), st.text(max_size=10), st.fixed_dictionaries({"object": st.dictionaries(
        st.sampled_from(["id", "object", "amount", "currency", "status", "payment_intent", "metadata"]),
        st.one_of(junk, st.integers(), st.none()), max_size=7)})),
}, optional={"created": st.one_of(st.integers(), st.text(max_size=10))})
bodies = st.one_of(envelopes.map(json.dumps), st.text(max_size=200), st.binary(max_size=200).map(
    lambda raw: raw.decode("latin-1")))


def stripe_header(kind: str, body: str) -> dict[str, str]:
    now = int(time.time())
    header = {"none": None, "junk": "t=abc,v1=zzz", "valid": signature(body),
              "wrong secret": signature(body, secret="whsec_forged000000000000000000000"),
              "stale": signature(body, timestamp=now - 3600), "future": signature(body, timestamp=now + 3600),
              "other body": signature(body + " ")}[kind]
    return {"Content-Type": "application/json", **({"Stripe-Signature": header} if header else {})}


@FUZZ
@given(body=bodies, kind=SIGNATURES)
def test_fuzzed_stripe_deliveries_never_fail_and_unverified_ones_store_nothing(app, stripe_webhooks,
                                                                               reliability_report, body, kind):
    assert stripe_webhooks == WEBHOOK_SECRET
    before = row_counts()
    response = app.test_client().post("/webhooks/stripe", data=body.encode("utf-8", "surrogatepass"),
                                      headers=stripe_header(kind, body))
    reliability_report.add("bad_inputs", 1)
    assert response.status_code in (200, 400), response.status_code
    if kind != "valid":
        assert response.status_code == 400
    if response.status_code == 400:
        assert row_counts() == before


# PayPal: anything may be stored for verification, but nothing PayPal does not vouch for moves money.

ipn_fields = st.dictionaries(
    st.sampled_from(["txn_id", "payment_status", "mc_gross", "mc_currency", "custom", "receiver_email",
                     "txn_type", "parent_txn_id", "reason_code", "payment_date", "ipn_track_id", "charset"]),
    junk, max_size=12)
ipn_bodies = st.one_of(
    ipn_fields.map(lambda fields: "&".join(f"{k}={v}" for k, v in fields.items())),
    st.binary(max_size=300).map(lambda raw: raw.decode("latin-1")),
)


@FUZZ
@given(body=ipn_bodies)
def test_fuzzed_ipn_messages_never_fail_and_unverified_ones_move_no_money(app, fake_paypal, reliability_report,
                                                                          body):
    money = {model.__tablename__: db.session.query(model).count() for model in (Payment, Refund, Dispute)}
    statuses = sorted(db.session.scalars(sa.select(Booking.status)))
    response = app.test_client().post("/webhooks/paypal/ipn", data=body.encode("latin-1", "replace"),
                                      content_type="application/x-www-form-urlencoded")
    run_jobs()
    reliability_report.add("bad_inputs", 1)
    assert response.status_code in (200, 400, 413), response.status_code
    db.session.expire_all()
    assert {model.__tablename__: db.session.query(model).count() for model in (Payment, Refund, Dispute)} == money
    assert sorted(db.session.scalars(sa.select(Booking.status))) == statuses
    assert all(event.status != "processed" for event in db.session.scalars(
        sa.select(WebhookEvent).where(WebhookEvent.provider == "paypal")))
