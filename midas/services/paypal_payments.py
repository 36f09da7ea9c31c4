"""Paying a booking through PayPal (Orders API) or offline (bank transfer, pay on pick-up).

The amount is always what the booking still owes, computed on the server by `checkout.amount_due`
(its total minus the charges that already succeeded), whatever the browser sends. A PayPal payment
row's `provider_ref` is the order id while the customer approves it, then the capture id once PayPal
has captured (the id IPN reports as `txn_id` and refunds point at); the order id stays in the
capture's audit entry. Its `idempotency_key`, "paypal:<reference>:<amount><currency>:<n>" (n = the
booking's earlier PayPal rows), is the PayPal-Request-Id of the create call and, with ":capture"
appended, of the capture call: both come from stored facts, so a retry after a crash or a double
click sends the same ids and PayPal acts once.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from flask import current_app
from sqlalchemy import func, select

from midas.database import in_write
from midas.extensions import db
from midas.integrations import paypal_gateway
from midas.integrations.paypal_gateway import Order, PayPalError, PayPalGateway
from midas.models import (
    Booking,
    BookingStatus,
    ErrorCategory,
    Payment,
    PaymentKind,
    PaymentStatus,
    Provider,
    Role,
    Severity,
    StaffUser,
    utcnow,
)
from midas.money import format_money
from midas.services import (
    DomainError,
    InvalidInput,
    NotFound,
    audit,
    availability,
    booking_states,
    checkout,
    notifications,
)
from midas.services.auth import require_role
from midas.services.error_capture import record_error

P = PaymentStatus
PAYABLE = {BookingStatus.QUOTE.value, BookingStatus.PENDING_PAYMENT.value}
OFFLINE = {Provider.BANK_TRANSFER.value: "bank transfer", Provider.PAY_ON_PICKUP.value: "payment at pick-up"}
REUSABLE_ORDERS = {"CREATED", "SAVED", "PAYER_ACTION_REQUIRED", "APPROVED"}
BANK_TRANSFER_HOLD = timedelta(days=3)  # a transfer takes a few working days; never past the start
# How far along a payment is: a status only ever moves to a higher rank (late events change nothing).
RANK = {P.PENDING: 0, P.REQUIRES_ACTION: 0, P.PROCESSING: 1, P.AUTHORIZED: 1,
        P.SUCCEEDED: 2, P.FAILED: 2, P.CANCELED: 2, P.RELEASED: 2, P.PARTIALLY_REFUNDED: 3, P.REFUNDED: 3}


class PaymentUnavailable(DomainError):
    """The provider could not take the payment right now; nothing was charged."""

    status_code = 503


class PaymentDeclined(DomainError):
    status_code = 402


@dataclass(frozen=True)
class BankDetails:
    account_name: str
    iban: str
    bic: str


@dataclass(frozen=True)
class OtherMethods:
    """What the checkout page offers besides a card, and the method already chosen if any."""

    amount_due: int
    currency: str
    paypal: bool
    bank: BankDetails | None
    chosen: Payment | None

    @property
    def open(self) -> bool:
        """Another method may still be chosen: money is owed and no PayPal payment is on its way."""
        return self.amount_due > 0 and not (self.chosen and self.chosen.provider == Provider.PAYPAL.value)

    def offers(self, provider: str) -> bool:
        return self.open and not (self.chosen and self.chosen.provider == provider) and (
            provider != Provider.BANK_TRANSFER.value or self.bank is not None)


@dataclass(frozen=True)
class PayPalStart:
    payment_id: int
    order_id: str
    approve_url: str | None
    amount: int


# Shared rules.

def amount_due(booking: Booking) -> int:
    """What the booking still owes, as the checkout computes it (int: a SQL SUM can come back as Decimal)."""
    return int(checkout.amount_due(booking))


def can_move(payment: Payment, target: PaymentStatus) -> bool:
    return RANK[target] > RANK[PaymentStatus(payment.status)]


def succeed(payment: Payment, now: datetime | None = None) -> None:
    """Mark a payment received and stage the customer's receipt (in the caller's transaction)."""
    payment.status = P.SUCCEEDED.value
    payment.succeeded_at = now or utcnow()
    payment.amount_captured = payment.amount
    payment.failure_code = payment.failure_message = None
    notifications.payment_received(payment)


def fail(payment: Payment, code: str, message: str) -> None:
    payment.status = P.FAILED.value
    payment.failure_code, payment.failure_message = code[:80], message
    notifications.payment_failed(payment)


def confirm_if_paid(booking_id: int, reason: str, actor: StaffUser | None = None) -> None:
    """After money arrived: confirm the booking once nothing is owed; money for a closed booking is alarmed."""
    booking = db.session.get(Booking, booking_id)
    if booking.status in checkout.CLOSED:
        _paid_not_confirmed(booking, f"it is {booking.status.replace('_', ' ')}: refund or reinstate it")
    elif booking.status in PAYABLE and amount_due(booking) == 0:
        try:
            booking_states.confirm(actor, booking.reference, reason)
        except DomainError as exc:
            booking = db.session.get(Booking, booking_id)
            if booking.status != BookingStatus.CONFIRMED.value:  # not a concurrent confirmation: a real problem
                _paid_not_confirmed(booking, str(exc))


def _paid_not_confirmed(booking: Booking, why: str) -> None:
    record_error(ErrorCategory.BOOKING, Severity.HIGH, f"Booking {booking.reference} is paid but could not be "
                 f"confirmed: {why}", error_type="PaidNotConfirmed", booking_id=booking.id)


def locked_booking(booking_id: int) -> Booking:
    """The booking, locked against other payment writers until commit.

    FOR NO KEY UPDATE on PostgreSQL: it still serializes payment changes, but lets error capture (its own
    connection) insert rows that reference the booking meanwhile instead of waiting for us forever.
    """
    return db.session.scalar(select(Booking).where(Booking.id == booking_id).with_for_update(key_share=True))


# What the checkout page offers.

def bank_details() -> BankDetails | None:
    config = current_app.config
    values = [config.get("BANK_ACCOUNT_NAME"), config.get("BANK_IBAN"), config.get("BANK_BIC")]
    return BankDetails(*values) if all(values) else None


def other_methods(booking: Booking) -> OtherMethods:
    """PayPal when configured and the currency is PayPal's; bank transfer when the house's details are set."""
    due = amount_due(booking)
    chosen = db.session.scalar(select(Payment).where(
        Payment.booking_id == booking.id,
        ((Payment.provider.in_(OFFLINE) & (Payment.status == P.PENDING.value))
         | ((Payment.provider == Provider.PAYPAL.value) & (Payment.status == P.PROCESSING.value))),
    ).order_by(Payment.id.desc()).limit(1))
    return OtherMethods(due, booking.currency, _paypal_accepts(booking, due), bank_details(), chosen)


def _paypal_accepts(booking: Booking, due: int) -> bool:
    if not paypal_gateway.from_app().enabled or not paypal_gateway.accepts(booking.currency):
        return False
    try:
        paypal_gateway.paypal_value(due, booking.currency)
    except ValueError:
        return False
    return True


def _payable(token: str) -> Booking:
    view = checkout.for_token(token)
    if view.state == "paid":
        raise checkout.AlreadyPaid("This booking is already paid. Thank you.")
    if view.state != "payable":
        raise checkout.CheckoutClosed("This booking can no longer be paid. Your concierge will be glad to help.")
    return view.booking


def _hold(booking: Booking, minutes: int | None = None, now: datetime | None = None) -> None:
    """Keep the item for the customer while they pay (held again if a lapsed hold left it free)."""
    try:
        booking_states.hold_for_checkout(booking.reference, **({"minutes": minutes} if minutes else {}), now=now)
    except availability.BookingConflict as exc:
        raise checkout.CheckoutClosed("The hold on these dates has ended and they are no longer available. "
                                      "Your concierge will be glad to find you another.") from exc


def _due_or_refuse(booking: Booking) -> int:
    due = amount_due(booking)
    if due <= 0:
        raise DomainError("Nothing is left to pay on this booking.")
    return due


# PayPal orders.

def start_order(token: str, return_url: str, cancel_url: str) -> PayPalStart:
    """Create (or reuse the open) PayPal order for what the booking owes; the customer approves it at PayPal."""
    booking = _payable(token)
    gateway = paypal_gateway.from_app()
    if not _paypal_accepts(booking, amount_due(booking)):
        raise PaymentUnavailable("PayPal is not available for this booking. Please choose another way to pay.")
    _hold(booking)
    for _ in range(3):  # a stale open order (voided, expired, captured elsewhere) is replaced
        payment = in_write(lambda: _open_paypal_payment(booking.id))
        order = _usable_order(gateway, payment, booking, return_url, cancel_url)
        if order is not None:
            return PayPalStart(payment.id, order.id, order.approve_url, payment.amount)
    raise PaymentUnavailable("PayPal could not start the payment. Please try again in a moment.")


def _open_paypal_payment(booking_id: int) -> Payment:
    booking = locked_booking(booking_id)
    due = _due_or_refuse(booking)
    in_flight = select(Payment.id).where(Payment.booking_id == booking.id, Payment.status == P.PROCESSING.value,
                                         Payment.provider == Provider.PAYPAL.value)
    if db.session.scalar(in_flight.limit(1)):
        raise checkout.PaymentInProgress("Your PayPal payment is being processed; we confirm the booking when it "
                                         "completes.")
    keep = None
    for payment in _pending(booking, [Provider.PAYPAL.value]):
        if keep is None and payment.amount == due and payment.currency == booking.currency:
            keep = payment
        else:
            payment.status, payment.failure_message = P.CANCELED.value, "Replaced by a newer checkout attempt."
    return keep or _new_payment(booking, Provider.PAYPAL.value, due, "paypal")


def _pending(booking: Booking, providers: list[str]) -> list[Payment]:
    return list(db.session.scalars(select(Payment).where(
        Payment.booking_id == booking.id, Payment.provider.in_(providers), Payment.status == P.PENDING.value,
        Payment.kind == PaymentKind.CHARGE.value).order_by(Payment.id.desc())))


def _new_payment(booking: Booking, provider: str, amount: int, method: str) -> Payment:
    earlier = db.session.scalar(select(func.count()).select_from(Payment).where(
        Payment.booking_id == booking.id, Payment.provider == provider))
    payment = Payment(booking=booking, provider=provider, kind=PaymentKind.CHARGE.value, status=P.PENDING.value,
                      amount=amount, currency=booking.currency, method=method,
                      idempotency_key=f"{provider}:{booking.reference}:{amount}{booking.currency}:{earlier}")
    db.session.add(payment)
    db.session.flush()
    return payment


def _usable_order(gateway: PayPalGateway, payment: Payment, booking: Booking, return_url: str,
                  cancel_url: str) -> Order | None:
    """The payment's order if the customer can still approve it; a new one if it has none; None if stale."""
    if payment.provider_ref is None:
        order = _calling_paypal(payment, lambda: gateway.create_order(
            payment.idempotency_key, booking.reference, payment.amount, payment.currency,
            f"Booking {booking.reference}: {booking.item.name}", return_url, cancel_url))
        in_write(lambda: _set_order_id(payment.id, order.id))
        return order
    try:
        order = gateway.get_order(payment.provider_ref)
    except PayPalError as exc:
        if exc.transient:
            raise _unavailable(payment, exc) from exc
        reason = f"PayPal order unavailable: {exc.code}"
        in_write(lambda: _close(payment.id, reason))
        return None
    if order.status in REUSABLE_ORDERS:
        return order
    if order.capture is not None:
        record_capture(payment.id, order)
    else:
        in_write(lambda: _close(payment.id, f"PayPal order {order.status.lower()}"))
    return None


