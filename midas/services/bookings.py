"""Bookings: finding them, and (as the lifecycle lands) moving them through their states."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import joinedload

from midas.database import begin_write
from midas.extensions import db
from midas.models import Booking, BookingLine, BookingStatus, Customer, Item, ItemStatus, Role, StaffUser, utcnow
from midas.services import DomainError, NotFound, audit, availability, pricing
from midas.services.auth import require_role
from midas.services.listing import Page, matches, order_by, paginate

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
        stmt = stmt.join(Booking.customer).where(
            matches(filters.q, Booking.reference, Customer.name, Customer.email)
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


# Human references: no 0/O, 1/I/L to misread over the phone. 31^6 ≈ 887 million of them.
REFERENCE_ALPHABET = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"
BOOKABLE_STATUSES = (BookingStatus.QUOTE, BookingStatus.PENDING_PAYMENT, BookingStatus.CONFIRMED)
NO_OVERLAP_CONSTRAINT = "ex_bookings_no_overlap"


def create_booking(
    actor: StaffUser,
    customer_id: int,
    item_id: int,
    starts_at: datetime,
    ends_at: datetime,
    *,
    status: str = BookingStatus.PENDING_PAYMENT.value,
    notes: str = "",
    special_requests: str = "",
    hold_minutes: int = 30,
    now: datetime | None = None,
) -> Booking:
    """Book an item for a customer at the quoted price; BookingConflict, naming what is in the way, if not free."""
    require_role(actor, Role.CONCIERGE)
    if status not in BOOKABLE_STATUSES:
        raise DomainError(f"A new booking starts as a quote, pending payment or confirmed, not {status!r}.")
    hold = (now or utcnow()) + timedelta(minutes=hold_minutes) if status == BookingStatus.PENDING_PAYMENT else None
    begin_write(db.session())  # SQLite: BEGIN IMMEDIATE, so the check and the insert are one serialized step
    try:
        booking = _add_booking(actor, customer_id, item_id, starts_at, ends_at, status=status, notes=notes,
                               special_requests=special_requests, hold_expires_at=hold)
        audit.record("booking.created", "booking", booking.id, actor=actor, after=audit.snapshot(
            booking, ["reference", "status", "item_id", "customer_id", "starts_at", "ends_at", "total_amount",
                      "currency"]))
        db.session.commit()
    except IntegrityError as exc:
        db.session.rollback()
        if NO_OVERLAP_CONSTRAINT not in str(exc.orig):
            raise
        raise lost_race(item_id, starts_at, ends_at) from exc
    except BaseException:
        db.session.rollback()  # releases the write lock (SQLite) or the item's row lock (PostgreSQL) at once
        raise
    return booking


def _add_booking(actor: StaffUser, customer_id: int, item_id: int, starts_at: datetime, ends_at: datetime,
                 **fields) -> Booking:
    item = lock_bookable_item(item_id)
    customer = _bookable_customer(customer_id)
    block_start, block_end = availability.block_range(item, starts_at, ends_at)
    quote = pricing.quote_for_item(item.id, starts_at, ends_at, customer.tier)
    availability.ensure_free(item, block_start, block_end)
    booking = Booking(
        reference=_new_reference(), checkout_token=secrets.token_urlsafe(32), customer=customer, item=item,
        concierge=actor, starts_at=starts_at, ends_at=ends_at, block_starts_at=block_start,
        block_ends_at=block_end, currency=quote.currency, total_amount=quote.total, deposit_amount=quote.deposit,
        lines=lines_from(quote), **fields,
    )
    db.session.add(booking)
    db.session.flush()
    return booking


def lines_from(quote: pricing.Quote) -> list[BookingLine]:
    """A quote's lines as the booking's price lines, in order."""
    return [BookingLine(position=position, kind=line.kind.value, description=line.description[:240],
                        amount=line.amount, refundable=line.refundable)
            for position, line in enumerate(quote.lines)]


def lock_bookable_item(item_id: int) -> Item:
    # PostgreSQL: bookings of one item queue on its row; SQLite renders no FOR UPDATE (BEGIN IMMEDIATE serializes).
    item = db.session.scalar(
        select(Item).where(Item.id == item_id).with_for_update().execution_options(populate_existing=True)
    )
    if item is None:
        raise NotFound("No such item.")
    if item.status != ItemStatus.ACTIVE:
        raise DomainError(f"{item.name} is {item.status} and cannot be booked.")
    return item


def _bookable_customer(customer_id: int) -> Customer:
    customer = db.session.get(Customer, customer_id)
    if customer is None:
        raise NotFound("No such customer.")
    if customer.erased_at is not None:
        raise DomainError("This customer's personal data has been erased; they cannot be booked.")
    return customer


def _new_reference() -> str:
    for _ in range(10):
        reference = "MID-" + "".join(secrets.choice(REFERENCE_ALPHABET) for _ in range(6))
        if db.session.scalar(select(Booking.id).where(Booking.reference == reference)) is None:
            return reference
    raise RuntimeError("No unused booking reference after 10 tries")


def lost_race(item_id: int, starts_at: datetime, ends_at: datetime) -> availability.BookingConflict:
    """The exclusion constraint caught an overlap our check could not see yet: name the winner."""
    item = db.session.get(Item, item_id)
    block_start, block_end = availability.block_range(item, starts_at, ends_at)
    conflicts = availability.conflicts_for(item_id, block_start, block_end)
    message = (availability.conflict_message(item, conflicts) if conflicts
               else f"{item.name} was booked for an overlapping period a moment ago.")
    db.session.rollback()
    return availability.BookingConflict(message)
