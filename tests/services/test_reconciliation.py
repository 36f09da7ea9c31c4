"""Reconciliation with the real `stripe` SDK against the fake Stripe API, over several pages of results."""

from __future__ import annotations

import secrets
import time
from datetime import timedelta

import pytest
from sqlalchemy import select

from midas.extensions import db
from midas.models import AuditEntry, Payment, Refund, utcnow
from midas.services import reconciliation
from midas.services.reconciliation import INTENT, REFUND, NothingToFix
from midas.tasks.reconciliation import reconcile_daily
from tests.fakes import stripe_api
from tests.fakes.stripe_api import card_booking, card_payment, charge, intent_for, payment_intent, refund, succeeded

fake_stripe, stripe_server = stripe_api.fake_stripe, stripe_api.stripe_server
FILLER = 230  # three pages of 100


def yesterday():
    return utcnow().date() - timedelta(days=1)


def refund_row(payment: Payment, status: str, amount: int, provider_ref: str) -> Refund:
    row = Refund(payment=payment, booking=payment.booking, amount=amount, currency=payment.currency, status=status,
                 reason="Guest cancelled", provider_ref=provider_ref, idempotency_key=f"refund:{secrets.token_hex(6)}")
    db.session.add(row)
    db.session.commit()
    return row


def matching_filler(fake, booking) -> None:
    """Paid intents that agree with our rows, spread over the pages."""
    start = int(time.time()) - 3600
    for n in range(FILLER):
        intent = succeeded(payment_intent(id=f"pi_fill{n:04d}", amount=1000 + n, currency="eur", created=start + n))
        fake.add("payment_intents", intent)
        db.session.add(Payment(booking=booking, provider="stripe", kind="late_fee", status="succeeded",
                               amount=1000 + n, currency="EUR", amount_captured=1000 + n, amount_refunded=0,
                               provider_ref=intent["id"], idempotency_key=f"fill:{n}"))
    db.session.commit()


@pytest.fixture
def world(fake_stripe):
    """One of each kind of difference, hidden among pages of agreeing intents."""
    paid = card_booking(status="confirmed")
    item = paid.item
    matching_filler(fake_stripe, paid)
    ok = card_payment(paid, status="succeeded")
    fake_stripe.add("payment_intents", succeeded(intent_for(ok)))
    unpaid = card_booking(item=item, starts_in=timedelta(days=30))
    stale = card_payment(unpaid, status="pending")
    fake_stripe.add("payment_intents", succeeded(intent_for(stale)))
    other = card_booking(status="confirmed", item=item, starts_in=timedelta(days=50))
    wrong_amount = card_payment(other, status="succeeded")
    fake_stripe.add("payment_intents", succeeded(intent_for(wrong_amount, amount=wrong_amount.amount + 500)))
    adopted = card_booking(item=item, starts_in=timedelta(days=70))
    stranger = fake_stripe.add("payment_intents", succeeded(payment_intent(
        amount=adopted.total_amount, currency="eur", metadata={"booking_reference": adopted.reference})))
    gone = card_payment(other, status="succeeded", amount=1200, intent_id="pi_gone")
    return {"ok": ok, "stale": stale, "wrong_amount": wrong_amount, "stranger": stranger, "gone": gone,
            "adopted": adopted}


def problems(report) -> set[tuple[str, str, str]]:
    return {(d.kind, d.provider_id, d.problem) for d in report.differences}


def test_reconciliation_pages_through_every_intent_and_finds_each_kind_of_difference(fake_stripe, world):
    report = reconciliation.reconcile(yesterday())

    assert report.intents_checked == FILLER + 4
    assert len(fake_stripe.calls("GET", "/v1/payment_intents")) >= 3  # several pages
    assert problems(report) == {
        (INTENT, world["stale"].provider_ref, "status_differs"),
        (INTENT, world["wrong_amount"].provider_ref, "amount_differs"),
        (INTENT, world["stranger"]["id"], "missing_here"),
        (INTENT, "pi_gone", "missing_there"),
    }
    [status] = [d for d in report.differences if d.problem == "status_differs"]
    assert (status.ours, status.theirs) == ("pending", "succeeded")


def test_a_period_before_anything_happened_is_clean(fake_stripe):
    report = reconciliation.reconcile(yesterday())
    assert report.clean and report.intents_checked == 0


