"""Refund requests, overrides, approvals and execution: amounts staff can explain, clicks that act once."""

from __future__ import annotations

import copy
import secrets
import threading
from datetime import timedelta

import pytest
from sqlalchemy.exc import IntegrityError

from midas.extensions import db
from midas.models import AuditEntry, Booking, BookingLine, ErrorGroup, Notification, Payment, Refund, StaffUser, utcnow
from midas.services import DomainError, InvalidInput, PermissionDenied, refunds, settings
from midas.services.error_capture import flush_deferred
from tests import factories
from tests.conftest import make_staff
from tests.fakes import stripe_api
from tests.fakes.stripe_api import FakeStripe, stripe_server  # noqa: F401


def paid_booking(provider: str = "stripe", starts_in: timedelta = timedelta(days=10), rental: int = 400_000,
                 fee: int = 20_000, currency: str = "EUR", category: str = "car") -> tuple[Booking, Payment]:
    """A confirmed Monaco booking (rental + service fee) paid in full."""
    location = factories.location("MCM", name="Monaco Port Hercule", city="Monaco", country="MC",
                                  timezone="Europe/Monaco", currency=currency)
    item = factories.item(location, name=f"Item {secrets.token_hex(2)}", category=category, daily_rate=rental)
    booking = factories.booking(item, starts_at=utcnow() + starts_in, days=1)
    booking.lines = [BookingLine(position=0, kind="rental", description="1 day", amount=rental),
                     BookingLine(position=1, kind="service_fee", description="Service fee", amount=fee,
                                 refundable=False)]
    booking.total_amount = rental + fee
    payment = Payment(booking=booking, provider=provider, kind="charge", status="succeeded", amount=rental + fee,
                      currency=currency, amount_captured=rental + fee, amount_refunded=0,
                      provider_ref=f"pi_{secrets.token_hex(8)}", idempotency_key=f"pay-{secrets.token_hex(6)}")
    db.session.add(payment)
    db.session.commit()
    return booking, payment


@pytest.fixture
def staff(app):
    return {role: make_staff(role, email=f"{role}@midas.test") for role in ("concierge", "admin", "owner")}


class FakeStripeWithRefunds(FakeStripe):
    """The shared fake plus POST /v1/refunds (it creates payment intents only)."""

    def _route(self, method: str, path: str, params: dict) -> tuple[int, dict]:
        if method == "POST" and path == "/v1/refunds":
            refund = stripe_api.refund(id=f"re_fake{next(self.ids):06d}", amount=int(params["amount"]),
                                       payment_intent=params["payment_intent"], status="pending",
                                       metadata=params.get("metadata") or {})
            return 200, copy.deepcopy(self.add("refunds", refund))
        return super()._route(method, path, params)


@pytest.fixture
def fake_stripe(app, stripe_server, monkeypatch):  # noqa: F811
    stripe_server.clear()
    fake = FakeStripeWithRefunds(stripe_server)
    stripe_server.expect_request(stripe_api.re.compile(".*")).respond_with_handler(fake.handle)
    for key, value in {"STRIPE_SECRET_KEY": stripe_api.SECRET_KEY, "STRIPE_API_BASE": fake.url,
                       "STRIPE_TIMEOUT_SECONDS": 1.0}.items():
        monkeypatch.setitem(app.config, key, value)
    monkeypatch.setattr("stripe._http_client.HTTPClient.INITIAL_DELAY", 0.01)
    monkeypatch.setattr("stripe._http_client.HTTPClient.MAX_DELAY", 0.05)
    yield fake
    stripe_server.clear()


def test_preview_shows_policy_amount_rule_version_and_lines(app, staff):
    booking, payment = paid_booking(starts_in=timedelta(days=5))
    shown = refunds.preview(booking.reference)
    assert shown.payment.id == payment.id
    assert shown.quote.amount == 200_000  # half of the rental; the service fee is not refundable
    assert shown.quote.rule == "car: 50% at 72+ hours notice" and shown.quote.policy_version == 0
    assert [(line.kind, line.refundable) for line in shown.quote.lines] == [("rental", True), ("service_fee", False)]
    assert "released in full" in shown.deposit_note


def test_owner_policy_change_is_versioned_and_recorded_on_the_refund(app, staff):
    policy, _ = settings.get_refund_policy()
    settings.set_refund_policy(staff["owner"], {**policy, "car": [{"notice": 0, "unit": "hours", "refund_bp": 2500}]})
    booking, payment = paid_booking()
    refund = refunds.request_refund(staff["concierge"], booking.reference, payment.id, 100_000, "changed plans")
    assert (refund.policy_version, refund.policy_rule) == (1, "car: 25% with less notice")
    with pytest.raises(PermissionDenied):
        settings.set_refund_policy(staff["admin"], policy)


