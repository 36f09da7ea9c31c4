"""Refunds leaving the house: PayPal's REST API, payment states that follow the refunds, decisions on
cancellation, simultaneous approvals, the customer's confirmation and the booking's story."""

from __future__ import annotations

import secrets
import threading
from datetime import timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from midas.extensions import db
from midas.models import ErrorGroup, Notification, Payment, Refund, StaffUser, utcnow
from midas.services import DomainError, booking_states, payment_events, refunds, timeline
from midas.tasks import paypal as paypal_tasks
from tests.conftest import make_staff
from tests.fakes import paypal_api
from tests.fakes.paypal_api import fake_paypal, flush_errors, paypal_server  # noqa: F401
from tests.fakes.stripe_api import stripe_server  # noqa: F401
from tests.services.test_refunds import fake_stripe, paid_booking  # noqa: F401


@pytest.fixture
def staff(app):
    return {role: make_staff(role, email=f"{role}@midas.test") for role in ("concierge", "admin", "owner")}


def paypal_paid(starts_in: timedelta = timedelta(days=20), fake=None, **kwargs):
    """A booking paid by PayPal: its payment's provider_ref is the capture PayPal knows."""
    booking, payment = paid_booking(provider="paypal", starts_in=starts_in, **kwargs)
    payment.provider_ref = f"8{secrets.randbelow(10**15):016d}"
    db.session.commit()
    if fake is not None:
        fake.add_capture(payment.provider_ref, paypal_api.paypal_gateway.paypal_value(payment.amount_captured,
                                                                                       payment.currency),
                         payment.currency)
    return booking, payment


def state(payment_id: int) -> tuple[str, int]:
    db.session.expire_all()
    payment = db.session.get(Payment, payment_id)
    return payment.status, payment.amount_refunded


# PayPal through its REST API.

def test_paypal_refund_is_sent_once_with_the_refunds_own_request_id(app, staff, fake_paypal):  # noqa: F811
    booking, payment = paypal_paid(fake=fake_paypal)
    refund = refunds.request_refund(staff["concierge"], booking.reference, payment.id, 150_000, "dates moved")
    refunds.execute(staff["admin"], refund.id)  # a second click
    calls = fake_paypal.calls(f"/v2/payments/captures/{payment.provider_ref}/refund")
    assert len(calls) == 1
    assert calls[0].headers["Paypal-Request-Id"] == f"refund-{refund.id}" == refund.idempotency_key
    assert calls[0].json()["amount"] == {"currency_code": "EUR", "value": "1500.00"}
    assert refund.status == "succeeded" and refund.provider_ref in fake_paypal.refunds
    assert state(payment.id) == ("partially_refunded", 150_000)
    assert db.session.query(Notification).filter_by(template="refund_processed", channel="email").count() == 1


def test_pending_paypal_refund_is_followed_to_its_outcome(app, staff, fake_paypal):  # noqa: F811
    fake_paypal.refund_outcome = "PENDING"
    booking, payment = paypal_paid(fake=fake_paypal)
    refund = refunds.request_refund(staff["concierge"], booking.reference, payment.id, 400_000, "cancelled")
    assert refund.status == "processing" and state(payment.id) == ("succeeded", 0)
    assert refunds.follow_pending_paypal() == 0  # still pending at PayPal: nothing moves
    fake_paypal.fail_next("/v2/payments/refunds/", 503, times=3)
    assert refunds.follow_pending_paypal() == 0  # PayPal unreachable: asked again next time
    fake_paypal.settle_refund(refund.provider_ref, "COMPLETED")
    assert paypal_tasks.follow_refunds() == 1  # the scheduler's periodic job
    assert db.session.get(Refund, refund.id).status == "succeeded"
    assert state(payment.id) == ("partially_refunded", 400_000)
    assert refunds.follow_paypal(refund.id).status == "succeeded"  # asking again changes nothing
    assert len(fake_paypal.calls("/v2/payments/refunds/", method="GET")) == 5


def test_paypal_outage_keeps_the_refund_approved_and_sending_again_reuses_the_request_id(
        app, staff, fake_paypal):  # noqa: F811
    booking, payment = paypal_paid(fake=fake_paypal)
    fake_paypal.fail_next("/refund", 503, times=3)
    refund = refunds.request_refund(staff["concierge"], booking.reference, payment.id, 100_000, "cancelled")
    assert refund.status == "approved" and refund.failure_reason.startswith("Not sent yet")
    refunds.execute(staff["admin"], refund.id)
    request_ids = {call.headers["Paypal-Request-Id"] for call in fake_paypal.calls("/refund")}
    assert request_ids == {f"refund-{refund.id}"} and len(fake_paypal.refunds) == 1
    assert state(payment.id) == ("partially_refunded", 100_000)