def _set_order_id(payment_id: int, order_id: str) -> None:
    payment = db.session.get(Payment, payment_id)
    payment.provider_ref = payment.provider_ref or order_id


def _close(payment_id: int, reason: str) -> None:
    payment = db.session.get(Payment, payment_id)
    if payment.status == P.PENDING.value:
        payment.status, payment.failure_message = P.CANCELED.value, reason


def _calling_paypal(payment: Payment, call: Callable[[], Order]) -> Order:
    try:
        return call()
    except PayPalError as exc:
        raise _refusal(payment, exc) from exc


def _refusal(payment: Payment, exc: PayPalError) -> DomainError:
    """What the customer is told; a refusal fails the payment, an outage leaves it pending to retry."""
    if exc.transient:
        return _unavailable(payment, exc)
    _log_paypal_error(payment, exc, Severity.HIGH)
    in_write(lambda: _refused(payment.id, exc))
    return PaymentUnavailable("PayPal could not take this payment. Please choose another way to pay, "
                              "or ask your concierge.")


def _refused(payment_id: int, exc: PayPalError) -> None:
    payment = db.session.get(Payment, payment_id)
    if payment.status == P.PENDING.value:
        payment.status, payment.failure_code, payment.failure_message = P.FAILED.value, exc.code[:80], str(exc)


