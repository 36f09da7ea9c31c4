"""Changing a booking after it was made: new dates or item (re-checked and re-priced), another concierge,
loyalty points redeemed as a discount line (kept when the booking is re-priced)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select

from midas.database import in_write
from midas.extensions import db
from midas.models import Booking, BookingLine, BookingStatus, Item, LineKind, Role, StaffUser
from midas.services import DomainError, InvalidInput, audit, availability, loyalty, payment_events, pricing
from midas.services.auth import require_role
from midas.services.bookings import holding_item, lines_from, lock_bookable_item
from midas.timeutil import localize

CHANGEABLE = {BookingStatus.QUOTE.value, BookingStatus.PENDING_PAYMENT.value, BookingStatus.CONFIRMED.value}
CHANGE_FIELDS = ["item_id", "starts_at", "ends_at", "total_amount", "deposit_amount"]


REDEEMABLE = {BookingStatus.QUOTE.value, BookingStatus.PENDING_PAYMENT.value}


@dataclass
class ChangePreview:
    quote: pricing.Quote
    old_total: int
    difference: int  # positive: the customer owes more; negative: money to give back
    adjustments: int = 0  # discounts already given (redeemed points), carried over to the new price

    @property
    def new_total(self) -> int:
        return self.quote.total + self.adjustments


def preview_change(reference: str, item_id: int, local_start: datetime, local_end: datetime) -> ChangePreview:
    """What the booking would cost with these dates and item, and the difference (raises if not free).

    The dates are as staff type them: wall-clock times at the booking's venue.
    """
    booking = _changeable(reference)
    starts_at, ends_at = venue_period(booking, local_start, local_end)
    item = db.session.get(Item, item_id)
    if item is None or item.location_id != booking.item.location_id:
        raise InvalidInput("Choose an item at the same location.", "item_id")
    availability.ensure_free(item, *availability.block_range(item, starts_at, ends_at), exclude_booking_id=booking.id)
    quote = pricing.quote_for_item(item.id, starts_at, ends_at, booking.customer.tier)
    kept = sum(line.amount for line in _adjustments(booking))
    return ChangePreview(quote=quote, old_total=booking.total_amount, adjustments=kept,
                         difference=quote.total + kept - booking.total_amount)


def change_booking(actor: StaffUser, reference: str, item_id: int, local_start: datetime,
                   local_end: datetime) -> Booking:
    """Move a booking to new dates (venue wall-clock times) and/or another item there, at the new price; audited."""
    require_role(actor, Role.CONCIERGE)
    starts_at, ends_at = venue_period(_find(reference), local_start, local_end)
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
    kept = [(line.kind, line.description, line.amount, line.refundable) for line in _adjustments(booking)]
    total = quote.total + sum(amount for _, _, amount, _ in kept)
    if total < 0:
        raise InvalidInput("The points already redeemed are worth more than the new price.", "item_id")
    before = audit.snapshot(booking, CHANGE_FIELDS)
    booking.lines.clear()
    db.session.flush()  # old lines go before the new ones take their positions
    booking.item, booking.starts_at, booking.ends_at = item, starts_at, ends_at
    booking.block_starts_at, booking.block_ends_at = block_start, block_end
    booking.lines.extend(lines_from(quote))
    booking.lines.extend(BookingLine(position=len(quote.lines) + n, kind=kind, description=text, amount=amount,
                                     refundable=refundable) for n, (kind, text, amount, refundable) in enumerate(kept))
    booking.total_amount, booking.deposit_amount = total, quote.deposit
    audit.record("booking.changed", "booking", booking.id, actor=actor, before=before,
                 after={**audit.snapshot(booking, CHANGE_FIELDS), "difference": quote.total - before["total_amount"]})
    return booking


def _adjustments(booking: Booking) -> list[BookingLine]:
    """Lines a re-pricing keeps: discounts given by hand, such as redeemed loyalty points."""
    return [line for line in booking.lines if line.kind == LineKind.ADJUSTMENT.value]


def redeemable_points(booking: Booking) -> int:
    """The most of the customer's points this booking can take: all of them, unless they are worth more."""
    covered = booking.total_amount * loyalty.POINTS_PER_UNIT // loyalty.earning_unit(booking.currency)
    return max(min(booking.customer.loyalty_points, covered), 0)


def redeem_points(actor: StaffUser, reference: str, points: int) -> Booking:
    """Take the customer's loyalty points off a quote (or a held booking) as its own discount line; audited."""
    require_role(actor, Role.CONCIERGE)

    def change() -> Booking:
        booking = db.session.scalar(select(Booking).where(Booking.reference == reference.upper()).with_for_update())
        if booking is None:
            raise InvalidInput(f"No booking with reference {reference}.")
        if booking.status not in REDEEMABLE or payment_events.amount_paid(booking.id):
            raise DomainError(f"Points are redeemed before anything is paid, on a quote or a booking awaiting "
                              f"payment; {booking.reference} is {booking.status.replace('_', ' ')}.")
        discount = loyalty.spend_points(actor, booking.customer_id, points, booking.id)
        booking.lines.append(BookingLine(position=len(booking.lines), kind=LineKind.ADJUSTMENT.value,
                                         description=f"Loyalty: {points:,} points redeemed", amount=-discount))
        booking.total_amount -= discount
        return booking

    return in_write(change)


def venue_period(booking: Booking, local_start: datetime, local_end: datetime) -> tuple[datetime, datetime]:
    """Wall-clock times at the booking's venue (as typed in a form) as aware UTC."""
    tz = booking.item.location.timezone
    return localize(local_start.replace(tzinfo=None), tz), localize(local_end.replace(tzinfo=None), tz)


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
