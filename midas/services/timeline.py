"""A booking's story, oldest first: its transitions, money movements, messages and provider events."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select

from midas.extensions import db
from midas.models import AuditEntry, Booking, Notification, Refund, WebhookEvent
from midas.money import format_money


@dataclass
class Entry:
    at: datetime
    kind: str  # "change", "payment", "refund", "message", "event"
    title: str
    detail: str = ""
    status: str | None = None


def for_booking(booking: Booking) -> list[Entry]:
    """Everything recorded about the booking, merged in time order."""
    entries = [*_changes(booking), *_payments(booking), *_refunds(booking), *_messages(booking), *_events(booking)]
    return sorted(entries, key=lambda entry: entry.at)


CHANGE_TITLES = {
    "booking.created": "Booking created", "booking.pending_payment": "Held for payment",
    "booking.confirmed": "Confirmed", "booking.in_progress": "Handed over", "booking.completed": "Returned",
    "booking.cancelled": "Cancelled", "booking.no_show": "No-show", "booking.quote": "Hold released",
    "booking.late_fee_captured": "Late fee captured from the deposit hold",
    "booking.late_fee_due": "Late fee balance asked of the customer",
}


def _changes(booking: Booking) -> list[Entry]:
    rows = db.session.scalars(select(AuditEntry).where(AuditEntry.entity_type == "booking",
                                                       AuditEntry.entity_id == str(booking.id)))
    return [Entry(row.at, "change", CHANGE_TITLES.get(row.action, row.action.split(".")[-1].replace("_", " ")),
                  _facts(row, booking.currency)) for row in rows]


def _facts(row: AuditEntry, currency: str) -> str:
    """Who did it, and the one or two facts staff care about (the reason, a late fee)."""
    after = row.after or {}
    facts = [f"by {row.actor_label}"]
    if after.get("reason"):
        facts.append(after["reason"])
    if after.get("late_fee") not in (None, 0, "0"):
        facts.append(f"late fee {format_money(int(after['late_fee']), currency)}")
    return " — ".join(facts)


def _payments(booking: Booking) -> list[Entry]:
    return [Entry(p.created_at, "payment", f"{p.kind.replace('_', ' ').capitalize()} via "
                  f"{p.provider.replace('_', ' ')}: {format_money(p.amount, p.currency)}",
                  p.failure_message or _captured(p), p.status) for p in booking.payments]


def _captured(payment) -> str:
    """A hold captured in part says how much was taken (the rest went back to the card)."""
    if payment.kind == "deposit" and 0 < payment.amount_captured < payment.amount:
        return f"{format_money(payment.amount_captured, payment.currency)} captured, the rest released"
    return ""


REFUND_STEPS = {
    "refund.requested": "requested", "refund.decided": "decided on cancellation", "refund.approved": "approved",
    "refund.rejected": "rejected", "refund.processing": "sent, processing", "refund.succeeded": "succeeded",
    "refund.failed": "failed", "refund.canceled": "canceled", "refund.retried": "sent again",
    "refund.recorded": "made at the provider",
}


def _refunds(booking: Booking) -> list[Entry]:
    """Each refund's story step by step (request, decision, sending, outcome) from its audit trail."""
    refunds = {str(r.id): r for r in db.session.scalars(select(Refund).where(Refund.booking_id == booking.id))}
    if not refunds:
        return []
    rows = list(db.session.scalars(select(AuditEntry).where(AuditEntry.entity_type == "refund",
                                                            AuditEntry.entity_id.in_(list(refunds)))))
    entries = [_refund_step(refunds[row.entity_id], row) for row in rows]
    told = {row.entity_id for row in rows}  # refunds from before audits (demo data) still show once
    return entries + [Entry(r.created_at, "refund", f"Refund #{r.id} {format_money(r.amount, r.currency)}",
                            r.reason, r.status) for key, r in refunds.items() if key not in told]


def _refund_step(refund: Refund, row: AuditEntry) -> Entry:
    after = row.after or {}
    step = REFUND_STEPS.get(row.action, row.action.split(".")[-1].replace("_", " "))
    facts = [f"by {row.actor_label}"] + [str(after[key]) for key in ("reason", "rule") if after.get(key)]
    if row.action in ("refund.requested", "refund.decided"):
        facts.append(refund.reason)
    return Entry(row.at, "refund", f"Refund #{refund.id} {format_money(refund.amount, refund.currency)} {step}",
                 " — ".join(facts), after.get("status") if row.action != "refund.retried" else None)


def _messages(booking: Booking) -> list[Entry]:
    rows = db.session.scalars(select(Notification).where(Notification.booking_id == booking.id))
    return [Entry(n.created_at, "message", f"{n.channel.upper() if n.channel == 'sms' else n.channel.capitalize()}: "
                  f"{n.template.replace('_', ' ')}", f"to {n.recipient}", n.status) for n in rows]


def _events(booking: Booking) -> list[Entry]:
    rows = db.session.scalars(select(WebhookEvent).where(WebhookEvent.booking_id == booking.id))
    return [Entry(e.received_at, "event", f"{e.provider.capitalize()} event {e.type}", e.event_id, e.status)
            for e in rows]
