"""Messages to customers and staff: what each business event says, and the outbox as staff see it.

Writers (`booking_confirmed`, `payment_received` …) stage rows in the caller's transaction and never
commit; `queue_reminders`, `send_checkout_link` and `resend` own theirs.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

from flask import current_app, has_request_context, url_for
from sqlalchemy import func, select
from sqlalchemy.orm import joinedload, selectinload

from midas.database import begin_write
from midas.extensions import db
from midas.formatting import local_time
from midas.models import (
    Booking,
    BookingStatus,
    Channel,
    Customer,
    Dispute,
    ErrorGroup,
    Item,
    Notification,
    NotificationStatus,
    Payment,
    Refund,
    Role,
    StaffUser,
    utcnow,
)
from midas.money import format_money
from midas.services import DomainError, InvalidInput, NotFound, audit, outbox
from midas.services.auth import require_role
from midas.services.listing import Page, matches, paginate
from midas.services.outbox import Message

EMAIL, SMS, SLACK = Channel.EMAIL.value, Channel.SMS.value, Channel.SLACK.value
S = NotificationStatus
HOLD_WARNING = timedelta(minutes=10)  # "your hold ends soon" this long before it does
PICKUP_NOTICE = timedelta(hours=24)
RETURN_MORNING_HOUR, RETURN_EVENING_HOUR = 8, 18  # local hours for the return-day reminder
WHEN, SHORT = "%A %d %B %Y, %H:%M", "%a %d %b, %H:%M"
PAYABLE = {BookingStatus.QUOTE.value, BookingStatus.PENDING_PAYMENT.value}


# What a booking message knows.

def booking_context(booking: Booking, with_checkout: bool = False) -> dict:
    """The facts a booking message shows, as display-ready strings in the location's time zone."""
    item, customer, location = booking.item, booking.customer, booking.item.location
    context = {
        "reference": booking.reference, "customer": customer.name, "first_name": customer.name.split()[0],
        "item": item.name, "category": item.category, "location": location.name, "city": location.city,
        "starts": local_time(booking.starts_at, location.timezone, WHEN),
        "ends": local_time(booking.ends_at, location.timezone, WHEN),
        "starts_short": local_time(booking.starts_at, location.timezone, SHORT),
        "ends_short": local_time(booking.ends_at, location.timezone, SHORT),
        "starts_at": booking.starts_at.isoformat(), "ends_at": booking.ends_at.isoformat(),
        "total": format_money(booking.total_amount, booking.currency),
        "deposit": format_money(booking.deposit_amount, booking.currency) if booking.deposit_amount else None,
        "lines": [{"description": line.description, "amount": format_money(line.amount, booking.currency)}
                  for line in booking.lines],
        "concierge": booking.concierge.name if booking.concierge else None,
    }
    if with_checkout:
        context["checkout_url"] = external_url("checkout.show", token=booking.checkout_token)
        if booking.hold_expires_at:
            context["hold_expires"] = local_time(booking.hold_expires_at, location.timezone, WHEN)
            context["hold_expires_time"] = local_time(booking.hold_expires_at, location.timezone, "%H:%M")
    return context


def external_url(endpoint: str, **values) -> str:
    """An absolute link for a message: from the request when there is one, else PUBLIC_URL."""
    if has_request_context():
        return url_for(endpoint, _external=True, **values)
    base = urlsplit(current_app.config.get("PUBLIC_URL") or "http://127.0.0.1:5000")
    adapter = current_app.url_map.bind(base.netloc, script_name=base.path or "/", url_scheme=base.scheme or "https")
    return adapter.build(endpoint, values, force_external=True)


def _to_customer(booking: Booking, template: str, channels: tuple[str, ...], context: dict,
                 key: str | None = None, suffix: str = "") -> list[int]:
    """Stage the template for the booking's customer on each channel they can be reached on."""
    customer, staged = booking.customer, []
    for channel in channels:
        recipient = customer.email if channel == EMAIL else customer.phone
        if not recipient:
            continue
        dedupe_key = f"{key or 'booking:' + booking.reference}:{template}:{channel}{suffix}"
        new_id = outbox.stage(Message(channel, template, recipient, dedupe_key, context, booking.id, customer.id),
                              refusal=outbox.consent_refusal(channel, template, customer))
        if new_id is not None:
            staged.append(new_id)
    return staged


