"""A late return's fee is charged exactly once: from the deposit hold, or as a balance the customer pays by link.

The real `stripe` SDK talks to the local fake Stripe (tests/fakes/stripe_api.py); jobs run as in
production (in-process on SQLite, an RQ worker on PostgreSQL + Redis).
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from rq.utils import import_attribute
from sqlalchemy import func, select

from midas.extensions import db
from midas.models import AuditEntry, Booking, Notification, Payment, utcnow
from midas.services import booking_states, checkout, late_fees
from midas.services.late_fees import charge_for
from tests.conftest import make_staff
from tests.fakes import stripe_api
from tests.fakes.stripe_api import authorized, card_booking, card_payment, deliver, event, intent_for, run_jobs

fake_stripe, stripe_server = stripe_api.fake_stripe, stripe_api.stripe_server

# Riva Aquarama at 4,250.00 a day, yacht rules: 20% of the daily rate per started hour past 30 minutes' grace.
DAILY = 425000
THREE_HOURS_LATE_FEE = DAILY * 2000 * 3 // 10000  # 2,550.00


@pytest.fixture
def staff(app):
    return make_staff("concierge")


def returned_late(app, staff) -> Booking:
    """A yacht on the water since yesterday, without a deposit hold, back three hours (less 20 minutes) late."""
    booking = card_booking(status="in_progress", starts_in=-timedelta(days=1, hours=6))
    booking_states.complete(staff, booking.reference, returned_at=booking.ends_at + timedelta(hours=2, minutes=40))
    run_jobs(app)
    return db.session.get(Booking, booking.id)


def count(model, *where) -> int:
    return db.session.scalar(select(func.count()).select_from(model).where(*where))


def audits(booking: Booking, action: str) -> int:
    return count(AuditEntry, AuditEntry.entity_type == "booking", AuditEntry.entity_id == str(booking.id),
                 AuditEntry.action == action)


def balance_messages(booking: Booking) -> list[tuple[str, str]]:
    return sorted(db.session.execute(select(Notification.channel, Notification.template).where(
        Notification.booking_id == booking.id, Notification.template == "balance_due")).tuples())


def with_hold(fake, app, staff, deposit: int = 500000) -> tuple[Booking, Payment]:
    """As `returned_late`, with a deposit hold authorised at the fake Stripe before the return is recorded."""
    booking = card_booking(status="in_progress", deposit=deposit, starts_in=-timedelta(days=1, hours=6))
    hold = card_payment(booking, kind="deposit", status="authorized")
    fake.add("payment_intents", authorized(intent_for(hold)))
    booking_states.complete(staff, booking.reference, returned_at=booking.ends_at + timedelta(hours=2, minutes=40))
    run_jobs(app)
    return db.session.get(Booking, booking.id), db.session.get(Payment, hold.id)


def test_the_late_fee_is_captured_from_the_deposit_hold_and_the_rest_released(app, staff, fake_stripe):
    booking, hold = with_hold(fake_stripe, app, staff)

    assert [line.amount for line in booking.lines if line.kind == "late_fee"] == [THREE_HOURS_LATE_FEE]
    assert (hold.status, hold.amount_captured) == ("succeeded", THREE_HOURS_LATE_FEE)
    capture = fake_stripe.calls("POST", "/capture")
    assert len(capture) == 1 and capture[0].params["amount_to_capture"] == str(THREE_HOURS_LATE_FEE)
    assert capture[0].idempotency_key == f"booking:{booking.id}:late_fee:{THREE_HOURS_LATE_FEE}:capture"
    intent = fake_stripe.intents[hold.provider_ref]
    assert (intent["amount_received"], intent["amount_capturable"]) == (THREE_HOURS_LATE_FEE, 0)  # the rest released
    charge = charge_for(booking)
    assert (charge.status, charge.from_hold, charge.outstanding) == ("captured", THREE_HOURS_LATE_FEE, 0)
    assert audits(booking, "booking.late_fee_captured") == 1
    assert count(Payment, Payment.booking_id == booking.id, Payment.kind == "late_fee") == 0
    assert balance_messages(booking) == []
    assert checkout.for_token(booking.checkout_token).state == "paid"


def test_charging_again_never_captures_twice(app, staff, fake_stripe):
    booking, hold = with_hold(fake_stripe, app, staff)

    for _ in range(2):
        assert late_fees.charge_late_fee(booking.id).status == "captured"
    assert late_fees.charge_outstanding() == []

    assert len(fake_stripe.calls("POST", "/capture")) == 1
    assert audits(booking, "booking.late_fee_captured") == 1
    assert db.session.get(Payment, hold.id).amount_captured == THREE_HOURS_LATE_FEE


def test_a_capture_whose_answer_timed_out_is_retried_with_the_same_key(app, staff, fake_stripe):
    fake_stripe.slow_next("POST", "/capture", seconds=1.5)  # Stripe captured, but its answer came too late

    booking, hold = with_hold(fake_stripe, app, staff)

    keys = {call.idempotency_key for call in fake_stripe.calls("POST", "/capture")}
    assert len(fake_stripe.calls("POST", "/capture")) == 2 and len(keys) == 1
    assert (hold.status, hold.amount_captured) == ("succeeded", THREE_HOURS_LATE_FEE)
    assert fake_stripe.intents[hold.provider_ref]["amount_received"] == THREE_HOURS_LATE_FEE


def test_stripe_down_leaves_the_fee_for_the_sweep_which_charges_it_once(app, staff, fake_stripe):
    fake_stripe.fail_next("POST", "/capture", status=500, times=3)  # the first attempt and the SDK's two retries

    booking, hold = with_hold(fake_stripe, app, staff)  # the job failed (RQ would retry it later)
    assert charge_for(booking).status == "uncharged" and hold.status == "authorized"

    assert late_fees.charge_outstanding() == [booking.reference]

    db.session.expire_all()
    assert charge_for(db.session.get(Booking, booking.id)).status == "captured"
    assert db.session.get(Payment, hold.id).amount_captured == THREE_HOURS_LATE_FEE
    attempts = fake_stripe.calls("POST", "/capture")
    assert len(attempts) == 4 and len({call.idempotency_key for call in attempts}) == 1


def test_without_a_hold_a_balance_payment_is_opened_and_the_customer_told(app, staff, fake_stripe):
    booking = card_booking(status="in_progress", starts_in=-timedelta(days=1, hours=6))
    booking.customer.phone = "+447700900123"
    db.session.commit()
    booking_states.complete(staff, booking.reference, returned_at=booking.ends_at + timedelta(hours=2, minutes=40))
    run_jobs(app)

    balance = db.session.scalar(select(Payment).where(Payment.booking_id == booking.id))
    assert (balance.kind, balance.provider, balance.status, balance.amount) == (
        "late_fee", "stripe", "pending", THREE_HOURS_LATE_FEE)
    assert balance.idempotency_key == f"booking:{booking.id}:late_fee:{THREE_HOURS_LATE_FEE}"
    assert fake_stripe.calls("POST") == []  # nothing to capture: the customer pays through the link
    assert balance_messages(booking) == [("email", "balance_due"), ("sms", "balance_due")]
    assert charge_for(booking).status == "balance_due" and audits(booking, "booking.late_fee_due") == 1
    view = checkout.for_token(booking.checkout_token)
    assert (view.state, view.amount_due, view.latest_payment.id) == ("balance", THREE_HOURS_LATE_FEE, balance.id)


def test_a_hold_smaller_than_the_fee_is_left_alone_and_a_balance_asked(app, staff, fake_stripe):
    booking, hold = with_hold(fake_stripe, app, staff, deposit=100000)

    assert fake_stripe.calls("POST", "/capture") == [] and hold.status == "authorized"
    assert charge_for(booking).status == "balance_due"
    assert count(Payment, Payment.booking_id == booking.id, Payment.kind == "late_fee") == 1


def test_opening_the_balance_again_changes_nothing(app, staff, fake_stripe):
    booking = returned_late(app, staff)

    for _ in range(2):
        assert late_fees.charge_late_fee(booking.id).status == "balance_due"
    assert late_fees.charge_outstanding() == []

    assert count(Payment, Payment.booking_id == booking.id) == 1
    assert balance_messages(booking) == [("email", "balance_due")]
    assert audits(booking, "booking.late_fee_due") == 1


def test_a_return_on_time_charges_nothing(app, staff, fake_stripe):
    booking = card_booking(status="in_progress", starts_in=-timedelta(days=1, hours=6))
    hold = card_payment(booking, kind="deposit", status="authorized")
    booking_states.complete(staff, booking.reference, returned_at=booking.ends_at + timedelta(minutes=20))
    run_jobs(app)

    assert charge_for(db.session.get(Booking, booking.id)).status == "none"
    assert late_fees.charge_late_fee(booking.id).status == "none"
    assert fake_stripe.calls("POST") == [] and db.session.get(Payment, hold.id).status == "authorized"


def test_the_balance_paid_by_card_is_recorded_once_and_the_booking_stays_completed(app, client, staff, fake_stripe):
    booking = returned_late(app, staff)

    created = checkout.start_card_payment(booking.checkout_token)
    again = checkout.start_card_payment(booking.checkout_token)  # a double click reuses the intent
    assert created.payment_intent == again.payment_intent and created.amount == THREE_HOURS_LATE_FEE
    intent = fake_stripe.intents[created.payment_intent]
    assert intent["metadata"]["kind"] == "late_fee" and intent["capture_method"] == "automatic"

    paid = fake_stripe.update_intent(created.payment_intent, stripe_api.succeeded)
    envelope = event("payment_intent.succeeded", paid)
    for delivery in (envelope, envelope, event("payment_intent.succeeded", paid)):  # a redelivery, then a twin
        assert deliver(client, delivery).status_code == 200
    run_jobs(app)

    db.session.expire_all()
    booking = db.session.get(Booking, booking.id)
    balance = db.session.scalar(select(Payment).where(Payment.booking_id == booking.id))
    assert booking.status == "completed"
    assert (balance.status, balance.amount_captured) == ("succeeded", THREE_HOURS_LATE_FEE)
    assert count(AuditEntry, AuditEntry.entity_type == "payment", AuditEntry.entity_id == str(balance.id),
                 AuditEntry.action == "payment.succeeded") == 1
    assert count(Notification, Notification.booking_id == booking.id, Notification.template == "payment_receipt") == 1
    assert charge_for(booking).status == "paid"
    assert checkout.for_token(booking.checkout_token).state == "paid"
    assert late_fees.charge_outstanding() == []


def test_the_sweep_skips_old_returns_and_bookings_without_fees(app, staff, fake_stripe):
    booking = returned_late(app, staff)
    later = utcnow() + late_fees.SWEEP_WINDOW + timedelta(days=1)
    db.session.execute(Payment.__table__.delete().where(Payment.booking_id == booking.id))
    db.session.commit()

    assert late_fees.charge_outstanding(now=later) == []
    assert late_fees.charge_outstanding() == [booking.reference]


def test_the_periodic_deposit_job_charges_the_fee_before_releasing_old_holds(app, staff, fake_stripe):
    fake_stripe.fail_next("POST", "/capture", status=500, times=3)  # the job after the return could not reach Stripe
    booking, hold = with_hold(fake_stripe, app, staff)
    booking.returned_at = utcnow() - timedelta(hours=49)  # the hold is now due for release
    db.session.commit()

    import_attribute("midas.tasks.deposits.release_returned_deposits")()

    db.session.expire_all()
    hold = db.session.get(Payment, hold.id)
    assert (hold.status, hold.amount_captured) == ("succeeded", THREE_HOURS_LATE_FEE)  # charged, not released
    assert fake_stripe.calls("POST", "/cancel") == []


def stripe_error(kind: str, code: str) -> dict:
    return {"error": {"type": kind, "code": code, "message": f"Stripe says {code}."}}


def test_a_hold_stripe_says_has_expired_for_capture_leads_to_a_balance(app, staff, fake_stripe):
    fake_stripe.fail_next("POST", "/capture", status=400,
                          body=stripe_error("invalid_request_error", "charge_expired_for_capture"))

    booking, hold = with_hold(fake_stripe, app, staff)

    assert hold.amount_captured == 0 and charge_for(booking).status == "balance_due"


def test_a_capture_already_in_flight_never_opens_a_balance_beside_it(app, staff, fake_stripe):
    # Another run is capturing with the same key right now: Stripe answers 409 (the SDK retries those twice).
    fake_stripe.fail_next("POST", "/capture", status=409, times=3,
                          body=stripe_error("idempotency_error", "idempotency_key_in_use"))

    booking, hold = with_hold(fake_stripe, app, staff)

    assert charge_for(booking).status == "uncharged" and hold.status == "authorized"
    assert count(Payment, Payment.booking_id == booking.id, Payment.kind == "late_fee") == 0
    assert late_fees.charge_outstanding() == [booking.reference]
    assert charge_for(db.session.get(Booking, booking.id)).status == "captured"
