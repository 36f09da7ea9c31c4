"""Bookings: finding them, and (as the lifecycle lands) moving them through their states."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import or_, select
from sqlalchemy.orm import joinedload

from midas.extensions import db
from midas.models import Booking, BookingStatus, Customer, Item
from midas.services import NotFound
from midas.services.listing import Page, like, order_by, paginate

SORTS = {"starts_at": Booking.starts_at, "created_at": Booking.created_at, "reference": Booking.reference,
         "total": Booking.total_amount, "status": Booking.status}


@dataclass
class BookingFilters:
    q: str = ""
    status: str = ""
    item_id: int | None = None
    customer_id: int | None = None
    sort: str = "-starts_at"
    page: int = 1


def list_bookings(filters: BookingFilters) -> tuple[Page, str]:
    """Bookings matching the filters, newest start first by default, with customer and item loaded."""
    stmt = select(Booking).options(joinedload(Booking.customer), joinedload(Booking.item).joinedload(Item.location))
    if filters.q:
        pattern = like(filters.q)
        stmt = stmt.join(Booking.customer).where(
            or_(Booking.reference.ilike(pattern), Customer.name.ilike(pattern), Customer.email.ilike(pattern))
        )
    if filters.status in BookingStatus.values():
        stmt = stmt.where(Booking.status == filters.status)
    if filters.item_id:
        stmt = stmt.where(Booking.item_id == filters.item_id)
    if filters.customer_id:
        stmt = stmt.where(Booking.customer_id == filters.customer_id)
    stmt, sort = order_by(stmt, filters.sort, SORTS, "-starts_at", Booking.id)
    return paginate(stmt, filters.page), sort


def get_booking(reference: str) -> Booking:
    booking = db.session.scalar(
        select(Booking).where(Booking.reference == reference.upper())
        .options(joinedload(Booking.customer), joinedload(Booking.item).joinedload(Item.location))
    )
    if booking is None:
        raise NotFound(f"No booking with reference {reference}.")
    return booking