# Booking lifecycle (called by services.bookings and services.booking_states inside their transaction).

def booking_created(booking: Booking) -> None:
    if booking.status == BookingStatus.PENDING_PAYMENT.value:
        booking_held(booking)
    elif booking.status == BookingStatus.CONFIRMED.value:
        booking_confirmed(booking)


def booking_held(booking: Booking) -> None:
    """Held for payment: the checkout link, once per hold."""
    hold = f":hold-{int(booking.hold_expires_at.timestamp())}" if booking.hold_expires_at else ""
    _to_customer(booking, "checkout_link", (EMAIL,), booking_context(booking, with_checkout=True), suffix=hold)


def booking_confirmed(booking: Booking) -> None:
    _to_customer(booking, "booking_confirmation", (EMAIL, SMS), booking_context(booking))


def booking_cancelled(booking: Booking, previous_status: str) -> None:
    """Tell the customer, unless the booking was a quote they never heard about."""
    heard = db.session.scalar(select(func.count()).select_from(Notification).where(
        Notification.booking_id == booking.id, Notification.status != S.CANCELLED.value))
    if previous_status != BookingStatus.QUOTE.value or heard:
        context = booking_context(booking) | {"reason": booking.cancel_reason}
        _to_customer(booking, "booking_cancellation", (EMAIL,), context)


def booking_completed(booking: Booking) -> None:
    _to_customer(booking, "thank_you", (EMAIL,), booking_context(booking))


# Money (for the payments, refunds and webhook services to call inside their transaction).

def payment_received(payment: Payment) -> None:
    """The receipt for a payment that succeeded."""
    context = booking_context(payment.booking) | _payment_facts(payment)
    _to_customer(payment.booking, "payment_receipt", (EMAIL,), context, key=f"payment:{payment.id}")


def payment_failed(payment: Payment) -> None:
    """A gentle recovery note with the checkout link, once per payment attempt."""
    context = booking_context(payment.booking, with_checkout=True) | _payment_facts(payment)
    _to_customer(payment.booking, "payment_failed", (EMAIL,), context, key=f"payment:{payment.id}")


def balance_due(payment: Payment) -> None:
    """A balance left to pay after the return (a late fee): its amount and the checkout link, once per payment."""
    context = booking_context(payment.booking, with_checkout=True) | _payment_facts(payment)
    _to_customer(payment.booking, "balance_due", (EMAIL, SMS), context, key=f"payment:{payment.id}")


def refund_succeeded(refund: Refund) -> None:
    """The refund confirmation: by email, and by SMS too when the customer has a phone and agreed to SMS."""
    context = booking_context(refund.booking) | {
        "amount": format_money(refund.amount, refund.currency), "method": _method(refund.payment)}
    _to_customer(refund.booking, "refund_processed", (EMAIL, SMS), context, key=f"refund:{refund.id}")


def dispute_opened(dispute: Dispute) -> None:
    """Alert the admins (ALERT_EMAILS, else every admin and owner) and Slack when it is configured."""
    context = {
        "reference": dispute.booking.reference if dispute.booking else "no booking",
        "amount": format_money(dispute.amount, dispute.currency), "reason": dispute.reason.replace("_", " "),
        "status": dispute.status.replace("_", " "), "provider": dispute.provider,
        "provider_ref": dispute.provider_ref, "url": external_url("payments.index"),
        "evidence_due": local_time(dispute.evidence_due_by, None, WHEN) if dispute.evidence_due_by else None,
    }
    _to_staff("dispute_alert", f"dispute:{dispute.id}", context, dispute.booking_id)


def error_alert(group: ErrorGroup, occurrence: str = "") -> None:
    """Alert the admins about an error group; `occurrence` tells a new alert for the same group apart."""
    context = {"category": group.category, "severity": group.severity, "error_type": group.error_type,
               "message": group.message[:300], "occurrences": group.occurrences, "url": external_url("errors.index"),
               "last_seen": local_time(group.last_seen_at, None, WHEN) if group.last_seen_at else None}
    key = f"alert:{group.fingerprint[:16]}{':' + occurrence if occurrence else ''}"
    _to_staff("error_alert", key, context)


