"""Changing a booking after it was made: new dates or item (re-checked and re-priced), another concierge."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select

from midas.extensions import db
from midas.models import Booking, BookingStatus, Item, Role, StaffUser
from midas.services import DomainError, InvalidInput, audit, availability, pricing
from midas.services.auth import require_role
from midas.services.bookings import holding_item, lines_from, lock_bookable_item

CHANGEABLE = {BookingStatus.QUOTE.value, BookingStatus.PENDING_PAYMENT.value, BookingStatus.CONFIRMED.value}
CHANGE_FIELDS = ["item_id", "starts_at", "ends_at", "total_amount", "deposit_amount"]


@dataclass
class ChangePreview:
    quote: pricing.Quote
    old_total: int
    difference: int  # positive: the customer owes more; negative: money to give back


def preview_change(reference: str, item_id: int, starts_at: datetime, ends_at: datetime) -> ChangePreview:
    """What the booking would cost with these dates and item, and the difference (raises if not free)."""
    booking = _changeable(reference)
    item = db.session.get(Item, item_id)
    if item is None or item.location_id != booking.item.location_id:
        raise InvalidInput("Choose an item at the same location.", "item_id")
    availability.ensure_free(item, *availability.block_range(item, starts_at, ends_at), exclude_booking_id=booking.id)
    quote = pricing.quote_for_item(item.id, starts_at, ends_at, booking.customer.tier)
    return ChangePreview(quote=quote, old_total=booking.total_amount, difference=quote.total - booking.total_amount)


def change_booking(actor: StaffUser, reference: str, item_id: int, starts_at: datetime, ends_at: datetime) -> Booking:
    """Move a booking to new dates and/or another item at the same location, at the new price; audited."""
    require_role(actor, Role.CONCIERGE)
    return holding_item(item_id, starts_at, ends_at,
                        lambda: _apply_change(actor, reference, item_id, starts_at, ends_at))


def _apply_change(actor: StaffUser, reference: str, item_id: int, starts_at: datetime, ends_at: datetime) -> Booking:
    item = lock_bookable_item(item_id)
    booking = _changeable(reference)
    if item.location_id != booking.item.location_id:
        raise InvalidInput("Choose an item at the same location.", "item_id")
    block_start, block_end = availability.block_range(item, starts_at, ends_at)
    availability.ensure_free(item, block_start, block_end, exclude_booking_id=booking.id)
    quote = pricing.quote_for_item(item.id, starts_at, ends_at, booking.customer.tier)
    before = audit.snapshot(booking, CHANGE_FIELDS)
    booking.lines.clear()
    db.session.flush()  # old lines go before the new ones take their positions
    booking.item, booking.starts_at, booking.ends_at = item, starts_at, ends_at
    booking.block_starts_at, booking.block_ends_at = block_start, block_end
    booking.lines.extend(lines_from(quote))
    booking.total_amount, booking.deposit_amount = quote.total, quote.deposit
    audit.record("booking.changed", "booking", booking.id, actor=actor, before=before,
                 after={**audit.snapshot(booking, CHANGE_FIELDS), "difference": quote.total - before["total_amount"]})
    return booking


def reassign(actor: StaffUser, reference: str, concierge_id: int) -> Booking:
    """Hand the booking to another active member of staff; audited."""
    require_role(actor, Role.CONCIERGE)
    booking = _find(reference)
    concierge = db.session.get(StaffUser, concierge_id)
    if concierge is None or not concierge.is_active:
        raise InvalidInput("Choose an active member of staff.", "concierge_id")
    before = {"concierge": booking.concierge.email if booking.concierge else None}
    booking.concierge = concierge
    audit.record("booking.reassigned", "booking", booking.id, actor=actor, before=before,
                 after={"concierge": concierge.email})
    db.session.commit()
    return booking


def _find(reference: str) -> Booking:
    booking = db.session.scalar(select(Booking).where(Booking.reference == reference.upper()))
    if booking is None:
        raise InvalidInput(f"No booking with reference {reference}.")
    return booking


def _changeable(reference: str) -> Booking:
    booking = _find(reference)
    if booking.status not in CHANGEABLE:
        raise DomainError(f"Booking {booking.reference} is {booking.status.replace('_', ' ')}: its dates and item "
                          "can no longer change.")
    return booking