def test_staff_may_lower_the_amount_but_not_raise_it_without_override(app, staff):
    booking, payment = paid_booking(starts_in=timedelta(days=5))
    lowered = refunds.request_refund(staff["concierge"], booking.reference, payment.id, 150_000, "partial")
    assert lowered.amount == 150_000 and lowered.status == "approved"
    with pytest.raises(InvalidInput, match="more than the policy"):
        refunds.request_refund(staff["concierge"], booking.reference, payment.id, 200_000, "too much")


def test_overrides_need_an_admin_a_reason_and_an_approval(app, staff):
    booking, payment = paid_booking(starts_in=timedelta(days=1))
    with pytest.raises(PermissionDenied):
        refunds.request_refund(staff["concierge"], booking.reference, payment.id, 420_000, "storm", "force_majeure")
    with pytest.raises(InvalidInput):
        refunds.request_refund(staff["admin"], booking.reference, payment.id, 420_000, "  ", "force_majeure")
    refund = refunds.request_refund(staff["admin"], booking.reference, payment.id, 420_000, "storm", "force_majeure")
    assert refund.status == "pending_approval" and refund.amount == 420_000
    with pytest.raises(InvalidInput, match="left to refund"):
        refunds.request_refund(staff["owner"], booking.reference, payment.id, 1, "goodwill on top", "goodwill")


def test_refunds_above_the_threshold_wait_for_an_admin(app, staff):
    booking, payment = paid_booking(provider="bank_transfer", rental=2_000_000)
    refund = refunds.request_refund(staff["concierge"], booking.reference, payment.id, 500_000, "cancelled early")
    assert refund.status == "pending_approval"  # above 4,600 EUR
    settings.set_approval_thresholds(staff["owner"], {"EUR": 1_000_000})
    smaller = refunds.request_refund(staff["concierge"], booking.reference, payment.id, 900_000, "second part")
    assert smaller.status == "approved"


def test_nobody_approves_their_own_request_and_concierges_cannot_approve(app, staff):
    booking, payment = paid_booking(starts_in=timedelta(days=1))
    refund = refunds.request_refund(staff["admin"], booking.reference, payment.id, 100_000, "storm", "goodwill")
    with pytest.raises(PermissionDenied, match="own"):
        refunds.approve(staff["admin"], refund.id, "fine by me")
    with pytest.raises(PermissionDenied):
        refunds.approve(staff["concierge"], refund.id, "fine by me")
    assert db.session.get(Refund, refund.id).status == "pending_approval"


def test_the_database_refuses_self_approval_too(app, staff):
    booking, payment = paid_booking(provider="bank_transfer", starts_in=timedelta(days=1))
    refund = refunds.request_refund(staff["admin"], booking.reference, payment.id, 100_000, "storm", "goodwill")
    refund.approved_by_id = staff["admin"].id
    with pytest.raises(IntegrityError):
        db.session.commit()
    db.session.rollback()


def test_rejection_needs_a_reason_and_is_final(app, staff):
    booking, payment = paid_booking(provider="bank_transfer", starts_in=timedelta(days=1))
    refund = refunds.request_refund(staff["admin"], booking.reference, payment.id, 100_000, "storm", "goodwill")
    with pytest.raises(InvalidInput):
        refunds.reject(staff["owner"], refund.id, "")
    refunds.reject(staff["owner"], refund.id, "customer was told no")
    assert (refund.status, refund.decision_reason) == ("rejected", "customer was told no")
    with pytest.raises(DomainError, match="already rejected"):
        refunds.approve(staff["owner"], refund.id, "changed my mind")
    # a rejected refund no longer counts against the payment
    assert refunds.available_for(payment) == payment.amount_captured


def test_offline_refund_is_recorded_with_its_reference(app, staff):
    booking, payment = paid_booking(provider="bank_transfer")
    refund = refunds.request_refund(staff["concierge"], booking.reference, payment.id, 300_000, "cancelled")
    with pytest.raises(PermissionDenied):
        refunds.record_offline(staff["concierge"], refund.id, "WIRE-1")
    refunds.record_offline(staff["admin"], refund.id, "WIRE-2026-0042")
    db.session.refresh(payment)
    assert (refund.status, refund.provider_ref, payment.amount_refunded) == ("succeeded", "WIRE-2026-0042", 300_000)
    with pytest.raises(DomainError):
        refunds.record_offline(staff["admin"], refund.id, "WIRE-AGAIN")
    assert db.session.query(AuditEntry).filter_by(action="refund.succeeded").count() == 1
    assert db.session.query(Notification).filter_by(template="refund_processed").count() == 1


def test_second_refund_click_does_not_refund_twice(app, staff, fake_stripe):
    booking, payment = paid_booking(starts_in=timedelta(days=20))
    refund = refunds.request_refund(staff["concierge"], booking.reference, payment.id, 400_000, "cancelled")
    refunds.execute(staff["admin"], refund.id)
    refunds.execute(staff["admin"], refund.id)
    calls = fake_stripe.calls("POST", "/v1/refunds")
    assert len(calls) == 1
    assert calls[0].idempotency_key == f"refund-{refund.id}" == refund.idempotency_key
    assert calls[0].params["payment_intent"] == payment.provider_ref and calls[0].params["amount"] == "400000"
    assert calls[0].params["metadata"] == {"refund_id": str(refund.id), "booking_reference": booking.reference}
    assert refund.status == "processing" and refund.provider_ref.startswith("re_fake")


