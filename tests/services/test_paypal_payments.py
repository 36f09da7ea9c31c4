"""PayPal orders and offline payments, through the service functions against a local fake PayPal."""

from __future__ import annotations

from datetime import timedelta

import pytest

from midas.extensions import db
from midas.models import AuditEntry, Booking, Payment, utcnow
from midas.services import DomainError, InvalidInput, PermissionDenied, paypal_payments
from midas.services.paypal_payments import PaymentDeclined, PaymentUnavailable
from tests.conftest import make_staff
from tests.fakes import paypal_api
from tests.fakes.paypal_api import paypal_booking, recorded_errors

# Fixtures shared by the PayPal tests.
fake_paypal, paypal_server = paypal_api.fake_paypal, paypal_api.paypal_server
flush_errors = paypal_api.flush_errors

URLS = ("https://midas.example/return", "https://midas.example/cancel")


def start(booking: Booking):
    return paypal_payments.start_order(booking.checkout_token, *URLS)


def pay(fake, booking: Booking) -> Payment:
    started = start(booking)
    fake.approve(started.order_id)
    return paypal_payments.capture_order(booking.checkout_token, started.order_id)


def paypal_rows(booking: Booking) -> list[Payment]:
    return list(db.session.query(Payment).filter_by(booking_id=booking.id).order_by(Payment.id))


# Orders.

def test_order_is_for_what_the_booking_owes_with_a_deterministic_request_id(app, fake_paypal):
    booking = paypal_booking()
    started = start(booking)
    payment = db.session.get(Payment, started.payment_id)
    assert (payment.provider, payment.status, payment.amount, payment.currency) == ("paypal", "pending", 425000, "EUR")
    assert payment.provider_ref == started.order_id
    assert payment.idempotency_key == "paypal:MID-7KQ3X9:425000EUR:0"
    assert fake_paypal.calls("/v2/checkout/orders")[0].headers["Paypal-Request-Id"] == payment.idempotency_key
    assert started.approve_url.endswith(started.order_id)


def test_amount_owed_leaves_out_what_already_succeeded(app, fake_paypal):
    booking = paypal_booking()
    db.session.add(Payment(booking=booking, provider="stripe", status="succeeded", amount=100000, currency="EUR",
                           provider_ref="pi_1", idempotency_key="stripe-1"))
    db.session.commit()
    start(booking)
    unit = fake_paypal.calls("/v2/checkout/orders")[0].json()["purchase_units"][0]
    assert unit["amount"] == {"currency_code": "EUR", "value": "3250.00"}


def test_starting_twice_reuses_the_open_order(app, fake_paypal):
    booking = paypal_booking()
    first, second = start(booking), start(booking)
    assert first.order_id == second.order_id and first.payment_id == second.payment_id
    assert len(fake_paypal.orders) == 1 and len(paypal_rows(booking)) == 1


def test_a_repriced_booking_gets_a_new_order_and_the_old_one_is_cancelled(app, fake_paypal):
    booking = paypal_booking()
    old = start(booking)
    booking.total_amount = 450000
    db.session.commit()
    new = start(booking)
    old_row, new_row = paypal_rows(booking)
    assert new.order_id != old.order_id
    assert (old_row.status, new_row.status, new_row.amount) == ("canceled", "pending", 450000)
    assert new_row.idempotency_key == "paypal:MID-7KQ3X9:450000EUR:1"


def test_a_voided_order_is_replaced(app, fake_paypal):
    booking = paypal_booking()
    old = start(booking)
    fake_paypal.orders[old.order_id]["status"] = "VOIDED"
    new = start(booking)
    assert new.order_id != old.order_id
    assert [p.status for p in paypal_rows(booking)] == ["canceled", "pending"]


def test_capture_records_the_payment_and_confirms_the_booking(app, fake_paypal):
    booking = paypal_booking()
    started = start(booking)
    payment = pay(fake_paypal, booking)
    capture = fake_paypal.orders[started.order_id]["purchase_units"][0]["payments"]["captures"][0]
    assert (payment.status, payment.provider_ref, payment.amount_captured) == ("succeeded", capture["id"], 425000)
    assert payment.succeeded_at is not None
    assert db.session.get(Booking, booking.id).status == "confirmed"
    entry = db.session.query(AuditEntry).filter_by(action="payment.paypal_capture").one()
    assert entry.after["order_id"] == started.order_id and entry.before["provider_ref"] == started.order_id
    assert fake_paypal.calls("/capture")[0].headers["Paypal-Request-Id"] == "paypal:MID-7KQ3X9:425000EUR:0:capture"


