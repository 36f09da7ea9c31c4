"""Random lives of a card payment's refunds: partial requests, Stripe outages and double clicks, status
events delivered late, out of order and again, retries, refunds made in Stripe's dashboard. After every step
the payment equals the sum of its succeeded refunds, nothing refunds more than was captured, and no refund
of ours reaches Stripe twice."""

from __future__ import annotations

import copy
from datetime import timedelta

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from sqlalchemy import select

from midas.extensions import db
from midas.models import Payment, Refund, StaffUser
from midas.services import DomainError, InvalidInput, payment_events, refunds
from tests.conftest import make_staff
from tests.fakes.stripe_api import stripe_server  # noqa: F401
from tests.services.test_refunds import fake_stripe, paid_booking  # noqa: F401

# What Stripe lets a refund become next (a succeeded refund can still fail: the card account was closed).
STRIPE_NEXT = {"pending": ("succeeded", "failed", "canceled"), "succeeded": ("failed",), "failed": (), "canceled": ()}
RESERVING = ("pending_approval", "approved", "processing", "succeeded")


class RefundLives(RuleBasedStateMachine):
    """One paid booking per example; the machine plays staff, Stripe and Stripe's webhooks at once."""

    fake = None  # set by the test: the fake Stripe API
    staff_ids: dict[str, int] = {}

    @initialize(rental=st.integers(100_000, 900_000))
    def paid(self, rental: int) -> None:
        booking, payment = paid_booking(starts_in=timedelta(days=40), rental=rental, fee=10_000)
        self.reference, self.payment_id, self.captured = booking.reference, payment.id, payment.amount_captured
        self.delivered: list[dict] = []  # every refund object Stripe has sent us, to replay
        self.dashboard_total = 0  # refunded in Stripe's dashboard, unknown to Midas until charge.refunded

    def who(self, role: str) -> StaffUser:
        return db.session.get(StaffUser, self.staff_ids[role])

    def ours(self) -> list[Refund]:
        db.session.expire_all()
        return list(db.session.scalars(select(Refund).where(Refund.payment_id == self.payment_id,
                                                           Refund.requested_by_id.is_not(None)).order_by(Refund.id)))

    def at_stripe(self) -> list[dict]:
        return [r for r in self.fake.objects["refunds"].values() if r["payment_intent"] == self.intent()]

    def intent(self) -> str:
        return db.session.get(Payment, self.payment_id).provider_ref

    @rule(amount=st.integers(1, 400_000), outage=st.booleans())
    def request(self, amount: int, outage: bool) -> None:
        """A concierge asks for part of the money back; it goes to Stripe at once (unless Stripe is down)."""
        if outage:
            self.fake.fail_next("POST", "/v1/refunds", status=503, times=3)
        try:
            refunds.request_refund(self.who("concierge"), self.reference, self.payment_id, amount, "random")
        except InvalidInput:
            db.session.rollback()  # more than is left: refused, nothing changes
        self.fake.injected.clear()

    @rule(pick=st.integers(0, 50), clicks=st.integers(1, 2))
    def execute(self, pick: int, clicks: int) -> None:
        """An admin sends (again) an approved refund; double clicks included."""
        approved = [r.id for r in self.ours() if r.status == "approved"]
        if approved:
            for _ in range(clicks):
                refunds.execute(self.who("admin"), approved[pick % len(approved)])

    @rule(pick=st.integers(0, 50), data=st.data())
    def stripe_moves(self, pick: int, data) -> None:
        """Stripe settles a refund and tells us (refund.updated)."""
        movable = [r for r in self.at_stripe() if STRIPE_NEXT[r["status"]]]
        if movable:
            obj = movable[pick % len(movable)]
            obj["status"] = data.draw(st.sampled_from(STRIPE_NEXT[obj["status"]]))
            self.deliver(obj)

    def deliver(self, obj: dict) -> None:
        snapshot = copy.deepcopy(obj)
        self.delivered.append(snapshot)
        payment_events.apply_refund(snapshot, "hypothesis")

    @precondition(lambda self: self.delivered)
    @rule(pick=st.integers(0, 50))
    def replay(self, pick: int) -> None:
        """An old refund event arrives again, late and perhaps out of order."""
        payment_events.apply_refund(copy.deepcopy(self.delivered[pick % len(self.delivered)]), "replay")

    @rule()
    def charge_refunded(self) -> None:
        """charge.refunded with Stripe's running total (pending and succeeded refunds count there)."""
        total = sum(r["amount"] for r in self.at_stripe() if r["status"] in ("pending", "succeeded"))
        charge = {"id": "ch_x", "payment_intent": self.intent(), "amount": self.captured,
                  "amount_captured": self.captured, "captured": True, "amount_refunded": total + self.dashboard_total}
        payment_events.apply_charge_refund(charge, "hypothesis")

    @rule(amount=st.integers(1, 200_000))
    def dashboard_refund(self, amount: int) -> None:
        """Someone refunds in Stripe's dashboard; Midas hears of it through the next charge.refunded."""
        payment = db.session.get(Payment, self.payment_id)
        if amount <= refunds.available_for(payment):
            self.dashboard_total += amount  # part of Stripe's running total from now on
            self.charge_refunded()
        db.session.rollback()

    @rule(pick=st.integers(0, 50))
    def retry(self, pick: int) -> None:
        """An admin retries a failed refund (a new refund with a new key) when enough is left."""
        failed = [r.id for r in self.ours() if r.status == "failed"]
        if failed:
            try:
                refunds.retry(self.who("admin"), failed[pick % len(failed)])
            except DomainError:
                db.session.rollback()

    @invariant()
    def payment_equals_its_succeeded_refunds(self) -> None:
        db.session.expire_all()
        payment = db.session.get(Payment, self.payment_id)
        rows = list(db.session.scalars(select(Refund).where(Refund.payment_id == self.payment_id)))
        succeeded = sum(r.amount for r in rows if r.status == "succeeded")
        assert payment.amount_refunded == succeeded
        expected = "refunded" if succeeded == self.captured else "partially_refunded" if succeeded else "succeeded"
        assert payment.status == expected
        assert sum(r.amount for r in rows if r.status in RESERVING) <= self.captured
        db.session.rollback()

    @invariant()
    def no_refund_reaches_stripe_twice(self) -> None:
        keys = [call.idempotency_key for call in self.fake.calls("POST", "/v1/refunds")]
        created = [r["metadata"].get("refund_id") for r in self.at_stripe()]
        assert len(created) == len(set(created))  # one Stripe refund per refund of ours
        assert all(key and key.startswith("refund-") for key in keys)
        db.session.rollback()


@pytest.mark.reliability
def test_refund_invariants_hold_through_random_lives(app, fake_stripe):  # noqa: F811
    RefundLives.fake = fake_stripe
    RefundLives.staff_ids = {role: make_staff(role, email=f"{role}@midas.test").id
                             for role in ("concierge", "admin")}
    db.session.rollback()
    run_state_machine_as_test(RefundLives, settings=settings(
        max_examples=25, stateful_step_count=12, deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]))
