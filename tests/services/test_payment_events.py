"""Applying Stripe objects to our records: the one code path webhooks, checkout and reconciliation share."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from midas.extensions import db
from midas.models import AuditEntry, Dispute, ErrorGroup, Notification, Payment, Refund, utcnow
from midas.services import deposits, payment_events
from midas.services.auth import PermissionDenied
from midas.services.error_capture import flush_deferred
from midas.services.payment_events import PaidButNotConfirmed, PaymentMismatch, UnknownObject, can_move
from tests import factories
from tests.conftest import make_staff
from tests.fakes import stripe_api
from tests.fakes.stripe_api import (
    authorized,
    card_booking,
    card_payment,
    declined,
    dispute,
    intent_for,
    payment_intent,
    refund,
    succeeded,
)

fake_stripe, stripe_server = stripe_api.fake_stripe, stripe_api.stripe_server


def audit_actions(entity_type: str, entity_id: int) -> list[str]:
    return list(db.session.scalars(select(AuditEntry.action).where(
        AuditEntry.entity_type == entity_type, AuditEntry.entity_id == str(entity_id)).order_by(AuditEntry.id)))


def templates_sent(booking_id: int) -> list[str]:
    return sorted(db.session.scalars(select(Notification.template).where(Notification.booking_id == booking_id)))


def error_groups(category: str) -> list[ErrorGroup]:
    flush_deferred()
    return list(db.session.scalars(select(ErrorGroup).where(ErrorGroup.category == category)))


@pytest.mark.parametrize(("current", "target", "allowed"), [
    ("pending", "succeeded", True), ("pending", "failed", True), ("failed", "succeeded", True),
    ("processing", "failed", True), ("failed", "processing", True), ("requires_action", "processing", True),
    ("succeeded", "processing", False), ("succeeded", "failed", False), ("processing", "requires_action", False),
    ("canceled", "succeeded", False), ("authorized", "released", True), ("pending", "released", False),
    ("authorized", "succeeded", True), ("released", "succeeded", False), ("failed", "requires_action", False),
])
def test_payment_states_only_move_forward(current, target, allowed):
    assert can_move(current, target) is allowed


def test_a_succeeded_intent_marks_the_payment_paid_and_confirms_the_booking(app):
    booking = card_booking()
    payment = card_payment(booking)

    payment_events.apply_payment_intent(succeeded(intent_for(payment)), "test")

    db.session.refresh(payment)
    assert (payment.status, payment.amount_captured, payment.method) == ("succeeded", payment.amount, "card")
    assert payment.succeeded_at is not None
    assert booking.status == "confirmed" and booking.hold_expires_at is None
    assert templates_sent(booking.id) == ["booking_confirmation", "payment_receipt"]


def test_applying_the_same_intent_again_changes_nothing_more(app):
    booking = card_booking()
    payment = card_payment(booking)
    paid = succeeded(intent_for(payment))

    for _ in range(3):
        payment_events.apply_payment_intent(paid, "test")

    assert audit_actions("payment", payment.id) == ["payment.succeeded"]
    assert audit_actions("booking", booking.id).count("booking.confirmed") == 1
    assert templates_sent(booking.id) == ["booking_confirmation", "payment_receipt"]


def test_a_late_processing_after_succeeded_changes_nothing(app):
    booking = card_booking()
    payment = card_payment(booking)
    payment_events.apply_payment_intent(succeeded(intent_for(payment)), "test")

    payment_events.apply_payment_intent(intent_for(payment, status="processing"), "test")

    db.session.refresh(payment)
    assert payment.status == "succeeded" and booking.status == "confirmed"


def test_a_declined_card_records_the_decline_and_sends_a_recovery_email(app):
    booking = card_booking()
    payment = card_payment(booking)

    payment_events.apply_payment_intent(declined(intent_for(payment), "insufficient_funds"), "test")

    db.session.refresh(payment)
    assert (payment.status, payment.failure_code) == ("failed", "insufficient_funds")
    assert payment.failure_message == "Your card has insufficient funds."
    assert booking.status == "pending_payment"
    assert templates_sent(booking.id) == ["payment_failed"]
    assert [g.severity for g in error_groups("PAYMENT")] == ["MEDIUM"]


def test_a_retry_after_a_decline_can_still_succeed(app):
    booking = card_booking()
    payment = card_payment(booking)
    payment_events.apply_payment_intent(declined(intent_for(payment)), "test")

    payment_events.apply_payment_intent(succeeded(intent_for(payment)), "test")

    db.session.refresh(payment)
    assert payment.status == "succeeded" and booking.status == "confirmed"


def test_an_amount_that_differs_from_ours_is_flagged_and_the_booking_not_confirmed(app):
    booking = card_booking()
    payment = card_payment(booking)

    with pytest.raises(PaymentMismatch, match="amount"):
        payment_events.apply_payment_intent(succeeded(intent_for(payment, amount=100)), "test")

    db.session.refresh(booking)
    assert booking.status == "pending_payment"
    assert [g.severity for g in error_groups("PAYMENT")] == ["HIGH"]


def test_a_currency_that_differs_from_the_bookings_is_flagged(app):
    booking = card_booking()
    payment = card_payment(booking)

    with pytest.raises(PaymentMismatch, match="currency"):
        payment_events.apply_payment_intent(succeeded(intent_for(payment, currency="usd")), "test")
    db.session.refresh(booking)
    assert booking.status == "pending_payment"


def test_a_booking_repriced_after_the_intent_is_not_confirmed_by_the_smaller_payment(app):
    booking = card_booking(total=425000)
    payment = card_payment(booking)
    booking.total_amount = 500000
    db.session.commit()

    with pytest.raises(PaymentMismatch, match="paid 425000 of 500000"):
        payment_events.apply_payment_intent(succeeded(intent_for(payment)), "test")

    db.session.refresh(payment)
    assert payment.status == "succeeded" and booking.status == "pending_payment"


def test_money_for_a_slot_someone_else_took_is_flagged_high(app):
    booking = card_booking()
    payment = card_payment(booking)
    booking.status = "quote"  # the hold expired while the customer paid …
    rival = factories.booking(booking.item, starts_at=booking.starts_at, days=1, status="confirmed")  # … and it went
    db.session.commit()

    with pytest.raises(PaidButNotConfirmed, match="slot is taken"):
        payment_events.apply_payment_intent(succeeded(intent_for(payment)), "test")

    db.session.refresh(payment)
    assert payment.status == "succeeded" and booking.status == "quote" and rival.status == "confirmed"
    assert "HIGH" in [g.severity for g in error_groups("PAYMENT")]


def test_an_intent_we_know_nothing_about_is_left_for_later(app):
    assert payment_events.apply_payment_intent(payment_intent(status="succeeded"), "test") is None


def test_an_intent_whose_id_was_lost_in_a_crash_is_found_by_its_metadata(app):
    booking = card_booking()
    payment = card_payment(booking)
    payment.provider_ref = None
    db.session.commit()
    intent = payment_intent(amount=payment.amount, currency="eur", status="processing",
                            metadata={"booking_reference": booking.reference, "payment_id": str(payment.id)})

    found = payment_events.apply_payment_intent(intent, "test")

    assert found.id == payment.id and (found.provider_ref, found.status) == (intent["id"], "processing")


def test_an_intent_made_in_stripes_dashboard_for_a_booking_is_recorded(app):
    booking = card_booking()
    intent = succeeded(payment_intent(amount=booking.total_amount, currency="eur",
                                      metadata={"booking_reference": booking.reference}))

    payment = payment_events.apply_payment_intent(intent, "test")

    assert (payment.booking_id, payment.kind, payment.status, payment.provider_ref) == (
        booking.id, "charge", "succeeded", intent["id"])
    assert booking.status == "confirmed"


def test_a_deposit_hold_is_authorized_then_released_when_cancelled(app):
    booking = card_booking(status="confirmed")
    hold = card_payment(booking, kind="deposit")

    payment_events.apply_payment_intent(authorized(intent_for(hold)), "test")
    db.session.refresh(hold)
    assert hold.status == "authorized"

    payment_events.apply_payment_intent(intent_for(hold, status="canceled"), "test")
    db.session.refresh(hold)
    assert hold.status == "released"
    assert templates_sent(booking.id) == []  # holds send no receipts


def test_a_dispute_is_recorded_with_amount_reason_and_evidence_date_and_admins_alerted(app):
    make_staff("admin", email="admin@midas.test")
    booking = card_booking(status="confirmed")
    payment = card_payment(booking, status="succeeded")
    due_by = int(datetime(2026, 8, 14, 23, 59, 59, tzinfo=UTC).timestamp())

    payment_events.apply_dispute(dispute(payment_intent=payment.provider_ref, amount=425000, currency="eur",
                                         reason="fraudulent", status="needs_response",
                                         evidence_details={"due_by": due_by}), "test")

    row = db.session.scalar(select(Dispute))
    assert (row.payment_id, row.booking_id, row.amount, row.currency, row.reason, row.status) == (
        payment.id, booking.id, 425000, "EUR", "fraudulent", "needs_response")
    assert row.evidence_due_by == datetime(2026, 8, 14, 23, 59, 59, tzinfo=UTC)
    alert = db.session.scalar(select(Notification).where(Notification.template == "dispute_alert"))
    assert alert.recipient == "admin@midas.test"


def test_a_dispute_never_goes_back_to_an_earlier_status(app):
    booking = card_booking(status="confirmed")
    payment = card_payment(booking, status="succeeded")
    first = dispute(payment_intent=payment.provider_ref, status="needs_response")

    for status in ("needs_response", "under_review", "won", "needs_response", "under_review"):
        payment_events.apply_dispute({**first, "status": status}, "test")

    rows = list(db.session.scalars(select(Dispute)))
    assert [(r.status, r.provider_ref) for r in rows] == [("won", first["id"])]
    assert audit_actions("dispute", rows[0].id) == ["dispute.opened", "dispute.under_review", "dispute.won"]


def test_a_dispute_about_a_payment_we_do_not_know_is_left_for_later(app):
    assert payment_events.apply_dispute(dispute(payment_intent="pi_unknown"), "test") is None
    assert payment_events.apply_dispute(dispute(payment_intent=None), "test") is None


def test_a_charge_refund_raises_the_refunded_amount_and_never_lowers_it(app):
    booking = card_booking(status="confirmed")
    payment = card_payment(booking, status="succeeded")
    base = {"payment_intent": payment.provider_ref, "amount": payment.amount}

    payment_events.apply_charge_refund({"id": "ch_1", **base, "amount_refunded": 100000}, "test")
    payment_events.apply_charge_refund({"id": "ch_1", **base, "amount_refunded": 50000}, "test")  # late and stale

    db.session.refresh(payment)
    assert payment.amount_refunded == 100000


def test_a_refund_row_follows_stripe_forwards_only(app):
    booking = card_booking(status="confirmed")
    payment = card_payment(booking, status="succeeded")
    row = Refund(payment=payment, booking=booking, amount=100000, currency="EUR", status="processing",
                 reason="goodwill", provider_ref="re_midas1", idempotency_key="refund:1")
    db.session.add(row)
    db.session.commit()
    shape = refund(id="re_midas1", payment_intent=payment.provider_ref, amount=100000, currency="eur")

    payment_events.apply_refund({**shape, "status": "succeeded"}, "test")
    payment_events.apply_refund({**shape, "status": "pending"}, "test")  # late

    db.session.refresh(row)
    assert row.status == "succeeded" and row.succeeded_at is not None
    assert templates_sent(booking.id) == ["refund_processed"]


def test_a_refund_of_an_unknown_payment_is_left_for_later(app):
    with pytest.raises(UnknownObject):
        payment_events.apply_refund(refund(payment_intent="pi_unknown"), "test")


def test_staff_capture_part_of_a_deposit_and_stripe_releases_the_rest(app, fake_stripe):
    admin = make_staff("admin")
    booking = card_booking(status="in_progress")
    hold = card_payment(booking, kind="deposit", status="authorized")
    fake_stripe.add("payment_intents", authorized(intent_for(hold)))

    captured = deposits.capture_deposit(admin, hold.id, 120000)

    assert (captured.status, captured.amount_captured) == ("succeeded", 120000)
    assert fake_stripe.calls("POST", "/capture")[0].idempotency_key == f"payment:{hold.id}:capture:120000"
    assert "deposit.captured" in audit_actions("payment", hold.id)


def test_only_admins_capture_and_only_within_the_hold(app, fake_stripe):
    booking = card_booking(status="in_progress")
    hold = card_payment(booking, kind="deposit", status="authorized")
    with pytest.raises(PermissionDenied):
        deposits.capture_deposit(make_staff("concierge"), hold.id, 1000)
    with pytest.raises(deposits.InvalidInput):
        deposits.capture_deposit(make_staff("admin"), hold.id, hold.amount + 1)
    assert fake_stripe.calls("POST") == []


def test_a_concierge_releases_a_hold(app, fake_stripe):
    booking = card_booking(status="completed")
    hold = card_payment(booking, kind="deposit", status="authorized")
    fake_stripe.add("payment_intents", authorized(intent_for(hold)))

    released = deposits.release_deposit(make_staff("concierge"), hold.id)

    assert released.status == "released"
    with pytest.raises(deposits.NotAHold):
        deposits.release_deposit(None, hold.id)


def test_holds_are_released_48_hours_after_the_return_unless_captured(app, fake_stripe):
    now = utcnow()
    returned = {}
    for name, hours_ago in (("old", 49), ("recent", 47)):
        booking = card_booking(status="completed", starts_in=-timedelta(days=5))
        booking.returned_at = now - timedelta(hours=hours_ago)
        hold = card_payment(booking, kind="deposit", status="authorized")
        fake_stripe.add("payment_intents", authorized(intent_for(hold)))
        returned[name] = hold
    db.session.commit()

    released = deposits.release_returned_deposits(now=now)

    assert released == [returned["old"].id]
    assert db.session.get(Payment, returned["recent"].id).status == "authorized"
    assert deposits.release_returned_deposits(now=now) == []


def test_a_hold_stripe_already_ended_is_recorded_as_released(app, fake_stripe):
    booking = card_booking(status="completed")
    hold = card_payment(booking, kind="deposit", status="authorized")
    fake_stripe.add("payment_intents", {**intent_for(hold), "status": "canceled", "cancellation_reason": "automatic"})

    assert deposits.release_deposit(None, hold.id).status == "released"


def test_amount_paid_counts_only_succeeded_charges_in_the_bookings_currency(app):
    booking = card_booking(total=425000)
    card_payment(booking, status="succeeded", amount=100000)
    card_payment(booking, status="failed", amount=325000)
    card_payment(booking, kind="deposit", status="authorized")

    assert payment_events.amount_paid(booking.id) == 100000
    assert db.session.scalar(select(func.count()).select_from(Payment)) == 3
