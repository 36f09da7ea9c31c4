"""What a customer sees behind their checkout link, and paying by card through Stripe.

A completed booking returned late may owe a balance (its late fee, services.late_fees): while that
balance payment is open the link shows it as the amount due, and paying it records the money without
touching the booking's state.

The amount is always computed here from the booking (its total less what has already been paid);
nothing the browser sends is read. Each attempt is a Payment row written before Stripe is called,
carrying a deterministic idempotency key (`booking:<id>:charge:<amount>`, then `…:2` after a
cancelled attempt), so a retry after a timeout or a crash reuses the same PaymentIntent rather than
creating a second one. An open intent for the same booking and amount is reused.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import joinedload

from midas.extensions import db
from midas.integrations.stripe_gateway import ProviderError, StripeGateway, card_payments_enabled, stripe_gateway
from midas.models import Booking, BookingStatus, Item, Payment, PaymentKind, PaymentStatus, Provider, utcnow
from midas.services import DomainError, NotFound, availability, booking_states, late_fees, payment_events

PAID = {BookingStatus.CONFIRMED.value, BookingStatus.IN_PROGRESS.value, BookingStatus.COMPLETED.value}
CLOSED = {BookingStatus.CANCELLED.value, BookingStatus.NO_SHOW.value}
PAYABLE = {BookingStatus.QUOTE.value, BookingStatus.PENDING_PAYMENT.value}
DEPOSIT_BOOKINGS = {BookingStatus.CONFIRMED.value, BookingStatus.IN_PROGRESS.value}  # the hold follows payment
P = PaymentStatus
REUSABLE = (P.PENDING.value, P.REQUIRES_ACTION.value, P.FAILED.value)  # Stripe lets the customer try again
IN_FLIGHT = (P.PROCESSING.value,)
HELD = (P.AUTHORIZED.value, P.SUCCEEDED.value)
STRIPE = Provider.STRIPE.value
STRIPE_MAX_AMOUNT = 99_999_999  # Stripe's ceiling for one card payment, in minor units
# A card hold lasts about 7 days, so the deposit is taken from two days before pick-up, not at booking.
DEPOSIT_OPENS = timedelta(days=2)
SLOT_GONE = ("This booking's hold has ended and the dates are no longer available. "
             "Your concierge will be glad to find you another.")


class AlreadyPaid(DomainError):
    status_code = 409


class PaymentInProgress(DomainError):
    status_code = 409


class CheckoutClosed(DomainError):
    status_code = 410


class CardNotPossible(DomainError):
    status_code = 409


@dataclass
class CheckoutView:
    booking: Booking
    state: str  # "payable", "balance" (a completed booking's late fee), "paid", "closed" or "expired"
    amount_due: int = 0
    card_enabled: bool = False
    latest_payment: Payment | None = None  # the latest card attempt
    deposit_state: str = "none"  # "none", "later", "due", "held"
    deposit_payment: Payment | None = None

    @property
    def card_too_large(self) -> bool:
        return self.amount_due > STRIPE_MAX_AMOUNT


@dataclass(frozen=True)
class IntentCreated:
    client_secret: str
    payment_intent: str
    amount: int
    currency: str


# Reading.

def for_token(token: str, now: datetime | None = None) -> CheckoutView:
    """The booking behind a checkout token, and whether (and how much) it can still be paid."""
    now = now or utcnow()
    booking = db.session.scalar(
        select(Booking).where(Booking.checkout_token == token)
        .options(joinedload(Booking.item).joinedload(Item.location), joinedload(Booking.customer))
    ) if 16 <= len(token) <= 64 else None
    if booking is None:
        raise NotFound("This payment link is not valid. Please ask your concierge for a new one.")
    deposit_state, deposit = _deposit(booking, now)
    balance = late_fees.open_balance(booking.id) if booking.status == BookingStatus.COMPLETED.value else None
    if balance is not None:  # a late return's fee: the open balance payment is what is owed now
        return CheckoutView(booking=booking, state="balance", amount_due=balance.amount,
                            card_enabled=card_payments_enabled(), latest_payment=balance)
    return CheckoutView(booking=booking, state=_state(booking, now), amount_due=amount_due(booking),
                        card_enabled=card_payments_enabled(), latest_payment=_latest(booking, PaymentKind.CHARGE),
                        deposit_state=deposit_state, deposit_payment=deposit)


def amount_due(booking: Booking) -> int:
    """The booking total less what has already been paid towards it (never negative)."""
    return max(booking.total_amount - payment_events.amount_paid(booking.id), 0)


def _state(booking: Booking, now: datetime) -> str:
    if booking.status in PAID:
        return "paid"
    if booking.status in CLOSED:
        return "closed"
    if booking.starts_at <= now or (booking.status == BookingStatus.QUOTE.value and not _still_free(booking)):
        return "expired"
    return "payable"


def _still_free(booking: Booking) -> bool:
    return not availability.conflicts_for(booking.item_id, booking.block_starts_at, booking.block_ends_at,
                                          exclude_booking_id=booking.id)


def _latest(booking: Booking, kind: PaymentKind) -> Payment | None:
    return db.session.scalar(select(Payment).where(
        Payment.booking_id == booking.id, Payment.provider == STRIPE, Payment.kind == kind.value,
    ).order_by(Payment.created_at.desc(), Payment.id.desc()).limit(1))


def _deposit(booking: Booking, now: datetime) -> tuple[str, Payment | None]:
    if booking.deposit_amount <= 0 or booking.status in CLOSED:
        return "none", None
    deposit = _latest(booking, PaymentKind.DEPOSIT)
    if deposit is not None and deposit.status in HELD:
        return "held", deposit
    if booking.status not in DEPOSIT_BOOKINGS:
        return ("later" if booking.status in PAYABLE else "none"), deposit
    return ("due" if now >= booking.starts_at - DEPOSIT_OPENS else "later"), deposit


# Paying.

def start_card_payment(token: str, now: datetime | None = None) -> IntentCreated:
    """Create (or reuse) the PaymentIntent for what the booking still owes; the amount is ours alone."""
    view = for_token(token, now)
    if view.state == "balance":
        return _pay_balance(view)
    _refuse_unpayable(view)
    gateway = stripe_gateway()
    booking = _hold(view.booking, now)
    due = amount_due(booking)
    if due <= 0:
        raise AlreadyPaid("Nothing is left to pay on this booking.")
    if due > STRIPE_MAX_AMOUNT:
        raise CardNotPossible("This amount is above what a card can pay at once. Please pay by bank transfer.")
    _refuse_in_flight(booking, PaymentKind.CHARGE)
    _cancel_stale(gateway, booking, PaymentKind.CHARGE, due)
    return _intent_for(gateway, _open_payment(booking, PaymentKind.CHARGE, due))


def start_deposit_hold(token: str, now: datetime | None = None) -> IntentCreated:
    """Create (or reuse) the security deposit's authorisation hold (a PaymentIntent captured later, or not)."""
    view = for_token(token, now)
    if view.state == "closed":
        raise CheckoutClosed("This booking is closed: no deposit is needed.")
    if view.deposit_state == "held":
        raise AlreadyPaid("Your security deposit is already held. Thank you.")
    if view.deposit_state != "due":
        raise CardNotPossible(_deposit_refusal(view))
    gateway = stripe_gateway()
    _refuse_in_flight(view.booking, PaymentKind.DEPOSIT)
    amount = view.booking.deposit_amount
    _cancel_stale(gateway, view.booking, PaymentKind.DEPOSIT, amount)
    return _intent_for(gateway, _open_payment(view.booking, PaymentKind.DEPOSIT, amount))