def test_second_capture_click_does_not_charge_twice(app, fake_paypal):
    booking = paypal_booking()
    started = start(booking)
    fake_paypal.approve(started.order_id)
    first = paypal_payments.capture_order(booking.checkout_token, started.order_id)
    second = paypal_payments.capture_order(booking.checkout_token, started.order_id)
    assert first.id == second.id and len(fake_paypal.calls("/capture")) == 1


def test_capture_lost_in_transit_is_read_back_from_paypal(app, fake_paypal):
    booking = paypal_booking()
    started = start(booking)
    fake_paypal.approve(started.order_id)
    fake_paypal.capture_outcome = "COMPLETED"
    fake_paypal._capture(fake_paypal.orders[started.order_id])  # PayPal captured; our response was lost
    payment = paypal_payments.capture_order(booking.checkout_token, started.order_id)
    assert payment.status == "succeeded"
    assert db.session.get(Booking, booking.id).status == "confirmed"


def test_pending_capture_waits_without_confirming(app, fake_paypal):
    booking = paypal_booking()
    fake_paypal.capture_outcome = "PENDING"
    payment = pay(fake_paypal, booking)
    assert payment.status == "processing" and "PENDING_REVIEW" in payment.failure_message
    assert db.session.get(Booking, booking.id).status == "pending_payment"


def test_no_second_order_while_a_paypal_payment_is_processing(app, fake_paypal):
    booking = paypal_booking()
    fake_paypal.capture_outcome = "PENDING"
    pay(fake_paypal, booking)
    with pytest.raises(DomainError, match="being processed"):
        start(booking)
    assert len(fake_paypal.orders) == 1


def test_declined_capture_fails_the_payment(app, fake_paypal):
    booking = paypal_booking()
    fake_paypal.capture_outcome = "DECLINED"
    payment = pay(fake_paypal, booking)
    assert payment.status == "failed" and payment.failure_code == "declined"
    assert db.session.get(Booking, booking.id).status == "pending_payment"


def test_declined_funding_source_lets_the_customer_try_again(app, fake_paypal):
    booking = paypal_booking()
    started = start(booking)
    fake_paypal.approve(started.order_id)
    fake_paypal.capture_outcome = "INSTRUMENT_DECLINED"
    with pytest.raises(PaymentDeclined):
        paypal_payments.capture_order(booking.checkout_token, started.order_id)
    assert paypal_rows(booking)[0].status == "pending"
    fake_paypal.capture_outcome = "COMPLETED"
    fake_paypal.answers.clear()  # PayPal does not keep a declined attempt's answer for the next try
    assert paypal_payments.capture_order(booking.checkout_token, started.order_id).status == "succeeded"


def test_outage_leaves_the_payment_pending_and_the_retry_sends_the_same_request_id(app, fake_paypal):
    booking = paypal_booking()
    fake_paypal.fail_next("/v2/checkout/orders", 503, times=3)
    with pytest.raises(PaymentUnavailable):
        start(booking)
    assert paypal_rows(booking)[0].status == "pending"
    start(booking)
    keys = {c.headers["Paypal-Request-Id"] for c in fake_paypal.calls("/v2/checkout/orders")}
    assert keys == {"paypal:MID-7KQ3X9:425000EUR:0"} and len(fake_paypal.orders) == 1
    [error] = recorded_errors()
    assert error.group.category == "PAYMENT" and error.context["code"] == "INTERNAL_SERVER_ERROR"


def test_refusal_fails_the_payment_with_paypals_code_and_logs_it(app, fake_paypal):
    booking = paypal_booking()
    fake_paypal.fail_next("/v2/checkout/orders", 422, {"name": "UNPROCESSABLE_ENTITY", "details": [
        {"issue": "PAYEE_ACCOUNT_RESTRICTED", "description": "The merchant account is restricted."}]})
    with pytest.raises(PaymentUnavailable):
        start(booking)
    payment = paypal_rows(booking)[0]
    assert (payment.status, payment.failure_code) == ("failed", "PAYEE_ACCOUNT_RESTRICTED")
    assert start(booking).payment_id != payment.id  # the next attempt is a new payment with a new request id
    [error] = recorded_errors()
    assert error.severity == "HIGH" and error.payment_id == payment.id


