"""PayPal IPN through POST /webhooks/paypal/ipn, verified against a local fake PayPal."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy.exc import OperationalError

from midas.extensions import db
from midas.models import Booking, Dispute, Notification, Payment, Refund, WebhookEvent, utcnow
from midas.services import paypal_ipn
from midas.tasks import paypal as paypal_tasks
from tests.fakes import paypal_api
from tests.fakes.paypal_api import ipn_body, paypal_booking, recorded_errors, run_jobs

# Fixtures shared by the PayPal tests.
fake_paypal, paypal_server = paypal_api.fake_paypal, paypal_api.paypal_server
flush_errors = paypal_api.flush_errors

URL = "/webhooks/paypal/ipn"
TXN = "61E67681CH3238416"
VERIFY = b"cmd=_notify-validate&"


def deliver(client, body: bytes, status: int = 200):
    """PayPal posts the message (no CSRF token, its own content type); the job runs as in production."""
    response = client.post(URL, data=body, content_type="application/x-www-form-urlencoded")
    assert response.status_code == status, response.get_data(as_text=True)
    run_jobs()
    return response


def events() -> list[WebhookEvent]:
    return list(db.session.query(WebhookEvent).order_by(WebhookEvent.id))


def payments() -> list[Payment]:
    return list(db.session.query(Payment).order_by(Payment.id))


def booking_status(booking: Booking) -> str:
    return db.session.get(Booking, booking.id).status


def test_verified_completed_payment_is_stored_verbatim_applied_and_confirms_the_booking(client, fake_paypal):
    booking = paypal_booking()
    body = fake_paypal.sent(ipn_body("web-accept-completed"))
    deliver(client, body)
    [event] = events()
    assert event.raw_body.encode("latin-1") == body
    assert (event.provider, event.status, event.type, event.booking_id) == ("paypal", "processed", "ipn.completed",
                                                                            booking.id)
    assert event.event_id.startswith(f"{TXN}:Completed:") and event.payload["custom"] == "MID-7KQ3X9"
    assert event.occurred_at.isoformat() == "2026-03-03T18:22:51+00:00"
    assert fake_paypal.calls("/cgi-bin/webscr")[0].body == VERIFY + body
    [payment] = payments()
    assert (payment.provider, payment.provider_ref, payment.status, payment.amount, payment.currency) == (
        "paypal", TXN, "succeeded", 425000, "EUR")
    assert booking_status(booking) == "confirmed"


def test_invalid_message_is_kept_as_rejected_alarms_and_changes_nothing(client, fake_paypal):
    booking = paypal_booking()
    deliver(client, ipn_body("web-accept-completed"))  # never sent by PayPal: the verify endpoint says INVALID
    [event] = events()
    assert event.status == "ignored" and event.last_error.startswith("rejected: PayPal answered INVALID")
    assert payments() == [] and booking_status(booking) == "pending_payment"
    [error] = recorded_errors()
    assert (error.severity, error.group.category) == ("HIGH", "WEBHOOK")


def test_five_deliveries_of_one_message_apply_once(client, fake_paypal):
    booking = paypal_booking()
    body = fake_paypal.sent(ipn_body("web-accept-completed"))
    for _ in range(5):
        deliver(client, body)
    assert len(events()) == 1 and len(payments()) == 1
    assert len(fake_paypal.calls("/cgi-bin/webscr")) == 1
    receipts = db.session.query(Notification).filter_by(booking_id=booking.id, template="payment_receipt").count()
    assert receipts == 1 and booking_status(booking) == "confirmed"


def test_pending_then_completed_of_one_txn_are_both_applied(client, fake_paypal):
    booking = paypal_booking()
    deliver(client, fake_paypal.sent(ipn_body("web-accept-pending")))
    [payment] = payments()
    assert payment.status == "processing" and "multi_currency" in payment.failure_message
    assert booking_status(booking) == "pending_payment"
    deliver(client, fake_paypal.sent(ipn_body("web-accept-completed")))
    assert [e.status for e in events()] == ["processed", "processed"]
    [payment] = payments()
    assert payment.status == "succeeded" and payment.failure_message is None
    assert booking_status(booking) == "confirmed"


def test_a_late_pending_after_completed_changes_nothing(client, fake_paypal):
    paypal_booking()
    deliver(client, fake_paypal.sent(ipn_body("web-accept-completed")))
    deliver(client, fake_paypal.sent(ipn_body("web-accept-pending")))
    assert [p.status for p in payments()] == ["succeeded"]


def test_same_txn_and_status_in_another_body_is_a_duplicate(client, fake_paypal):
    paypal_booking()
    deliver(client, fake_paypal.sent(ipn_body("web-accept-completed")))
    deliver(client, fake_paypal.sent(ipn_body("web-accept-completed", ipn_track_id="resent0000001")))
    first, second = events()
    assert (first.status, second.status) == ("processed", "ignored")
    assert second.last_error == f"duplicate of event {first.id}"
    assert len(payments()) == 1


def test_a_forged_message_first_does_not_shadow_the_genuine_one(client, fake_paypal):
    booking = paypal_booking()
    deliver(client, ipn_body("web-accept-completed", verify_sign="ForgedSignature000000000000000000000"))
    deliver(client, fake_paypal.sent(ipn_body("web-accept-completed")))
    assert [e.status for e in events()] == ["ignored", "processed"]
    assert [p.status for p in payments()] == ["succeeded"] and booking_status(booking) == "confirmed"


def test_an_old_completed_resent_after_cancellation_raises_no_false_alarm(client, fake_paypal):
    booking = paypal_booking()
    deliver(client, fake_paypal.sent(ipn_body("web-accept-completed")))
    db.session.get(Booking, booking.id).status = "cancelled"
    db.session.commit()
    deliver(client, fake_paypal.sent(ipn_body("web-accept-completed", ipn_track_id="resent0000003")))
    assert [e.status for e in events()] == ["processed", "ignored"]
    assert recorded_errors() == []


def test_completed_payment_for_a_cancelled_booking_is_alarmed(client, fake_paypal):
    booking = paypal_booking(status="cancelled")
    deliver(client, fake_paypal.sent(ipn_body("web-accept-completed")))
    assert [p.status for p in payments()] == ["succeeded"] and booking_status(booking) == "cancelled"
    [error] = recorded_errors()
    assert error.severity == "HIGH" and "refund or reinstate" in error.message


def test_payment_to_another_account_is_not_applied(client, fake_paypal):
    booking = paypal_booking()
    deliver(client, fake_paypal.sent(ipn_body("web-accept-completed", receiver_email="thief%40example.com")))
    [event] = events()
    assert event.status == "failed" and "not our PayPal account" in event.last_error
    assert payments() == [] and booking_status(booking) == "pending_payment"
    [error] = recorded_errors()
    assert error.severity == "HIGH" and error.booking_id == booking.id


def test_wrong_amount_is_flagged_and_the_booking_is_not_confirmed(client, fake_paypal):
    booking = paypal_booking()
    deliver(client, fake_paypal.sent(ipn_body("web-accept-completed", mc_gross="42.50")))
    [event] = events()
    assert event.status == "failed" and "PayPal reported 42.50 EUR, expected €4,250.00" in event.last_error
    assert payments() == [] and booking_status(booking) == "pending_payment"
    [error] = recorded_errors()
    assert error.severity == "HIGH" and error.group.category == "PAYMENT"


def test_wrong_currency_is_flagged(client, fake_paypal):
    booking = paypal_booking()
    deliver(client, fake_paypal.sent(ipn_body("web-accept-completed", mc_currency="USD")))
    assert events()[0].status == "failed" and booking_status(booking) == "pending_payment"


def test_windows_1252_message_with_accented_names_is_decoded_and_posted_back_unchanged(client, fake_paypal):
    booking = paypal_booking()
    body = fake_paypal.sent(ipn_body(
        "web-accept-completed", charset="windows-1252", first_name="Ren%E9e", last_name="Dupr%E9",
        address_name="Ren%E9e+Dupr%E9", address_street="7+All%E9e+des+Pins", item_name="R%E9servation+%80+MID",
    ) + b"&memo=Tr\xe8s+bien")  # even a raw 8-bit byte survives the round trip
    deliver(client, body)
    [event] = events()
    assert event.payload["first_name"] == "Renée" and event.payload["address_name"] == "Renée Dupré"
    assert event.payload["item_name"] == "Réservation € MID"  # 0x80 is the euro sign in windows-1252 only
    assert event.payload["memo"] == "Très bien"
    assert fake_paypal.calls("/cgi-bin/webscr")[0].body == VERIFY + body
    assert event.status == "processed" and booking_status(booking) == "confirmed"


def test_refund_is_recorded_against_the_original_payment_once(client, fake_paypal):
    paypal_booking()
    deliver(client, fake_paypal.sent(ipn_body("web-accept-completed")))
    refunded = fake_paypal.sent(ipn_body("refunded"))
    deliver(client, refunded)
    deliver(client, fake_paypal.sent(ipn_body("refunded", ipn_track_id="resent0000002")))
    [refund] = db.session.query(Refund).all()
    assert (refund.provider_ref, refund.amount, refund.currency, refund.status) == (
        "9TU82356GA1142339", 425000, "EUR", "succeeded")
    assert payments()[0].amount_refunded == 425000
    assert [e.status for e in events()] == ["processed", "processed", "ignored"]


def test_reversal_opens_a_dispute_and_its_cancellation_wins_it(client, fake_paypal):
    booking = paypal_booking()
    deliver(client, fake_paypal.sent(ipn_body("web-accept-completed")))
    deliver(client, fake_paypal.sent(ipn_body("reversed")))
    [dispute] = db.session.query(Dispute).all()
    assert (dispute.provider, dispute.provider_ref, dispute.amount, dispute.reason, dispute.status) == (
        "paypal", "3KF55012JD7712945", 425000, "chargeback", "needs_response")
    assert dispute.payment_id == payments()[0].id and dispute.booking_id == booking.id
    assert any(e.severity == "HIGH" and "reversed" in e.message for e in recorded_errors())
    deliver(client, fake_paypal.sent(ipn_body("reversed", payment_status="Canceled_Reversal", mc_gross="4250.00",
                                              txn_id="4LW12345AB1234567")))
    assert db.session.get(Dispute, dispute.id).status == "won"


def test_refund_before_its_payment_waits_and_applies_on_retry(client, fake_paypal):
    paypal_booking()
    deliver(client, fake_paypal.sent(ipn_body("refunded")))
    [refund_event] = events()
    assert refund_event.status == "failed" and "not known yet" in refund_event.last_error
    deliver(client, fake_paypal.sent(ipn_body("web-accept-completed")))
    assert paypal_tasks.process_ipn(refund_event.id) == "processed"  # what RQ's retry does later
    db.session.rollback()
    assert db.session.query(Refund).count() == 1 and db.session.get(WebhookEvent, refund_event.id).attempts == 2


def test_denied_payment_is_recorded_as_failed(client, fake_paypal):
    booking = paypal_booking()
    deliver(client, fake_paypal.sent(ipn_body("web-accept-pending")))
    deliver(client, fake_paypal.sent(ipn_body("web-accept-completed", payment_status="Denied")))
    [payment] = payments()
    assert (payment.status, payment.failure_code) == ("failed", "denied")
    assert booking_status(booking) == "pending_payment"


def test_verification_outage_keeps_the_message_for_a_retry(client, fake_paypal):
    booking = paypal_booking()
    fake_paypal.fail_next("/cgi-bin/webscr", 503, times=3)
    deliver(client, fake_paypal.sent(ipn_body("web-accept-completed")))
    [event] = events()
    assert event.status == "failed" and event.last_error.startswith("verification failed")
    assert paypal_tasks.process_ipn(event.id) == "processed"
    db.session.rollback()
    assert booking_status(booking) == "confirmed"


def test_a_message_whose_job_was_lost_is_picked_up_by_the_sweep(app, fake_paypal):
    booking = paypal_booking()
    event_id, _ = paypal_ipn.receive(fake_paypal.sent(ipn_body("web-accept-completed")), "173.0.82.126")
    assert paypal_tasks.sweep_ipn() == 0  # not stale yet: its job may still be on its way
    assert paypal_tasks.sweep_ipn(now=utcnow() + timedelta(minutes=10)) == 1
    run_jobs()
    assert db.session.get(WebhookEvent, event_id).status == "processed" and booking_status(booking) == "confirmed"


def test_statuses_we_do_not_handle_are_stored_and_ignored(client, fake_paypal):
    paypal_booking()
    deliver(client, fake_paypal.sent(ipn_body("web-accept-completed", payment_status="Expired")))
    [event] = events()
    assert event.status == "ignored" and "Expired is not handled" in event.last_error


def test_empty_body_is_refused_and_not_stored(client, fake_paypal):
    deliver(client, b"", status=400)
    assert events() == []


def test_failing_to_store_answers_500_so_paypal_resends(app, client, fake_paypal, monkeypatch):
    def broken(raw, source_ip):
        raise OperationalError("INSERT INTO webhook_events", {}, Exception("database is down"))

    monkeypatch.setattr(paypal_ipn, "receive", broken)
    monkeypatch.setitem(app.config, "PROPAGATE_EXCEPTIONS", False)
    response = client.post(URL, data=ipn_body("web-accept-completed"),
                           content_type="application/x-www-form-urlencoded")
    assert response.status_code == 500


@pytest.mark.parametrize("fixture", ["web-accept-completed", "web-accept-pending", "refunded", "reversed"])
def test_event_ids_keep_pending_and_completed_apart_and_resends_together(fixture):
    body = ipn_body(fixture)
    fields = paypal_ipn.parse(body)
    key = paypal_ipn.event_key(fields, body)
    assert key.startswith(f"{fields['txn_id']}:{fields['payment_status']}:")
    assert key == paypal_ipn.event_key(paypal_ipn.parse(body), body)
