"""Refunds: policy preview, requests, overrides, approvals and execution that happens exactly once."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from midas.database import begin_write
from midas.extensions import db
from midas.models import (
    Booking,
    Payment,
    PaymentKind,
    PaymentStatus,
    Provider,
    Refund,
    RefundOverride,
    RefundStatus,
    Role,
    StaffUser,
    utcnow,
)
from midas.services import DomainError, InvalidInput, NotFound, PermissionDenied, audit, notifications, settings
from midas.services.auth import require_role
from midas.services.refund_policy import RefundQuote, quote, quote_lines

S = RefundStatus
# What counts against a payment's captured amount: everything not refused, failed or canceled.
RESERVING = (S.PENDING_APPROVAL.value, S.APPROVED.value, S.PROCESSING.value, S.SUCCEEDED.value)
STRIPE_STATUS = {"pending": S.PROCESSING, "requires_action": S.PROCESSING, "succeeded": S.SUCCEEDED,
                 "failed": S.FAILED, "canceled": S.CANCELED}
PAYPAL_STATUS = {"COMPLETED": S.SUCCEEDED, "PENDING": S.PROCESSING, "FAILED": S.FAILED, "CANCELLED": S.CANCELED}
SENT_BY_MIDAS = (Provider.STRIPE.value, Provider.PAYPAL.value)  # refunded through the provider's API
# Forward only; a Stripe refund can still fail after it succeeded (the card account was closed).
RANK = {S.PENDING_APPROVAL: 0, S.APPROVED: 1, S.PROCESSING: 2, S.SUCCEEDED: 3, S.FAILED: 4, S.CANCELED: 4,
        S.REJECTED: 4, S.NO_REFUND: 4}


@dataclass(frozen=True)
class Preview:
    """Everything the refund page shows before anything is sent."""

    booking: Booking
    payments: list[Payment]
    payment: Payment | None
    quote: RefundQuote | None
    deposit_note: str


def get_refund(refund_id: int) -> Refund:
    refund = db.session.get(Refund, refund_id)
    if refund is None:
        raise NotFound("No such refund.")
    return refund


def refundable_payments(booking: Booking) -> list[Payment]:
    """The booking's captured charges (deposit holds are released, not refunded)."""
    return [p for p in booking.payments if p.kind != PaymentKind.DEPOSIT.value and p.amount_captured > 0
            and p.status in PaymentStatus.paid()]


def available_for(payment: Payment) -> int:
    """What may still be refunded of a payment: captured minus every refund not refused, failed or canceled."""
    reserved = db.session.scalars(select(Refund.amount).where(
        Refund.payment_id == payment.id, Refund.status.in_(RESERVING))).all()
    return max(0, payment.amount_captured - sum(reserved))


def preview(reference: str, payment_id: int | None = None, now: datetime | None = None) -> Preview:
    """The policy refund of one of the booking's payments (the first captured one unless chosen)."""
    booking = db.session.scalar(select(Booking).where(Booking.reference == reference))
    if booking is None:
        raise NotFound(f"No booking {reference}.")
    payments = refundable_payments(booking)
    payment = next((p for p in payments if payment_id in (None, p.id)), None)
    deposit_note = "The security deposit hold is released in full; it is never part of a refund." \
        if booking.deposit_amount else ""
    return Preview(booking, payments, payment, _quote(booking, payment, now) if payment else None, deposit_note)


def _quote(booking: Booking, payment: Payment, now: datetime | None) -> RefundQuote:
    policy, version = settings.get_refund_policy()
    available = available_for(payment)
    return quote(policy, version, booking.item.category, booking.starts_at, now or utcnow(),
                 booking.item.location.timezone, quote_lines(booking.lines), payment.currency, available,
                 already=payment.amount_captured - available)


def needs_approval(amount: int, currency: str, override: str) -> bool:
    """Overrides always wait for an admin; so does anything above the currency's threshold (or without one)."""
    threshold = settings.get_approval_thresholds().get(currency.upper())
    return override != RefundOverride.NONE.value or threshold is None or amount > threshold