def _pay_balance(view: CheckoutView) -> IntentCreated:
    """A completed booking's balance: its open payment row is the amount, and there is no slot to hold."""
    gateway = stripe_gateway()
    if view.card_too_large:
        raise CardNotPossible("This amount is above what a card can pay at once. Please pay by bank transfer.")
    _refuse_in_flight(view.booking, PaymentKind.LATE_FEE)
    return _intent_for(gateway, view.latest_payment)


def _refuse_unpayable(view: CheckoutView) -> None:
    if view.state == "paid":
        raise AlreadyPaid("This booking is already paid. Thank you.")
    if view.state == "closed":
        raise CheckoutClosed(f"This booking is {view.booking.status.replace('_', ' ')} and can no longer be paid.")
    if view.state == "expired":
        raise CheckoutClosed(SLOT_GONE)


def _deposit_refusal(view: CheckoutView) -> str:
    if view.deposit_state == "later" and view.booking.status in PAYABLE:
        return "The deposit hold follows your payment: please pay for the booking first."
    if view.deposit_state == "later":
        return "The deposit hold opens two days before pick-up; please use this link again then."
    return "No security deposit is needed for this booking."


def _hold(booking: Booking, now: datetime | None) -> Booking:
    try:
        return booking_states.hold_for_checkout(booking.reference, now=now)
    except availability.BookingConflict as exc:
        raise CheckoutClosed(SLOT_GONE) from exc