def test_refused_paypal_refund_fails_flags_a_payment_error_and_can_be_retried(app, staff, fake_paypal):  # noqa: F811
    fake_paypal.refund_outcome = "TRANSACTION_REFUSED"
    booking, payment = paypal_paid(fake=fake_paypal)
    refund = refunds.request_refund(staff["concierge"], booking.reference, payment.id, 100_000, "cancelled")
    assert refund.status == "failed" and "TRANSACTION_REFUSED" in refund.failure_reason
    refund_id, admin_id, payment_id = refund.id, staff["admin"].id, payment.id
    paypal_api.recorded_errors()
    messages = [group.message for group in db.session.query(ErrorGroup).filter_by(category="PAYMENT")]
    assert any(f"Refund #{refund_id} failed" in message for message in messages), messages
    fake_paypal.refund_outcome = "COMPLETED"
    again = refunds.retry(db.session.get(StaffUser, admin_id), refund_id)
    assert again.status == "succeeded" and again.idempotency_key == f"refund-{again.id}"
    assert state(payment_id) == ("partially_refunded", 100_000)


def test_paypal_ipn_about_our_refund_moves_it_rather_than_adding_one(app, client, staff, fake_paypal):  # noqa: F811
    booking = paypal_api.paypal_booking()
    deliver_ipn(client, fake_paypal.sent(paypal_api.ipn_body("web-accept-completed")))
    payment = db.session.scalars(select(Payment)).one()
    fake_paypal.add_capture(payment.provider_ref, "4250.00", "EUR")
    fake_paypal.refund_outcome = "PENDING"
    refund = refunds.request_refund(staff["admin"], booking.reference, payment.id, 100_000, "storm", "goodwill")
    refund = refunds.approve(staff["owner"], refund.id, "agreed")
    assert refund.status == "processing"
    deliver_ipn(client, fake_paypal.sent(paypal_api.ipn_body("refunded", txn_id=refund.provider_ref,
                                                               mc_gross="-1000.00", mc_fee="-0.00")))
    assert db.session.query(Refund).count() == 1
    assert db.session.get(Refund, refund.id).status == "succeeded"
    assert state(payment.id) == ("partially_refunded", 100_000)


def deliver_ipn(client, body: bytes) -> None:
    response = client.post("/webhooks/paypal/ipn", data=body, content_type="application/x-www-form-urlencoded")
    assert response.status_code == 200, response.get_data(as_text=True)
    paypal_api.run_jobs()


# The payment follows its succeeded refunds.

def test_payment_state_follows_partial_and_full_refunds(app, staff):
    booking, payment = paid_booking(provider="bank_transfer", starts_in=timedelta(days=40))
    first = refunds.request_refund(staff["concierge"], booking.reference, payment.id, 100_000, "part")
    refunds.record_offline(staff["admin"], first.id, "WIRE-1")
    assert state(payment.id) == ("partially_refunded", 100_000)
    rest = payment.amount_captured - 100_000
    second = refunds.request_refund(staff["owner"], booking.reference, payment.id, rest, "the rest", "goodwill")
    refunds.approve(staff["admin"], second.id, "fee waived")
    refunds.record_offline(staff["admin"], second.id, "WIRE-2")
    assert state(payment.id) == ("refunded", payment.amount_captured)


def test_a_stripe_refund_that_fails_after_succeeding_gives_the_money_back_to_the_payment(app, staff, fake_stripe):  # noqa: F811
    booking, payment = paid_booking(starts_in=timedelta(days=20))
    refund = refunds.request_refund(staff["concierge"], booking.reference, payment.id, 400_000, "cancelled")
    sent = fake_stripe.objects["refunds"][refund.provider_ref]
    payment_events.apply_refund({**sent, "status": "succeeded"}, "test")
    payment_events.apply_refund({**sent, "status": "succeeded"}, "test")  # replayed
    assert state(payment.id) == ("partially_refunded", 400_000)
    payment_events.apply_refund({**sent, "status": "failed", "failure_reason": "expired_or_canceled_card"}, "test")
    assert state(payment.id) == ("succeeded", 0)
    assert db.session.query(Notification).filter_by(template="refund_processed", channel="email").count() == 1