def request_refund(actor: StaffUser, reference: str, payment_id: int, amount: int, reason: str,
                   override: str = RefundOverride.NONE.value, now: datetime | None = None) -> Refund:
    """Record a refund request; small policy refunds are approved at once, the rest wait for an admin."""
    require_role(actor, Role.CONCIERGE)
    if override not in RefundOverride.values():
        raise InvalidInput("Choose no override, force majeure or goodwill.", "override")
    if override != RefundOverride.NONE.value and not actor.has_role(Role.ADMIN):
        raise PermissionDenied("Only an admin or the owner can override the refund policy.")
    if not reason.strip():
        raise InvalidInput("Say why the money is refunded.", "reason")
    begin_write(db.session())
    try:
        refund = _new_refund(actor, reference, payment_id, amount, reason.strip()[:500], override, now)
        db.session.commit()
    except BaseException:
        db.session.rollback()
        raise
    return _send_if_online(actor, refund)


def _send_if_online(actor: StaffUser, refund: Refund) -> Refund:
    """Approved Stripe and PayPal refunds are sent at once; if the provider is unreachable the page offers
    to send again (with the same key, so the provider never pays twice)."""
    if refund.status != S.APPROVED.value or refund.payment.provider not in SENT_BY_MIDAS:
        return refund
    try:
        return execute(actor, refund.id)
    except DomainError as exc:
        refund = get_refund(refund.id)
        refund.failure_reason = f"Not sent yet: {exc}"
        db.session.commit()
        return refund


def _new_refund(actor: StaffUser, reference: str, payment_id: int, amount: int, reason: str, override: str,
                now: datetime | None) -> Refund:
    # The payment row lock makes concurrent requests queue, so together they never exceed what was captured.
    payment = db.session.get(Payment, payment_id, with_for_update=True, populate_existing=True)
    shown = preview(reference, payment_id, now)
    if payment is None or shown.payment is None or shown.payment.id != payment_id:
        raise InvalidInput("Choose a captured payment of this booking.", "payment_id")
    _check_amount(amount, override, shown.quote)
    refund = Refund(payment=payment, booking_id=shown.booking.id, amount=amount, currency=payment.currency,
                    status=S.PENDING_APPROVAL.value, reason=reason, override=override,
                    policy_version=shown.quote.policy_version, policy_rule=shown.quote.rule,
                    idempotency_key=f"refund-{secrets.token_hex(12)}", requested_by_id=actor.id)
    db.session.add(refund)
    if not needs_approval(amount, payment.currency, override):
        refund.status, refund.decided_at, refund.decision_reason = S.APPROVED.value, utcnow(), "within policy"
    db.session.flush()
    refund.idempotency_key = f"refund-{refund.id}"
    audit.record("refund.requested", "refund", refund.id, actor=actor,
                 after={"amount": amount, "currency": refund.currency, "override": override,
                        "rule": refund.policy_rule, "policy_version": refund.policy_version, "status": refund.status})
    return refund


def decide_on_cancellation(actor: StaffUser, booking: Booking, now: datetime | None = None) -> list[Refund]:
    """In the cancellation's transaction: the policy's decision for each captured payment, recorded even when it
    refunds nothing. Above zero it is a refund request like any other (approved at once within the threshold,
    sent from its page); at zero it is a `no_refund` row keeping the rule that gave it."""
    decisions = []
    for payment in refundable_payments(booking):
        db.session.get(Payment, payment.id, with_for_update=True, populate_existing=True)
        policy = _quote(booking, payment, now)
        if policy.available <= 0:
            continue  # refunded in full already: those refunds are the decision
        reason = f"Booking cancelled: {booking.cancel_reason or '—'}"[:500]
        refund = Refund(payment=payment, booking_id=booking.id, amount=policy.amount, currency=payment.currency,
                        status=S.PENDING_APPROVAL.value, reason=reason,
                        policy_version=policy.policy_version, policy_rule=policy.rule, requested_by_id=actor.id,
                        idempotency_key=f"refund-cancel-{booking.id}-{payment.id}-{secrets.token_hex(4)}")
        db.session.add(refund)
        if policy.amount == 0:
            refund.status, refund.decided_at = S.NO_REFUND.value, utcnow()
            refund.decision_reason = "nothing is refundable at this notice"
        elif not needs_approval(policy.amount, payment.currency, RefundOverride.NONE.value):
            refund.status, refund.decided_at, refund.decision_reason = S.APPROVED.value, utcnow(), "within policy"
        db.session.flush()
        refund.idempotency_key = f"refund-{refund.id}"
        audit.record("refund.decided", "refund", refund.id, actor=actor,
                     after={"amount": refund.amount, "currency": refund.currency, "rule": refund.policy_rule,
                            "policy_version": refund.policy_version, "status": refund.status})
        decisions.append(refund)
    return decisions