def _refuse_in_flight(booking: Booking, kind: PaymentKind) -> None:
    busy = db.session.scalar(select(func.count()).select_from(Payment).where(
        Payment.booking_id == booking.id, Payment.provider == STRIPE, Payment.kind == kind.value,
        Payment.status.in_(IN_FLIGHT)))
    if busy:
        raise PaymentInProgress("Your payment is being processed; this page will update when it completes.")


def _open_payment(booking: Booking, kind: PaymentKind, amount: int) -> Payment:
    """The reusable attempt for this booking, kind and amount, or a new one (committed before Stripe is called)."""
    reusable = db.session.scalar(select(Payment).where(
        Payment.booking_id == booking.id, Payment.provider == STRIPE, Payment.kind == kind.value,
        Payment.amount == amount, Payment.status.in_(REUSABLE),
    ).order_by(Payment.id.desc()).limit(1))
    return reusable or _new_payment(booking, kind, amount)


def _new_payment(booking: Booking, kind: PaymentKind, amount: int) -> Payment:
    base = f"booking:{booking.id}:{kind.value}:{amount}"
    earlier = db.session.scalar(select(func.count()).select_from(Payment).where(
        or_(Payment.idempotency_key == base, Payment.idempotency_key.like(f"{base}:%"))))
    key = f"{base}:{earlier + 1}" if earlier else base
    payment = Payment(booking_id=booking.id, provider=STRIPE, kind=kind.value, status=P.PENDING.value, amount=amount,
                      currency=booking.currency, amount_captured=0, amount_refunded=0, idempotency_key=key)
    db.session.add(payment)
    try:
        db.session.commit()
    except IntegrityError:  # a double click: the other request wrote the same attempt
        db.session.rollback()
        payment = db.session.scalar(select(Payment).where(Payment.idempotency_key == key))
    return payment


def _intent_for(gateway: StripeGateway, payment: Payment, retried: bool = False) -> IntentCreated:
    intent_id, create = payment.provider_ref, _create_params(payment)
    db.session.commit()  # no transaction stays open across the network call (SQLite: it would hold the write lock)
    intent = gateway.retrieve_payment_intent(intent_id) if intent_id else gateway.create_payment_intent(**create)
    payment = payment_events.apply_payment_intent(intent, "checkout")
    if intent.get("status") == "canceled" and not retried:  # expired or cancelled at Stripe: a fresh attempt
        fresh = _new_payment(payment.booking, PaymentKind(payment.kind), payment.amount)
        return _intent_for(gateway, fresh, retried=True)
    if intent.get("status") not in ("requires_payment_method", "requires_confirmation", "requires_action"):
        raise PaymentInProgress("This payment has already been made or is being processed.")
    return IntentCreated(client_secret=intent["client_secret"], payment_intent=intent["id"],
                         amount=payment.amount, currency=payment.currency)


def _create_params(payment: Payment) -> dict:
    return {"amount": payment.amount, "currency": payment.currency, "idempotency_key": payment.idempotency_key,
            "metadata": _metadata(payment), "manual_capture": payment.kind == PaymentKind.DEPOSIT.value,
            "description": f"Midas booking {payment.booking.reference} ({payment.kind.replace('_', ' ')})"}


def _metadata(payment: Payment) -> dict[str, str]:
    return {"booking_reference": payment.booking.reference, "payment_id": str(payment.id), "kind": payment.kind}


def _cancel_stale(gateway: StripeGateway, booking: Booking, kind: PaymentKind, amount: int) -> None:
    """Cancel open intents of the booking for another amount (it was re-priced), so only the right one can be paid."""
    stale = db.session.execute(select(Payment.id, Payment.provider_ref).where(
        Payment.booking_id == booking.id, Payment.provider == STRIPE, Payment.kind == kind.value,
        Payment.amount != amount, Payment.status.in_(REUSABLE), Payment.provider_ref.is_not(None))).all()
    db.session.commit()
    for payment_id, intent_id in stale:
        try:
            intent = gateway.cancel_payment_intent(intent_id, f"payment:{payment_id}:cancel")
            payment_events.apply_payment_intent(intent, "checkout")
        except (ProviderError, payment_events.PaymentMismatch):
            continue  # logged; at worst the old amount is paid and flagged for staff