def test_stripe_outage_keeps_the_refund_approved_and_sending_again_reuses_the_key(app, staff, fake_stripe):
    booking, payment = paid_booking(starts_in=timedelta(days=20))
    fake_stripe.slow_next("POST", "/v1/refunds", seconds=1.5)  # executes, but the answer comes too late
    fake_stripe.fail_next("POST", "/v1/refunds", status=503, times=2)
    refund = refunds.request_refund(staff["concierge"], booking.reference, payment.id, 400_000, "cancelled")
    assert refund.status == "approved" and refund.failure_reason.startswith("Not sent yet")
    refunds.execute(staff["admin"], refund.id)
    assert len(fake_stripe.objects["refunds"]) == 1
    assert {c.idempotency_key for c in fake_stripe.calls("POST", "/v1/refunds")} == {f"refund-{refund.id}"}
    assert db.session.get(Refund, refund.id).status == "processing"


def test_refused_refund_fails_and_can_be_retried_with_a_new_key(app, staff, fake_stripe):
    booking, payment = paid_booking(starts_in=timedelta(days=20))
    fake_stripe.fail_next("POST", "/v1/refunds", status=400, body={"error": {
        "type": "invalid_request_error", "code": "charge_disputed", "message": "This charge is disputed."}})
    refund = refunds.request_refund(staff["concierge"], booking.reference, payment.id, 400_000, "cancelled")
    assert refund.status == "failed" and "disputed" in refund.failure_reason
    assert refunds.available_for(payment) == payment.amount_captured
    with pytest.raises(PermissionDenied):
        refunds.retry(staff["concierge"], refund.id)
    again = refunds.retry(staff["admin"], refund.id)
    assert again.id != refund.id and again.status == "processing"
    keys = [c.idempotency_key for c in fake_stripe.calls("POST", "/v1/refunds")]
    assert keys == [f"refund-{refund.id}", f"refund-{again.id}"]


def test_provider_success_settles_the_payment_and_failure_is_flagged(app, staff):
    booking, payment = paid_booking(starts_in=timedelta(days=20), provider="bank_transfer")
    first = refunds.request_refund(staff["concierge"], booking.reference, payment.id, 100_000, "part one")
    second = refunds.request_refund(staff["concierge"], booking.reference, payment.id, 50_000, "part two")
    first.status, second.status, second.failure_reason = "succeeded", "failed", "card closed"
    refunds.after_provider_update(first)
    refunds.after_provider_update(second)
    payment_id, second_id = payment.id, second.id
    db.session.commit()
    flush_deferred()
    assert db.session.get(Payment, payment_id).amount_refunded == 100_000
    messages = [group.message for group in db.session.query(ErrorGroup).filter_by(category="PAYMENT")]
    assert any(f"Refund #{second_id} failed" in message for message in messages), messages


def test_approval_of_a_card_refund_sends_it(app, staff, fake_stripe):
    booking, payment = paid_booking(starts_in=timedelta(days=1))
    refund = refunds.request_refund(staff["admin"], booking.reference, payment.id, 420_000, "storm", "force_majeure")
    refunds.approve(staff["owner"], refund.id, "storm warning confirmed")
    assert (refund.status, refund.approved_by_id) == ("processing", staff["owner"].id)
    assert len(fake_stripe.calls("POST", "/v1/refunds")) == 1


@pytest.mark.reliability
def test_two_simultaneous_executions_make_one_provider_call(app, staff, fake_stripe):
    booking, payment = paid_booking(starts_in=timedelta(days=20))
    refund = Refund(payment_id=payment.id, booking_id=booking.id, amount=100_000, currency="EUR", status="approved",
                    reason="cancelled", idempotency_key=f"refund-test-{secrets.token_hex(4)}",
                    requested_by_id=staff["concierge"].id)
    db.session.add(refund)
    db.session.commit()
    refund_id, admin_id = refund.id, staff["admin"].id
    db.session.rollback()  # SQLite: reading the ids opened a transaction, which holds the write lock
    fake_stripe.slow_next("POST", "/v1/refunds", seconds=0.3)
    barrier = threading.Barrier(2)
    outcomes: list[str] = []

    def click() -> None:
        with app.app_context():
            barrier.wait()
            outcomes.append(refunds.execute(db.session.get(StaffUser, admin_id), refund_id).status)
            db.session.remove()

    threads = [threading.Thread(target=click) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=20)
    assert outcomes == ["processing", "processing"]
    assert len(fake_stripe.calls("POST", "/v1/refunds")) == 1