def test_fix_applies_stripes_object_through_the_webhook_path_and_the_difference_goes(fake_stripe, world):
    stale = world["stale"]

    outcome = reconciliation.fix(INTENT, stale.provider_ref)
    reconciliation.fix(INTENT, stale.provider_ref)  # a second click changes nothing more

    assert "succeeded" in outcome
    assert db.session.get(Payment, stale.id).status == "succeeded"
    assert world["stale"].booking.status == "confirmed"
    fixes = db.session.scalars(select(AuditEntry).where(AuditEntry.action == "reconciliation.fix")).all()
    assert len(fixes) == 2
    assert (INTENT, stale.provider_ref, "status_differs") not in problems(reconciliation.reconcile(yesterday()))


def test_fix_records_an_intent_made_outside_midas_for_its_booking(fake_stripe, world):
    reconciliation.fix(INTENT, world["stranger"]["id"])

    payment = db.session.scalar(select(Payment).where(Payment.provider_ref == world["stranger"]["id"]))
    assert payment is not None and payment.booking_id == world["adopted"].id and payment.status == "succeeded"


def test_an_intent_we_cannot_place_is_not_fixed_and_says_why(fake_stripe):
    intent = fake_stripe.add("payment_intents", succeeded(payment_intent(metadata={})))
    with pytest.raises(NothingToFix, match="names no booking"):
        reconciliation.fix(INTENT, intent["id"])


def test_refund_differences_missing_status_and_amount(fake_stripe):
    booking = card_booking(status="confirmed")
    payment = card_payment(booking, status="succeeded", amount=300000)
    fake_stripe.add("payment_intents", succeeded(intent_for(payment)))
    pi = payment.provider_ref
    fake_stripe.add("refunds", refund(id="re_ok", payment_intent=pi, amount=1000, currency="eur"))
    refund_row(payment, "succeeded", 1000, "re_ok")
    fake_stripe.add("refunds", refund(id="re_late", payment_intent=pi, amount=2000, currency="eur"))
    late = refund_row(payment, "processing", 2000, "re_late")
    fake_stripe.add("refunds", refund(id="re_diff", payment_intent=pi, amount=3000, currency="eur"))
    refund_row(payment, "succeeded", 3500, "re_diff")
    fake_stripe.add("charges", charge(id="ch_dash", payment_intent=pi, amount=300000, amount_refunded=10000))
    fake_stripe.add("refunds", refund(id="re_dash", payment_intent=pi, charge="ch_dash", amount=4000, currency="eur"))
    refund_row(payment, "succeeded", 900, "re_gone")

    report = reconciliation.reconcile(yesterday())

    assert problems(report) == {(REFUND, "re_late", "status_differs"), (REFUND, "re_diff", "amount_differs"),
                                (REFUND, "re_dash", "missing_here"), (REFUND, "re_gone", "missing_there")}
    reconciliation.fix(REFUND, "re_late")
    reconciliation.fix(REFUND, "re_dash")
    assert db.session.get(Refund, late.id).status == "succeeded"
    assert db.session.get(Payment, payment.id).amount_refunded == 10000
    assert problems(reconciliation.reconcile(yesterday())) == {
        (REFUND, "re_diff", "amount_differs"), (REFUND, "re_gone", "missing_there")}


def test_the_last_report_is_kept_for_the_page(fake_stripe, world):
    reconciliation.run_and_save(yesterday(), utcnow().date())

    kept = reconciliation.last_report()
    assert kept is not None and kept.until == utcnow().date() and len(kept.differences) == 4
    assert {d.fixable for d in kept.differences if d.problem == "missing_there"} == {False}


def test_the_daily_job_reconciles_recent_days_and_keeps_the_report(fake_stripe, world):
    assert reconcile_daily() == 4
    assert reconciliation.last_report().intents_checked == FILLER + 4


def test_cli_prints_the_differences_and_says_when_clean(app, fake_stripe, world):
    runner = app.test_cli_runner()
    result = runner.invoke(args=["reconcile", "--since", yesterday().isoformat()])
    assert result.exit_code == 0, result.output
    assert "Missing at Stripe" in result.output and "pi_gone" in result.output and "4 difference(s)." in result.output

    db.session.delete(db.session.get(Payment, world["gone"].id))
    db.session.commit()
    reconciliation.fix(INTENT, world["stale"].provider_ref)
    fake_stripe.intents[world["wrong_amount"].provider_ref]["amount"] = world["wrong_amount"].amount
    reconciliation.fix(INTENT, world["stranger"]["id"])
    clean = runner.invoke(args=["reconcile", "--since", yesterday().isoformat()])
    assert clean.exit_code == 0 and "No differences." in clean.output, clean.output