def _unavailable(payment: Payment, exc: PayPalError) -> PaymentUnavailable:
    _log_paypal_error(payment, exc, Severity.MEDIUM)
    return PaymentUnavailable("PayPal is not answering right now. Nothing was charged; please try again in a moment.")


def _log_paypal_error(payment: Payment, exc: PayPalError, severity: Severity) -> None:
    record_error(ErrorCategory.PAYMENT, severity, f"PayPal refused a call for payment {payment.id}: {exc}",
                 error_type="PayPalError", booking_id=payment.booking_id, payment_id=payment.id,
                 amount=payment.amount, currency=payment.currency,
                 context={"provider": "paypal", "code": exc.code, "status": exc.status, "debug_id": exc.debug_id})


def capture_order(token: str, order_id: str) -> Payment:
    """Capture the order the customer approved; a second click returns the same payment, charged once."""
    booking = checkout.for_token(token).booking
    payment = db.session.scalar(select(Payment).where(
        Payment.booking_id == booking.id, Payment.provider == Provider.PAYPAL.value,
        Payment.provider_ref == order_id.strip()))
    if payment is None:
        return _settled_paypal_payment(booking)
    if payment.status != P.PENDING.value:
        return payment
    gateway = paypal_gateway.from_app()
    try:
        order = gateway.capture_order(payment.provider_ref, f"{payment.idempotency_key}:capture")
    except PayPalError as exc:
        order = _after_capture_error(gateway, payment, exc)
    payment = record_capture(payment.id, order)
    if payment.status == P.SUCCEEDED.value:
        confirm_if_paid(payment.booking_id, "paid by PayPal")
    return db.session.get(Payment, payment.id)