def alert_recipients() -> list[str]:
    configured = current_app.config.get("ALERT_EMAILS") or []
    if configured:
        return list(configured)
    admins = select(StaffUser.email).where(StaffUser.role.in_([Role.ADMIN.value, Role.OWNER.value]),
                                           StaffUser.is_active_account.is_(True)).order_by(StaffUser.email)
    return list(db.session.scalars(admins))


def _to_staff(template: str, key: str, context: dict, booking_id: int | None = None) -> None:
    for address in alert_recipients():
        outbox.stage(Message(EMAIL, template, address, f"{key}:{EMAIL}:{address}", context, booking_id))
    if current_app.config.get("SLACK_WEBHOOK_URL"):
        outbox.stage(Message(SLACK, template, "slack", f"{key}:{SLACK}", context, booking_id))


def _payment_facts(payment: Payment) -> dict:
    return {"amount": format_money(payment.amount, payment.currency), "method": _method(payment),
            "paid_at": local_time(payment.succeeded_at, payment.booking.item.location.timezone, WHEN)
            if payment.succeeded_at else None,
            "failure": payment.failure_message}


def _method(payment: Payment | None) -> str:
    if payment is None:
        return "the original payment method"
    return (payment.method or payment.provider).replace("_", " ")


# Time-based messages (a periodic job).

def queue_reminders(now: datetime | None = None) -> int:
    """Write the messages that are now due: hold ending soon, pick-up within a day, return day; returns how many."""
    now = now or utcnow()
    begin_write(db.session)
    try:
        staged = _hold_warnings(now) + _pickup_reminders(now) + _return_reminders(now)
        db.session.commit()
    except BaseException:
        db.session.rollback()
        raise
    return len(staged)


def _bookings(status: BookingStatus, *conditions) -> list[Booking]:
    stmt = (select(Booking).where(Booking.status == status.value, *conditions)
            .options(joinedload(Booking.customer), joinedload(Booking.item).joinedload(Item.location),
                     selectinload(Booking.lines)))
    return list(db.session.scalars(stmt).unique())


def _hold_warnings(now: datetime) -> list[int]:
    staged = []
    for booking in _bookings(BookingStatus.PENDING_PAYMENT, Booking.hold_expires_at > now,
                             Booking.hold_expires_at <= now + HOLD_WARNING):
        hold = f":hold-{int(booking.hold_expires_at.timestamp())}"
        staged += _to_customer(booking, "hold_expiring", (EMAIL,), booking_context(booking, True), suffix=hold)
    return staged


def _pickup_reminders(now: datetime) -> list[int]:
    staged = []
    # A booking made within a day of its start has just had its confirmation: no reminder on top.
    window = (Booking.starts_at > now, Booking.starts_at <= now + PICKUP_NOTICE)
    for booking in _bookings(BookingStatus.CONFIRMED, *window):
        if booking.created_at <= booking.starts_at - PICKUP_NOTICE:
            context = booking_context(booking)
            staged += _to_customer(booking, "pickup_reminder", (EMAIL, SMS), context)
            staged += _to_concierge(booking, "Pick-up", context["starts"])
    return staged


def _return_reminders(now: datetime) -> list[int]:
    staged = []
    window = (Booking.ends_at > now, Booking.ends_at <= now + timedelta(days=2))
    for booking in _bookings(BookingStatus.IN_PROGRESS, *window):
        if return_reminder_due(booking.ends_at, booking.item.location.timezone) <= now:
            context = booking_context(booking)
            staged += _to_customer(booking, "return_reminder", (EMAIL, SMS), context)
            staged += _to_concierge(booking, "Return", context["ends"])
    return staged


def _to_concierge(booking: Booking, moment: str, when: str) -> list[int]:
    """The assigned concierge's own reminder by email, once per booking and moment (none when unassigned)."""
    concierge = booking.concierge
    if concierge is None or not concierge.is_active:
        return []
    context = booking_context(booking) | {"moment": moment, "when": when,
                                          "url": external_url("bookings.show", reference=booking.reference)}
    key = f"booking:{booking.reference}:concierge_reminder:{moment.lower()}:{concierge.id}"
    new_id = outbox.stage(Message(EMAIL, "concierge_reminder", concierge.email, key, context, booking.id))
    return [new_id] if new_id is not None else []


