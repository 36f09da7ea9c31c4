"""Refunds: policy preview, requests, overrides, approvals and execution that happens exactly once."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import joinedload

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
from midas.services.listing import Page, paginate
from midas.services.refund_policy import RefundQuote, quote, quote_lines

S = RefundStatus
# What counts against a payment's captured amount: everything not refused, failed or canceled.
RESERVING = (S.PENDING_APPROVAL.value, S.APPROVED.value, S.PROCESSING.value, S.SUCCEEDED.value)
STRIPE_STATUS = {"pending": S.PROCESSING, "requires_action": S.PROCESSING, "succeeded": S.SUCCEEDED,
                 "failed": S.FAILED, "canceled": S.CANCELED}


@dataclass(frozen=True)
class Preview:
    """Everything the refund page shows before anything is sent."""

    booking: Booking
    payments: list[Payment]
    payment: Payment | None
    quote: RefundQuote | None
    deposit_note: str


def list_refunds(status: str, page: int) -> Page:
    """Refunds, optionally of one status; the approval queue is oldest first so nobody waits longest."""
    stmt = select(Refund).options(joinedload(Refund.booking), joinedload(Refund.requested_by))
    if status in RefundStatus.values():
        stmt = stmt.where(Refund.status == status)
    oldest_first = status == RefundStatus.PENDING_APPROVAL.value
    stmt = stmt.order_by(Refund.created_at.asc() if oldest_first else Refund.created_at.desc(), Refund.id)
    return paginate(stmt, page)


def get_refund(refund_id: int) -> Refund:
    refund = db.session.get(Refund, refund_id)
    if refund is None:
        raise NotFound("No such refund.")
    return refund


def refundable_payments(booking: Booking) -> list[Payment]:
    """The booking's captured charges (deposit holds are released, not refunded)."""
    return [p for p in booking.payments if p.kind != PaymentKind.DEPOSIT.value and p.amount_captured > 0
            and p.status == PaymentStatus.SUCCEEDED.value]


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
    return _send_if_card(actor, refund)


def _send_if_card(actor: StaffUser, refund: Refund) -> Refund:
    """Approved card refunds go to Stripe at once; if Stripe is unreachable the page offers to send again."""
    if refund.status != S.APPROVED.value or refund.payment.provider != Provider.STRIPE.value:
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


def _check_amount(amount: int, override: str, policy: RefundQuote) -> None:
    if amount <= 0:
        raise InvalidInput("A refund is more than zero.", "amount")
    if amount > policy.available:
        raise InvalidInput(f"At most {policy.available} minor units of this payment are left to refund.", "amount")
    if override == RefundOverride.NONE.value and amount > policy.amount:
        raise InvalidInput("That is more than the policy allows: lower it, or an admin can override.", "amount")


def approve(actor: StaffUser, refund_id: int, reason: str) -> Refund:
    """An admin approves someone else's request; card refunds are then sent to Stripe at once."""
    return _send_if_card(actor, _decide(actor, refund_id, reason, S.APPROVED))


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
    """Send an approved card refund to Stripe, once: row lock, status check, and the refund's own key."""
    require_role(actor, Role.CONCIERGE)
    begin_write(db.session())
    try:
        refund = _locked(refund_id)
        if refund.status != S.APPROVED.value:
            db.session.commit()
            return refund  # a second click, a retried request: already sent (or not approved)
        if refund.payment.provider != Provider.STRIPE.value:
            raise DomainError("Refund this payment outside Midas, then record its reference here.")
        _send_to_stripe(actor, refund)
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
        refund.status, refund.failure_reason = S.FAILED.value, str(exc)
        audit.record("refund.failed", "refund", refund.id, actor=actor, after={"reason": str(exc)})
        return
    refund.provider_ref = answer["id"]
    _move(refund, STRIPE_STATUS.get(answer.get("status"), S.PROCESSING), actor.email, answer.get("failure_reason"))


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
        settle(refund.payment)
        notifications.refund_succeeded(refund)  # keyed by the refund: a replay sends nothing twice


def settle(payment: Payment) -> None:
    """Make the payment's amount_refunded at least the sum of its succeeded refunds (never lowered)."""
    db.session.flush()
    succeeded = sum(r.amount for r in payment.refunds if r.status == S.SUCCEEDED.value)
    payment.amount_refunded = min(payment.amount, max(payment.amount_refunded, succeeded))


def after_provider_update(refund: Refund) -> None:
    """payment_events calls this after moving a Refund to the provider's status, before it commits."""
    if refund.status == S.SUCCEEDED.value:
        settle(refund.payment)
    elif refund.status == S.FAILED.value:
        from midas.services.error_capture import record_error

        record_error("PAYMENT", "MEDIUM", f"Refund #{refund.id} failed: {refund.failure_reason or 'no reason given'}",
                     context={"refund_id": refund.id, "provider_ref": refund.provider_ref},
                     booking_id=refund.booking_id, payment_id=refund.payment_id, amount=refund.amount,
                     currency=refund.currency)


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
    return _send_if_card(actor, again)