def _settled_paypal_payment(booking: Booking) -> Payment:
    """After a capture the order id is gone from the row: a repeated capture finds the payment it made."""
    payment = db.session.scalar(select(Payment).where(
        Payment.booking_id == booking.id, Payment.provider == Provider.PAYPAL.value,
        Payment.status.in_([*P.paid(), P.PROCESSING.value])).order_by(Payment.id.desc()).limit(1))
    if payment is None:
        raise NotFound("This PayPal payment is not part of this booking.")
    return payment


def _after_capture_error(gateway: PayPalGateway, payment: Payment, exc: PayPalError) -> Order:
    """An order captured before (a lost response) is read back; a declined source sends the customer back."""
    if exc.code == "ORDER_ALREADY_CAPTURED":
        return _calling_paypal(payment, lambda: gateway.get_order(payment.provider_ref))
    if exc.code in ("INSTRUMENT_DECLINED", "PAYER_ACTION_REQUIRED"):
        _log_paypal_error(payment, exc, Severity.MEDIUM)
        raise PaymentDeclined("PayPal could not use that funding source. Please try PayPal again and choose "
                              "another card or account.") from exc
    if exc.code == "ORDER_NOT_APPROVED":
        raise DomainError("Please approve the payment at PayPal first.") from exc
    raise _refusal(payment, exc) from exc


def record_capture(payment_id: int, order: Order) -> Payment:
    """Apply PayPal's capture to the payment: received, still pending at PayPal, or declined."""
    def change() -> Payment:
        payment = db.session.get(Payment, payment_id)
        locked_booking(payment.booking_id)
        db.session.refresh(payment)
        if order.capture is None or payment.status != P.PENDING.value:
            return payment
        twin = db.session.scalar(select(Payment).where(Payment.provider == Provider.PAYPAL.value,
                                                       Payment.provider_ref == order.capture.id))
        if twin is not None:  # IPN reported the capture first and recorded it: this row is the spare
            payment.status, payment.failure_message = P.CANCELED.value, f"Recorded as payment {twin.id} from IPN."
            return twin
        _apply_capture(payment, order)
        return payment

    return in_write(change)


def _apply_capture(payment: Payment, order: Order) -> None:
    capture = order.capture
    before = {"status": payment.status, "provider_ref": payment.provider_ref}
    payment.provider_ref = capture.id
    if capture.status == "COMPLETED" and _captured_amount_matches(payment, order):
        succeed(payment)
    elif capture.status in ("COMPLETED", "PENDING"):
        payment.status = P.PROCESSING.value
        payment.failure_message = f"Pending at PayPal: {capture.reason}" if capture.reason else None
    else:
        fail(payment, (capture.reason or capture.status).lower(), f"PayPal {capture.status.lower()} the capture.")
    audit.record("payment.paypal_capture", "payment", payment.id, actor_label="paypal", before=before,
                 after={"status": payment.status, "provider_ref": capture.id, "order_id": order.id})