def test_a_refund_made_in_stripes_dashboard_becomes_a_refund_row(app, staff, fake_stripe):  # noqa: F811
    booking, payment = paid_booking(starts_in=timedelta(days=20))
    ours = refunds.request_refund(staff["concierge"], booking.reference, payment.id, 100_000, "part")  # processing
    charge = {"id": "ch_1", "payment_intent": payment.provider_ref, "amount": payment.amount,
              "amount_captured": payment.amount, "captured": True}
    payment_events.apply_charge_refund({**charge, "amount_refunded": 100_000}, "test")  # only ours, in flight
    assert db.session.query(Refund).count() == 1
    payment_events.apply_charge_refund({**charge, "amount_refunded": 150_000}, "test")  # 50,000 in the dashboard
    payment_events.apply_charge_refund({**charge, "amount_refunded": 150_000}, "test")  # replayed
    external = db.session.scalars(select(Refund).where(Refund.id != ours.id)).one()
    assert (external.amount, external.status, external.requested_by_id) == (50_000, "succeeded", None)
    assert state(payment.id) == ("partially_refunded", 50_000)
    payment_events.apply_refund({**fake_stripe.objects["refunds"][ours.provider_ref], "status": "succeeded"}, "test")
    assert state(payment.id) == ("partially_refunded", 150_000)


def test_the_database_refuses_refund_states_that_do_not_match_the_amounts(app, staff):
    booking, payment = paid_booking(provider="bank_transfer")
    payment.status = "refunded"  # nothing refunded
    with pytest.raises(IntegrityError):
        db.session.commit()
    db.session.rollback()
    payment = db.session.get(Payment, payment.id)
    payment.status, payment.amount_refunded = "refunded", 1  # refunded, but not in full
    with pytest.raises(IntegrityError):
        db.session.commit()
    db.session.rollback()
    db.session.add(Refund(payment_id=payment.id, booking_id=booking.id, amount=0, currency="EUR", status="approved",
                          reason="zero", idempotency_key="zero-approved"))
    with pytest.raises(IntegrityError):
        db.session.commit()
    db.session.rollback()


def test_a_refunded_payment_still_counts_as_paid_for_the_booking(app, staff):
    booking, payment = paid_booking(provider="bank_transfer")
    refund = refunds.request_refund(staff["concierge"], booking.reference, payment.id, 100_000, "part")
    refunds.record_offline(staff["admin"], refund.id, "WIRE-9")
    assert payment_events.amount_paid(booking.id) == booking.total_amount
    assert [p.id for p in refunds.refundable_payments(db.session.get(type(booking), booking.id))] == [payment.id]


# A cancelled booking with money paid always has a decision.

def test_late_cancellation_records_a_zero_refund_with_its_rule(app, staff):
    booking, payment = paid_booking(provider="bank_transfer", starts_in=timedelta(hours=30))
    booking_states.cancel(staff["concierge"], booking.reference, "customer changed plans")
    decision = db.session.scalars(select(Refund).where(Refund.booking_id == booking.id)).one()
    assert (decision.status, decision.amount, decision.policy_rule) == ("no_refund", 0, "car: 0% with less notice")
    assert decision.policy_version == 0 and decision.reason == "Booking cancelled: customer changed plans"
    assert state(payment.id) == ("succeeded", 0)


def test_early_cancellation_requests_the_policy_refund(app, staff):
    booking, payment = paid_booking(provider="bank_transfer", starts_in=timedelta(days=4))
    booking_states.cancel(staff["concierge"], booking.reference, "flight cancelled")
    decision = db.session.scalars(select(Refund).where(Refund.booking_id == booking.id)).one()
    assert (decision.status, decision.amount) == ("approved", 200_000)  # 50% of the rental, within the threshold
    assert decision.policy_rule == "car: 50% at 72+ hours notice" and decision.requested_by_id == staff["concierge"].id


def test_cancelling_an_unpaid_booking_records_no_refund(app, staff):
    booking, payment = paid_booking(provider="bank_transfer", starts_in=timedelta(days=4))
    payment.status, payment.amount_captured = "pending", 0
    db.session.commit()
    booking_states.cancel(staff["concierge"], booking.reference, "never paid")
    assert db.session.query(Refund).count() == 0


# Simultaneous approvals.