def _check_amount(amount: int, override: str, policy: RefundQuote) -> None:
    if amount <= 0:
        raise InvalidInput("A refund is more than zero.", "amount")
    if amount > policy.available:
        raise InvalidInput(f"At most {policy.available} minor units of this payment are left to refund.", "amount")
    if override == RefundOverride.NONE.value and amount > policy.amount:
        raise InvalidInput("That is more than the policy allows: lower it, or an admin can override.", "amount")


def approve(actor: StaffUser, refund_id: int, reason: str) -> Refund:
    """An admin approves someone else's request; Stripe and PayPal refunds are then sent at once."""
    return _send_if_online(actor, _decide(actor, refund_id, reason, S.APPROVED))


def reject(actor: StaffUser, refund_id: int, reason: str) -> Refund:
    """An admin refuses a request, saying why; the requester sees the reason on the refund's page."""
    return _decide(actor, refund_id, reason, S.REJECTED)


def _decide(actor: StaffUser, refund_id: int, reason: str, outcome: RefundStatus) -> Refund:
    require_role(actor, Role.ADMIN)
    if not reason.strip():
        raise InvalidInput("Give a reason for the decision.", "decision_reason")
    begin_write(db.session())
    try:
        refund = _locked(refund_id)
        if refund.requested_by_id == actor.id:
            raise PermissionDenied("Nobody approves or rejects their own refund request.")
        if refund.status != S.PENDING_APPROVAL.value:
            raise DomainError(f"This refund is already {refund.status.replace('_', ' ')}.")
        refund.status, refund.decided_at = outcome.value, utcnow()
        refund.decision_reason = reason.strip()[:500]
        if outcome == S.APPROVED:
            refund.approved_by_id = actor.id
        audit.record(f"refund.{outcome.value}", "refund", refund.id, actor=actor,
                     before={"status": S.PENDING_APPROVAL.value},
                     after={"status": outcome.value, "reason": refund.decision_reason})
        db.session.commit()
    except BaseException:
        db.session.rollback()
        raise
    return refund


def _locked(refund_id: int) -> Refund:
    refund = db.session.get(Refund, refund_id, with_for_update=True, populate_existing=True)
    if refund is None:
        raise NotFound("No such refund.")
    return refund


def execute(actor: StaffUser, refund_id: int) -> Refund:
    """Send an approved refund to Stripe or PayPal, once: row lock, status check, and the refund's own key."""
    require_role(actor, Role.CONCIERGE)
    begin_write(db.session())
    try:
        refund = _locked(refund_id)
        if refund.status != S.APPROVED.value:
            db.session.commit()
            return refund  # a second click, a retried request: already sent (or not approved)
        if refund.payment.provider == Provider.STRIPE.value:
            _send_to_stripe(actor, refund)
        elif refund.payment.provider == Provider.PAYPAL.value:
            _send_to_paypal(actor, refund)
        else:
            raise DomainError("Refund this payment outside Midas, then record its reference here.")
        db.session.commit()
    except BaseException:
        db.session.rollback()
        raise
    return refund


def _send_to_stripe(actor: StaffUser, refund: Refund) -> None:
    from midas.integrations.stripe_gateway import ProviderError

    try:
        answer = create_refund(refund.payment.provider_ref, refund.amount, refund.idempotency_key,
                               {"refund_id": str(refund.id), "booking_reference": refund.booking.reference})
    except ProviderError as exc:
        if exc.retryable:
            raise  # unknown outcome: stays approved; executing again reuses the key, so Stripe will not pay twice
        _move(refund, S.FAILED, actor.email, str(exc))
        return
    refund.provider_ref = answer["id"]
    _move(refund, STRIPE_STATUS.get(answer.get("status"), S.PROCESSING), actor.email, answer.get("failure_reason"))


def _send_to_paypal(actor: StaffUser, refund: Refund) -> None:
    from midas.integrations.paypal_gateway import PayPalError, from_app

    try:
        reference = refund.booking.reference
        answer = from_app().refund_capture(refund.payment.provider_ref, refund.amount, refund.currency,
                                           refund.idempotency_key, note=f"Refund for booking {reference}",
                                           invoice_id=f"{reference}-R{refund.id}")
    except PayPalError as exc:
        if exc.transient:  # unknown outcome: stays approved; sending again reuses the PayPal-Request-Id
            raise DomainError(f"PayPal could not be reached ({exc}); send the refund again.") from exc
        _move(refund, S.FAILED, actor.email, str(exc))
        return
    refund.provider_ref = answer.id
    _move(refund, PAYPAL_STATUS.get(answer.status, S.PROCESSING), actor.email, answer.reason)