def return_reminder_due(ends_at: datetime, timezone: str) -> datetime:
    """08:00 local on the return day; for a return before 10:00, 18:00 the evening before."""
    local_end = ends_at.astimezone(ZoneInfo(timezone))
    morning = local_end.replace(hour=RETURN_MORNING_HOUR, minute=0, second=0, microsecond=0)
    if local_end - morning >= timedelta(hours=2):
        return morning
    return (morning - timedelta(days=1)).replace(hour=RETURN_EVENING_HOUR)


# Staff actions.

def send_checkout_link(actor: StaffUser, reference: str, channel: str, now: datetime | None = None) -> Notification:
    """Send (again) the booking's checkout link by email or SMS; a double click in the same minute sends once.

    For a completed booking with a late-fee balance still open, the link goes with the balance message.
    """
    require_role(actor, Role.CONCIERGE)
    if channel not in (EMAIL, SMS):
        raise InvalidInput("Send the checkout link by email or SMS.", "channel")
    now = now or utcnow()
    begin_write(db.session)
    try:
        booking = _payable(reference)
        key = _staff_checkout_link(actor, booking, channel, now)
        db.session.commit()
    except BaseException:
        db.session.rollback()
        raise
    return db.session.scalar(select(Notification).where(Notification.dedupe_key == key))


def _payable(reference: str) -> Booking:
    booking = db.session.scalar(select(Booking).where(Booking.reference == reference.upper()))
    if booking is None:
        raise NotFound(f"No booking with reference {reference}.")
    if booking.status not in PAYABLE and _open_balance(booking) is None:
        raise DomainError(f"Booking {booking.reference} is {booking.status.replace('_', ' ')}: "
                          "there is nothing left to pay through its checkout link.")
    return booking


def _open_balance(booking: Booking) -> Payment | None:
    """A completed booking's late-fee balance the customer can still pay (see services.late_fees)."""
    if booking.status != BookingStatus.COMPLETED.value:
        return None
    from midas.services import late_fees  # late_fees stages its messages here: keep the cycle lazy

    return late_fees.open_balance(booking.id)


def _staff_checkout_link(actor: StaffUser, booking: Booking, channel: str, now: datetime) -> str:
    customer = booking.customer
    recipient = customer.email if channel == EMAIL else customer.phone
    if not recipient:
        raise InvalidInput(f"{customer.name} has no mobile number on file.", "channel")
    balance = _open_balance(booking)
    template = "balance_due" if balance is not None else "checkout_link"
    refusal = outbox.consent_refusal(channel, template, customer)
    if refusal:
        raise DomainError(refusal)
    key = f"booking:{booking.reference}:{template}:{channel}:staff-{now:%Y%m%d%H%M}"
    context = booking_context(booking, with_checkout=True) | (_payment_facts(balance) if balance else {})
    message = Message(channel, template, recipient, key, context, booking.id, customer.id)
    if outbox.stage(message) is not None:
        audit.record("booking.checkout_link_sent", "booking", booking.id, actor=actor,
                     after={"channel": channel, "recipient": recipient})
    return key


def resend(actor: StaffUser, notification_id: int) -> Notification:
    """A failed message goes back to the outbox for a fresh round of attempts; a sent one is sent again as a copy."""
    require_role(actor, Role.ADMIN)
    begin_write(db.session)
    try:
        original = db.session.get(Notification, notification_id, with_for_update=True)
        if original is None:
            raise NotFound("No such message.")
        before = original.status
        message = _resend(original)
        audit.record("notification.resent", "notification", original.id, actor=actor, before={"status": before},
                     after={"status": message.status, "sent_as": message.id})
        db.session.commit()
    except BaseException:
        db.session.rollback()
        raise
    return message