def _captured_amount_matches(payment: Payment, order: Order) -> bool:
    capture = order.capture
    try:
        captured = paypal_gateway.minor_units(capture.value, capture.currency)
    except ValueError:
        captured = None
    matches = capture.currency == payment.currency and captured == payment.amount
    if not matches:
        record_error(ErrorCategory.PAYMENT, Severity.HIGH,
                     f"PayPal captured {capture.value} {capture.currency} for payment {payment.id} "
                     f"(expected {format_money(payment.amount, payment.currency)})",
                     error_type="AmountMismatch", booking_id=payment.booking_id, payment_id=payment.id,
                     amount=payment.amount, currency=payment.currency)
    return matches


# Offline: bank transfer and pay on pick-up.

def choose_offline(token: str, provider: str, now: datetime | None = None) -> Payment:
    """The customer will pay by bank transfer or at pick-up: a pending payment an admin confirms on arrival."""
    if provider not in OFFLINE:
        raise InvalidInput("Please choose bank transfer or payment at pick-up.", "method")
    if provider == Provider.BANK_TRANSFER.value and bank_details() is None:
        raise PaymentUnavailable("Bank transfer is not available at the moment. Please choose another way to pay.")
    booking, now = _payable(token), now or utcnow()
    _hold(booking, _offline_hold_minutes(booking, provider, now), now)
    return in_write(lambda: _offline_payment(booking.id, provider))


def _offline_payment(booking_id: int, provider: str) -> Payment:
    booking = locked_booking(booking_id)
    due = _due_or_refuse(booking)
    keep = None
    for payment in _pending(booking, list(OFFLINE)):
        if keep is None and payment.provider == provider and payment.amount == due:
            keep = payment
        else:
            payment.status, payment.failure_message = P.CANCELED.value, "The customer chose another way to pay."
    return keep or _new_payment(booking, provider, due, "wire" if provider == Provider.BANK_TRANSFER else "pickup")


def _offline_hold_minutes(booking: Booking, provider: str, now: datetime) -> int:
    """The money travels for a while: a transfer holds the item a few days, pick-up holds it until the start."""
    until = booking.starts_at
    if provider == Provider.BANK_TRANSFER.value:
        until = min(until, now + BANK_TRANSFER_HOLD)
    return max(int((until - now).total_seconds() // 60), 1)


def confirm_offline_payment(actor: StaffUser, payment_id: int, reference_note: str) -> Payment:
    """An admin records a bank transfer or pick-up payment as received; the booking is confirmed when paid."""
    require_role(actor, Role.ADMIN)
    note = (reference_note or "").strip()[:240]
    payment, received_now = in_write(lambda: _confirm_offline(actor, payment_id, note))
    if received_now:
        label = "bank transfer received" if payment.provider == Provider.BANK_TRANSFER.value else "paid at pick-up"
        confirm_if_paid(payment.booking_id, label, actor)
    return db.session.get(Payment, payment_id)


def _confirm_offline(actor: StaffUser, payment_id: int, note: str) -> tuple[Payment, bool]:
    payment = db.session.scalar(select(Payment).where(Payment.id == payment_id).with_for_update(key_share=True))
    if payment is None:
        raise NotFound("No such payment.")
    if payment.provider not in OFFLINE:
        raise DomainError("Only bank transfers and payments at pick-up are confirmed by hand.")
    if payment.status in P.paid():
        return payment, False  # a second click changes nothing
    if payment.status != P.PENDING.value:
        raise DomainError(f"This payment is {payment.status} and can no longer be confirmed.")
    if payment.provider == Provider.BANK_TRANSFER.value and not note:
        raise InvalidInput("Enter the bank's reference for the transfer.", "reference_note")
    before = audit.snapshot(payment, ["status", "reference_note"])
    payment.reference_note, payment.confirmed_by_id = note or None, actor.id
    succeed(payment)
    audit.record("payment.confirmed", "payment", payment.id, actor=actor, before=before,
                 after=audit.snapshot(payment, ["status", "reference_note"]))
    return payment, True