def follow_paypal(refund_id: int) -> Refund:
    """Ask PayPal how a processing refund ended (PENDING refunds settle later; IPN may also tell us)."""
    from midas.integrations.paypal_gateway import PayPalError, from_app

    refund = get_refund(refund_id)
    if refund.status != S.PROCESSING.value or refund.payment.provider != Provider.PAYPAL.value:
        return refund
    try:
        answer = from_app().get_refund(refund.provider_ref)
    except PayPalError as exc:
        raise DomainError(f"PayPal did not say: {exc}") from exc
    db.session.rollback()
    return apply_provider_status(refund.id, PAYPAL_STATUS.get(answer.status, S.PROCESSING), "paypal", answer.reason)


def follow_pending_paypal() -> int:
    """The scheduler's sweep: follow every PayPal refund still processing; returns how many moved on."""
    ids = db.session.scalars(select(Refund.id).join(Refund.payment).where(
        Refund.status == S.PROCESSING.value, Payment.provider == Provider.PAYPAL.value)).all()
    db.session.rollback()
    moved = 0
    for refund_id in ids:
        try:
            moved += follow_paypal(refund_id).status != S.PROCESSING.value
        except DomainError:
            db.session.rollback()  # PayPal did not answer about this one: the next sweep asks again
    return moved


def apply_provider_status(refund_id: int, target: RefundStatus, actor_label: str, failure: str | None = None) -> Refund:
    """Move a refund to the provider's status, forwards only; replaying the same answer changes nothing."""
    begin_write(db.session())
    try:
        refund = _locked(refund_id)
        db.session.get(Payment, refund.payment_id, with_for_update=True, populate_existing=True)
        move_forward(refund, target, actor_label, failure)
        db.session.commit()
    except BaseException:
        db.session.rollback()
        raise
    return refund


def move_forward(refund: Refund, target: RefundStatus, actor_label: str, failure: str | None = None) -> bool:
    """Inside the caller's transaction: move the refund on if `target` is further along; False if it is not."""
    if RANK[target] <= RANK[RefundStatus(refund.status)]:
        return False
    _move(refund, target, actor_label, failure)
    return True


def record_external(payment: Payment, provider_total: int, provider: str, source: str) -> Refund | None:
    """The provider says `provider_total` of the payment is refunded. What our own refunds (sent or done) do not
    explain was refunded in the provider's dashboard: it becomes a succeeded refund row, so the payment still
    equals the sum of its refunds. Replays find nothing missing and change nothing."""
    ours = int(db.session.scalar(select(func.coalesce(func.sum(Refund.amount), 0)).where(
        Refund.payment_id == payment.id, Refund.status.in_((S.PROCESSING.value, S.SUCCEEDED.value)))))
    missing = min(provider_total, payment.amount) - ours
    if missing <= 0:
        settle(payment)
        return None
    refund = Refund(payment=payment, booking_id=payment.booking_id, amount=missing, currency=payment.currency,
                    status=S.PROCESSING.value, reason=f"Refunded in {provider.capitalize()}'s dashboard",
                    idempotency_key=f"{provider}-external:{payment.id}:{provider_total}")
    db.session.add(refund)
    db.session.flush()
    audit.record("refund.recorded", "refund", refund.id, actor_label=provider,
                 after={"amount": missing, "provider_total": provider_total, "source": source})
    _move(refund, S.SUCCEEDED, provider)
    return refund


def create_refund(payment_intent: str, amount: int, idempotency_key: str, metadata: dict[str, str]) -> dict:
    """POST /v1/refunds through the Stripe gateway, with the refund row's own idempotency key."""
    from midas.integrations.stripe_gateway import stripe_gateway

    return stripe_gateway().create_refund(payment_intent=payment_intent, amount=amount,
                                          idempotency_key=idempotency_key, metadata=metadata)


