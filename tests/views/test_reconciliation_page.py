"""The reconciliation page: admins run it, see each difference, and fix one with a click."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from midas.extensions import db
from midas.models import AuditEntry, Payment, utcnow
from tests.conftest import soup
from tests.fakes import stripe_api
from tests.fakes.stripe_api import card_booking, card_payment, intent_for, succeeded

fake_stripe, stripe_server = stripe_api.fake_stripe, stripe_api.stripe_server


def period() -> dict[str, str]:
    today = utcnow().date()
    return {"since": (today - timedelta(days=1)).isoformat(), "until": today.isoformat()}


def stale_payment(fake) -> Payment:
    payment = card_payment(card_booking(), status="pending")
    fake.add("payment_intents", succeeded(intent_for(payment)))
    return payment


def test_admin_runs_reconciliation_and_sees_the_difference_with_a_fix_button(login_as, fake_stripe):
    payment = stale_payment(fake_stripe)
    admin = login_as("admin")
    assert "No reconciliation has run yet." in admin.page("/payments/reconciliation").get_text()

    response = admin.post("/payments/reconciliation", period(), follow_redirects=True)

    page = soup(response)
    [row] = page.select("tr.difference")
    assert row["data-problem"] == "status_differs" and payment.provider_ref in row.get_text()
    assert row.select_one("form[action='/payments/reconciliation/fix'] button").get_text() == "Fix"
    assert "1 difference(s) found." in page.get_text()


def test_one_click_fix_applies_stripes_object_and_is_audited_with_the_admin(login_as, fake_stripe):
    payment = stale_payment(fake_stripe)
    admin = login_as("admin")
    admin.post("/payments/reconciliation", period())

    fix = {"kind": "payment_intent", "provider_id": payment.provider_ref}
    response = admin.post("/payments/reconciliation/fix", fix, follow_redirects=True)

    assert "is succeeded" in soup(response).get_text()
    assert db.session.get(Payment, payment.id).status == "succeeded"
    entry = db.session.scalar(select(AuditEntry).where(AuditEntry.action == "reconciliation.fix"))
    assert entry.actor_id == admin.user_id and entry.entity_id == payment.provider_ref


def test_a_period_too_long_for_the_page_is_refused_with_a_reason(login_as, fake_stripe):
    response = login_as("admin").post("/payments/reconciliation", {"since": "2020-01-01", "until": ""},
                                      follow_redirects=True)
    assert "flask reconcile" in soup(response).get_text()
    assert not fake_stripe.calls("GET", "/v1/payment_intents")


def test_a_forged_fix_is_refused_and_calls_nothing(login_as, fake_stripe):
    response = login_as("admin").post("/payments/reconciliation/fix", {"kind": "charge", "provider_id": "../x"},
                                      follow_redirects=True)
    assert "Not a Stripe" in soup(response).get_text() and not fake_stripe.seen


def test_concierges_cannot_see_or_run_reconciliation(login_as, fake_stripe):
    concierge = login_as("concierge")
    assert concierge.get("/payments/reconciliation").status_code == 403
    assert concierge.post("/payments/reconciliation", period()).status_code == 403
    fix = {"kind": "payment_intent", "provider_id": "pi_1"}
    assert concierge.post("/payments/reconciliation/fix", fix).status_code == 403
    assert concierge.page("/payments").find("a", string="Reconciliation") is None