def _resend(original: Notification) -> Notification:
    if original.status == S.FAILED.value:
        original.status, original.attempts = S.PENDING.value, 0
        outbox.dispatch_after_commit(original.id, _queue(original))
        return original
    if original.status != S.SENT.value:
        raise DomainError(f"This message is {original.status}: only failed or sent messages can be sent again.")
    copy = Notification(
        dedupe_key=f"{original.dedupe_key}:again-{utcnow():%Y%m%d%H%M}"[-255:], channel=original.channel,
        template=original.template, recipient=original.recipient, subject=original.subject,
        context=outbox.strip_meta(original.context or {}), booking_id=original.booking_id,
        customer_id=original.customer_id,
    )
    if db.session.scalar(select(Notification.id).where(Notification.dedupe_key == copy.dedupe_key)):
        raise DomainError("This message was sent again a moment ago.")
    db.session.add(copy)
    db.session.flush()
    outbox.dispatch_after_commit(copy.id, _queue(copy))
    return copy


def _queue(notification: Notification) -> str:
    kind = outbox.KINDS.get(notification.template)
    return kind.queue if kind else "high"


# The Communications page.

PERIODS = {"24h": timedelta(hours=24), "7d": timedelta(days=7), "30d": timedelta(days=30)}


@dataclass
class MessageFilters:
    q: str = ""
    channel: str = ""
    status: str = ""
    template: str = ""
    period: str = ""
    customer_id: int | None = None
    page: int = 1


def list_notifications(filters: MessageFilters, now: datetime | None = None) -> Page:
    """Messages matching the filters, newest first."""
    stmt = select(Notification)
    if filters.q:
        stmt = stmt.where(matches(filters.q, Notification.recipient, Notification.template, Notification.dedupe_key,
                                  Notification.subject))
    if filters.channel in Channel.values():
        stmt = stmt.where(Notification.channel == filters.channel)
    if filters.status in S.values():
        stmt = stmt.where(Notification.status == filters.status)
    if filters.template in outbox.KINDS:
        stmt = stmt.where(Notification.template == filters.template)
    if filters.period in PERIODS:
        stmt = stmt.where(Notification.created_at >= (now or utcnow()) - PERIODS[filters.period])
    if filters.customer_id:
        stmt = stmt.where(Notification.customer_id == filters.customer_id)
    return paginate(stmt.order_by(Notification.created_at.desc(), Notification.id.desc()), filters.page)


@dataclass
class Kpis:
    sent: int
    delivery_rate: float | None  # sent / (sent + failed), None when nothing settled
    failovers: int
    failures: int
    waiting: int


def kpis(now: datetime | None = None) -> Kpis:
    """The last 24 hours: sent, delivery rate, failovers (email sent by a fallback provider), failures."""
    since = (now or utcnow()) - timedelta(hours=24)
    counts = dict(db.session.execute(
        select(Notification.status, func.count()).where(Notification.created_at >= since).group_by(Notification.status)
    ).all())
    primary = (current_app.config.get("EMAIL_PROVIDERS") or ["local"])[0]
    failovers = db.session.scalar(select(func.count()).select_from(Notification).where(
        Notification.created_at >= since, Notification.status == S.SENT.value, Notification.channel == EMAIL,
        Notification.provider.is_not(None), Notification.provider.not_in([primary, "local"]))) or 0
    sent, failed = counts.get(S.SENT.value, 0), counts.get(S.FAILED.value, 0)
    return Kpis(sent=sent, delivery_rate=sent / (sent + failed) if sent + failed else None, failovers=failovers,
                failures=failed, waiting=counts.get(S.PENDING.value, 0) + counts.get(S.SENDING.value, 0))


def get_notification(notification_id: int) -> Notification:
    notification = db.session.get(Notification, notification_id)
    if notification is None:
        raise NotFound("No such message.")
    return notification


def preview(notification: Notification) -> tuple[outbox.Rendered | None, str | None]:
    """The rendered message, or why it cannot be rendered (an erased customer's message has no content)."""
    try:
        return outbox.render(notification), None
    except Exception as exc:
        return None, f"{type(exc).__name__}: {exc}"


def customer_name(customer_id: int | None) -> str | None:
    customer = db.session.get(Customer, customer_id) if customer_id else None
    return customer.name if customer else None