def record_offline(actor: StaffUser, refund_id: int, reference: str) -> Refund:
    """An admin records a refund paid by hand (wire, cash, PayPal dashboard) with its reference."""
    require_role(actor, Role.ADMIN)
    if not reference.strip():
        raise InvalidInput("Give the bank or provider reference of the refund.", "reference")
    begin_write(db.session())
    try:
        refund = _locked(refund_id)
        if refund.status != S.APPROVED.value:
            raise DomainError(f"Only an approved refund can be recorded; this one is {refund.status}.")
        if refund.payment.provider == Provider.STRIPE.value:
            raise DomainError("Card refunds go through Stripe: execute it instead.")
        refund.provider_ref = reference.strip()[:255]
        _move(refund, S.SUCCEEDED, actor.email)
        db.session.commit()
    except IntegrityError as exc:
        db.session.rollback()
        raise InvalidInput("That reference is already recorded for another refund.", "reference") from exc
    except BaseException:
        db.session.rollback()
        raise
    return refund


def _move(refund: Refund, target: RefundStatus, actor_label: str, failure: str | None = None) -> None:
    audit.record(f"refund.{target.value}", "refund", refund.id, actor_label=actor_label,
                 before={"status": refund.status}, after={"status": target.value, "provider_ref": refund.provider_ref})
    refund.status = target.value
    if target == S.FAILED:
        refund.failure_reason = failure or "failed at the provider"
    if target == S.SUCCEEDED:
        refund.succeeded_at = refund.succeeded_at or utcnow()
        notifications.refund_succeeded(refund)  # keyed by the refund: a replay sends nothing twice
    after_provider_update(refund)


def settle(payment: Payment) -> None:
    """Make the payment's amount_refunded and state equal the sum of its succeeded refunds (issue #8's invariant)."""
    db.session.flush()
    total = int(db.session.scalar(select(func.coalesce(func.sum(Refund.amount), 0)).where(
        Refund.payment_id == payment.id, Refund.status == S.SUCCEEDED.value)))
    payment.amount_refunded = total
    if payment.status in PaymentStatus.paid() and total <= payment.amount_captured:
        payment.status = (PaymentStatus.REFUNDED if total and total >= payment.amount_captured else
                          PaymentStatus.PARTIALLY_REFUNDED if total else PaymentStatus.SUCCEEDED).value


def after_provider_update(refund: Refund) -> None:
    """Every refund status change ends here (ours, Stripe's, PayPal's) before it commits: the payment follows."""
    settle(refund.payment)
    if refund.status == S.FAILED.value:
        from midas.services.error_capture import record_error

        # The payment id goes in the context, not the linked column: the error is written in its own session
        # while ours holds the payment row FOR UPDATE, and a foreign key to it would wait on us forever.
        record_error("PAYMENT", "MEDIUM", f"Refund #{refund.id} failed: {refund.failure_reason or 'no reason given'}",
                     context={"refund_id": refund.id, "provider_ref": refund.provider_ref,
                              "payment_id": refund.payment_id},
                     booking_id=refund.booking_id, amount=refund.amount, currency=refund.currency)


def retry(actor: StaffUser, refund_id: int) -> Refund:
    """An admin retries a failed refund: a new row (new key) carrying the same approval, sent at once."""
    require_role(actor, Role.ADMIN)
    begin_write(db.session())
    try:
        failed = _locked(refund_id)
        if failed.status != S.FAILED.value:
            raise DomainError("Only a failed refund can be retried.")
        db.session.get(Payment, failed.payment_id, with_for_update=True, populate_existing=True)
        if failed.amount > available_for(failed.payment):
            raise DomainError("Not enough is left on the payment to retry this refund.")
        again = Refund(payment_id=failed.payment_id, booking_id=failed.booking_id, amount=failed.amount,
                       currency=failed.currency, status=S.APPROVED.value, reason=failed.reason,
                       override=failed.override, policy_version=failed.policy_version, policy_rule=failed.policy_rule,
                       idempotency_key=f"refund-retry-{secrets.token_hex(12)}", requested_by_id=failed.requested_by_id,
                       approved_by_id=failed.approved_by_id, decided_at=utcnow(),
                       decision_reason=f"retry of refund #{failed.id}")
        db.session.add(again)
        db.session.flush()
        again.idempotency_key = f"refund-{again.id}"
        audit.record("refund.retried", "refund", again.id, actor=actor, after={"retry_of": failed.id})
        db.session.commit()
    except BaseException:
        db.session.rollback()
        raise
    return _send_if_online(actor, again)