@pytest.mark.reliability
def test_two_simultaneous_approvals_make_one_provider_call(app, staff, fake_stripe):  # noqa: F811
    booking, payment = paid_booking(starts_in=timedelta(days=1))
    refund = refunds.request_refund(staff["admin"], booking.reference, payment.id, 420_000, "storm", "force_majeure")
    refund_id, approver_ids = refund.id, [staff["owner"].id, make_admin().id]
    db.session.rollback()
    fake_stripe.slow_next("POST", "/v1/refunds", seconds=0.3)
    barrier = threading.Barrier(2)
    outcomes: list[str] = []

    def click(approver_id: int) -> None:
        with app.app_context():
            barrier.wait()
            try:
                outcomes.append(refunds.approve(db.session.get(StaffUser, approver_id), refund_id, "ok").status)
            except DomainError as exc:
                outcomes.append(str(exc))
            db.session.remove()

    threads = [threading.Thread(target=click, args=(approver,)) for approver in approver_ids]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=20)
    assert sorted(outcomes) == ["This refund is already approved.", "processing"] or \
        sorted(outcomes) == ["This refund is already processing.", "processing"]
    assert len(fake_stripe.calls("POST", "/v1/refunds")) == 1


def make_admin() -> StaffUser:
    return make_staff("admin", email=f"admin-{secrets.token_hex(3)}@midas.test")


# The customer hears about it; the booking tells the story.

def test_refund_confirmation_goes_by_sms_too_when_the_customer_agreed(app, staff):
    booking, payment = paid_booking(provider="bank_transfer")
    booking.customer.phone, booking.customer.sms_opt_in = "+33612345678", True
    refund = refunds.request_refund(staff["concierge"], booking.reference, payment.id, 100_000, "part")
    refunds.record_offline(staff["admin"], refund.id, "WIRE-3")
    sent = {n.channel: n for n in db.session.scalars(select(Notification).filter_by(template="refund_processed"))}
    assert set(sent) == {"email", "sms"} and sent["sms"].status != "cancelled"
    assert sent["sms"].recipient == "+33612345678"


def test_no_refund_sms_without_consent(app, staff):
    booking, payment = paid_booking(provider="bank_transfer")
    booking.customer.phone, booking.customer.sms_opt_in = "+33612345678", False
    refund = refunds.request_refund(staff["concierge"], booking.reference, payment.id, 100_000, "part")
    refunds.record_offline(staff["admin"], refund.id, "WIRE-4")
    sms = db.session.scalars(select(Notification).filter_by(template="refund_processed", channel="sms")).one()
    assert sms.status == "cancelled" and "agreed to SMS" in sms.last_error


def test_booking_timeline_tells_the_refund_story(app, staff, fake_stripe):  # noqa: F811
    booking, payment = paid_booking(starts_in=timedelta(days=40), rental=900_000)
    refund = refunds.request_refund(staff["concierge"], booking.reference, payment.id, 900_000, "trip moved")
    refunds.approve(staff["admin"], refund.id, "fine")
    payment_events.apply_refund({**fake_stripe.objects["refunds"][refund.provider_ref], "status": "succeeded"}, "test")
    steps = [(entry.title, entry.status) for entry in timeline.for_booking(db.session.get(type(booking), booking.id))
             if entry.kind == "refund"]
    money = "€9,000.00"
    assert steps == [(f"Refund #{refund.id} {money} requested", "pending_approval"),
                     (f"Refund #{refund.id} {money} approved", "approved"),
                     (f"Refund #{refund.id} {money} sent, processing", "processing"),
                     (f"Refund #{refund.id} {money} succeeded", "succeeded")]
    details = [entry.detail for entry in timeline.for_booking(booking) if entry.kind == "refund"]
    assert "trip moved" in details[0] and "fine" in details[1]


def test_recent_refund_timing_is_counted(app, staff):
    booking, payment = paid_booking(provider="bank_transfer")
    refund = refunds.request_refund(staff["concierge"], booking.reference, payment.id, 100_000, "part")
    refund.created_at = utcnow() - timedelta(days=3)
    payment.succeeded_at = utcnow() - timedelta(days=4)
    db.session.commit()
    refunds.record_offline(staff["admin"], refund.id, "WIRE-5")
    from midas.services import refund_dashboard

    figures = refund_dashboard.kpis()
    assert figures.average_days == pytest.approx(3.0, abs=0.1)
    assert figures.refunded_this_month == {"EUR": 100_000}
    assert figures.refund_rate_bp == 10000
