"""What a customer sees behind their checkout link."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import joinedload

from midas.extensions import db
from midas.models import Booking, BookingStatus, Item
from midas.services import NotFound

PAID = {BookingStatus.CONFIRMED.value, BookingStatus.IN_PROGRESS.value, BookingStatus.COMPLETED.value}
CLOSED = {BookingStatus.CANCELLED.value, BookingStatus.NO_SHOW.value}


@dataclass
class CheckoutView:
    booking: Booking
    state: str  # "payable", "paid" or "closed"


def for_token(token: str) -> CheckoutView:
    """The booking behind a checkout token, and whether it can still be paid."""
    booking = db.session.scalar(
        select(Booking).where(Booking.checkout_token == token)
        .options(joinedload(Booking.item).joinedload(Item.location), joinedload(Booking.customer))
    ) if 16 <= len(token) <= 64 else None
    if booking is None:
        raise NotFound("This payment link is not valid. Please ask your concierge for a new one.")
    state = "paid" if booking.status in PAID else "closed" if booking.status in CLOSED else "payable"
    return CheckoutView(booking=booking, state=state)