def test_a_paid_booking_cannot_start_another_order(app, fake_paypal):
    booking = paypal_booking()
    pay(fake_paypal, booking)
    with pytest.raises(DomainError, match="already paid"):
        start(booking)


def test_capture_of_an_order_from_another_booking_is_not_found(app, fake_paypal):
    mine, other = paypal_booking(), paypal_booking(reference="MID-OTHER1")
    started = start(other)
    fake_paypal.approve(started.order_id)
    with pytest.raises(DomainError, match="not part of this booking"):
        paypal_payments.capture_order(mine.checkout_token, started.order_id)
    assert not fake_paypal.calls("/capture")


def test_ipn_recording_the_capture_first_leaves_one_payment(app, fake_paypal):
    booking = paypal_booking()
    started = start(booking)
    fake_paypal.approve(started.order_id)
    order = fake_paypal._capture(fake_paypal.orders[started.order_id])[1]
    capture_id = order["purchase_units"][0]["payments"]["captures"][0]["id"]
    db.session.add(Payment(booking=booking, provider="paypal", status="succeeded", amount=425000, currency="EUR",
                           provider_ref=capture_id, idempotency_key=f"paypal-txn:{capture_id}"))
    db.session.commit()
    payment = paypal_payments.capture_order(booking.checkout_token, started.order_id)
    assert payment.provider_ref == capture_id
    assert sorted(p.status for p in paypal_rows(booking)) == ["canceled", "succeeded"]


def test_paypal_is_offered_only_when_configured_and_in_its_currencies(app, fake_paypal):
    assert paypal_payments.other_methods(paypal_booking()).paypal
    assert not paypal_payments.other_methods(paypal_booking(reference="MID-AED001", currency="AED")).paypal
    app.config["PAYPAL_CLIENT_ID"] = None
    assert not paypal_payments.other_methods(paypal_booking(reference="MID-EUR002")).paypal


def test_without_credentials_an_order_is_refused_politely(app):
    with pytest.raises(PaymentUnavailable):
        start(paypal_booking())


# Offline.

def test_bank_transfer_is_a_pending_payment_and_holds_the_item_for_three_days(app):
    booking = paypal_booking(days_ahead=10)
    payment = paypal_payments.choose_offline(booking.checkout_token, "bank_transfer")
    assert (payment.provider, payment.status, payment.amount, payment.method) == (
        "bank_transfer", "pending", 425000, "wire")
    hold = db.session.get(Booking, booking.id).hold_expires_at
    assert timedelta(days=2, hours=23) < hold - utcnow() <= timedelta(days=3)


def test_hold_never_runs_past_the_start(app):
    booking = paypal_booking(days_ahead=1)
    paypal_payments.choose_offline(booking.checkout_token, "bank_transfer")
    booking = db.session.get(Booking, booking.id)
    assert timedelta(0) <= booking.starts_at - booking.hold_expires_at < timedelta(minutes=1)


def test_pay_on_pickup_holds_until_the_start(app):
    booking = paypal_booking(days_ahead=10)
    payment = paypal_payments.choose_offline(booking.checkout_token, "pay_on_pickup")
    booking = db.session.get(Booking, booking.id)
    assert payment.provider == "pay_on_pickup"
    assert timedelta(0) <= booking.starts_at - booking.hold_expires_at < timedelta(minutes=1)


def test_choosing_twice_makes_one_payment_and_switching_cancels_the_first(app):
    booking = paypal_booking()
    first = paypal_payments.choose_offline(booking.checkout_token, "bank_transfer")
    again = paypal_payments.choose_offline(booking.checkout_token, "bank_transfer")
    assert first.id == again.id
    switched = paypal_payments.choose_offline(booking.checkout_token, "pay_on_pickup")
    assert [(p.provider, p.status) for p in paypal_rows(booking)] == [
        ("bank_transfer", "canceled"), ("pay_on_pickup", "pending")]
    assert paypal_payments.other_methods(db.session.get(Booking, booking.id)).chosen.id == switched.id


def test_unknown_offline_method_is_refused(app):
    with pytest.raises(InvalidInput):
        paypal_payments.choose_offline(paypal_booking().checkout_token, "cash_in_envelope")


def test_bank_transfer_needs_the_houses_bank_details(app, monkeypatch):
    monkeypatch.setitem(app.config, "BANK_IBAN", None)
    with pytest.raises(PaymentUnavailable):
        paypal_payments.choose_offline(paypal_booking().checkout_token, "bank_transfer")


def test_a_lapsed_quote_is_held_again_when_the_customer_chooses_to_pay_offline(app):
    booking = paypal_booking(status="quote")
    paypal_payments.choose_offline(booking.checkout_token, "bank_transfer")
    assert db.session.get(Booking, booking.id).status == "pending_payment"


def test_cancelled_booking_cannot_choose_an_offline_method(app):
    with pytest.raises(DomainError, match="can no longer be paid"):
        paypal_payments.choose_offline(paypal_booking(status="cancelled").checkout_token, "pay_on_pickup")


def test_admin_confirms_a_bank_transfer_and_the_booking_is_confirmed(app):
    booking = paypal_booking()
    payment = paypal_payments.choose_offline(booking.checkout_token, "bank_transfer")
    admin = make_staff("admin")
    confirmed = paypal_payments.confirm_offline_payment(admin, payment.id, "  BARCLAYS REF 88812  ")
    assert (confirmed.status, confirmed.reference_note, confirmed.confirmed_by_id) == (
        "succeeded", "BARCLAYS REF 88812", admin.id)
    assert db.session.get(Booking, booking.id).status == "confirmed"
    entry = db.session.query(AuditEntry).filter_by(action="payment.confirmed").one()
    assert entry.actor_id == admin.id and entry.before["status"] == "pending"


def test_confirming_twice_changes_nothing_more(app):
    payment = paypal_payments.choose_offline(paypal_booking().checkout_token, "pay_on_pickup")
    admin = make_staff("admin")
    paypal_payments.confirm_offline_payment(admin, payment.id, "")
    paypal_payments.confirm_offline_payment(admin, payment.id, "another note")
    assert db.session.get(Payment, payment.id).reference_note is None
    assert db.session.query(AuditEntry).filter_by(action="payment.confirmed").count() == 1


def test_a_bank_transfer_needs_the_banks_reference(app):
    payment = paypal_payments.choose_offline(paypal_booking().checkout_token, "bank_transfer")
    with pytest.raises(InvalidInput) as caught:
        paypal_payments.confirm_offline_payment(make_staff("admin"), payment.id, "   ")
    assert caught.value.field == "reference_note"
    assert db.session.get(Payment, payment.id).status == "pending"


def test_a_concierge_cannot_confirm_money_received(app):
    payment = paypal_payments.choose_offline(paypal_booking().checkout_token, "bank_transfer")
    with pytest.raises(PermissionDenied):
        paypal_payments.confirm_offline_payment(make_staff("concierge"), payment.id, "ref")


def test_provider_payments_are_not_confirmed_by_hand(app, fake_paypal):
    started = start(paypal_booking())
    with pytest.raises(DomainError, match="confirmed by hand"):
        paypal_payments.confirm_offline_payment(make_staff("admin"), started.payment_id, "ref")


def test_a_cancelled_offline_payment_cannot_be_confirmed(app):
    booking = paypal_booking()
    first = paypal_payments.choose_offline(booking.checkout_token, "bank_transfer")
    paypal_payments.choose_offline(booking.checkout_token, "pay_on_pickup")
    with pytest.raises(DomainError, match="canceled"):
        paypal_payments.confirm_offline_payment(make_staff("admin"), first.id, "ref")


def test_money_received_for_a_booking_that_lost_its_slot_is_alarmed(app):
    booking = paypal_booking()
    payment = paypal_payments.choose_offline(booking.checkout_token, "pay_on_pickup")
    booking.status, booking.cancel_reason = "cancelled", "customer changed plans"
    db.session.commit()
    paypal_payments.confirm_offline_payment(make_staff("admin"), payment.id, "")
    [error] = recorded_errors()
    assert error.severity == "HIGH" and "paid but could not be confirmed" in error.message
