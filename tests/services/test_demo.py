"""The demo business: believable, true to the house rules, and safe to seed twice."""

from __future__ import annotations

import json
import re
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from urllib.parse import parse_qsl

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import selectinload

from midas.extensions import db
from midas.models import (
    BLOCKING_STATUSES,
    Blackout,
    Booking,
    BookingStatus,
    Category,
    Customer,
    Dispute,
    ErrorCategory,
    ErrorGroup,
    Item,
    LineKind,
    Location,
    Notification,
    Payment,
    PaymentStatus,
    Refund,
    RefundStatus,
    StaffUser,
    WebhookEvent,
)
from midas.money import exponent
from midas.services.auth import authenticate
from midas.services.demo import DEMO_LOGINS, DEMO_NAMES, DEMO_PASSWORD, seed_demo
from tests.conftest import empty_database

# A fixed "now" keeps every run identical: New Year, Dubai's winter and Niseko's powder season are in range.
NOW = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)
REFERENCE = re.compile(r"MID-[23456789ABCDEFGHJKMNPQRSTUVWXYZ]{6}")


@pytest.fixture(scope="module")
def demo(migrated_app):
    """One demo business for the read-only checks of this module (seeding takes seconds)."""
    with migrated_app.app_context():
        yield seed_demo(NOW)
        db.session.remove()
        empty_database()


def _all(model, *options):
    return db.session.scalars(select(model).options(*options)).all()


def _row_counts() -> dict[str, int]:
    return {table.name: db.session.scalar(select(func.count()).select_from(table))
            for table in db.metadata.sorted_tables}


def test_demo_business_has_every_booking_state_and_currency(demo):
    locations = _all(Location)
    assert {location.currency for location in locations} >= {"GBP", "EUR", "AED", "JPY", "USD"}
    assert len({location.timezone for location in locations}) == len(locations) >= 4
    assert all(location.code.isupper() and len(location.country) == 2 for location in locations)
    items = _all(Item)
    assert len(items) >= 60 and {item.category for item in items} == set(Category.values())
    assert {item.status for item in items} == {"active", "maintenance", "retired"}
    assert db.session.scalar(select(func.count(Customer.id))) >= 200
    assert set(db.session.scalars(select(Booking.status).distinct())) == set(BookingStatus.values())
    assert demo["bookings"] == db.session.scalar(select(func.count(Booking.id)))


def test_demo_has_a_zero_decimal_location(demo):
    tokyo = db.session.scalar(select(Location).where(Location.currency == "JPY"))
    assert exponent(tokyo.currency) == 0
    cars = {item.currency: item.daily_rate for item in _all(Item) if item.category == Category.CAR.value}
    assert 50_000 <= cars["JPY"] <= 2_000_000  # yen a day, not hundredths of a yen
    assert 50_000 <= cars["GBP"] <= 1_000_000  # pence: £500 to £10,000 a day
    tokyo_booking = db.session.scalar(select(Booking).where(Booking.currency == "JPY").limit(1))
    assert tokyo_booking.total_amount == sum(line.amount for line in tokyo_booking.lines)


def test_demo_booking_totals_are_the_sum_of_their_lines(demo):
    bookings = _all(Booking, selectinload(Booking.lines), selectinload(Booking.item))
    for booking in bookings:
        item = booking.item
        assert booking.total_amount == sum(line.amount for line in booking.lines) > 0, booking.reference
        assert booking.currency == item.currency and booking.deposit_amount == item.security_deposit
        assert booking.block_starts_at == booking.starts_at - timedelta(hours=item.buffer_before_hours)
        assert booking.block_ends_at == booking.ends_at + timedelta(hours=item.buffer_after_hours)
        fees = [line for line in booking.lines if line.kind == LineKind.SERVICE_FEE.value]
        assert len(fees) == 1 and not fees[0].refundable
    kinds = {line.kind for booking in bookings for line in booking.lines}
    assert {"rental", "season", "tier", "insurance", "tax", "service_fee"} <= kinds


def test_demo_bookings_carry_the_details_of_their_state(demo):
    bookings = _all(Booking)
    assert all(REFERENCE.fullmatch(booking.reference) for booking in bookings)
    assert all(len(booking.checkout_token) >= 32 and re.fullmatch(r"[\w-]+", booking.checkout_token)
               for booking in bookings)
    assert len({booking.checkout_token for booking in bookings}) == len(bookings)
    for booking in bookings:
        if booking.status == BookingStatus.PENDING_PAYMENT.value:
            assert booking.hold_expires_at > booking.created_at
        if booking.status == BookingStatus.CANCELLED.value:
            assert booking.cancel_reason
        if booking.status == BookingStatus.IN_PROGRESS.value:
            assert booking.starts_at <= NOW < booking.ends_at and booking.handed_over_at
        if booking.status == BookingStatus.COMPLETED.value:
            assert booking.ends_at <= NOW and booking.returned_at


def test_demo_blocking_bookings_never_overlap_per_item(demo):
    blocking = [status.value for status in BLOCKING_STATUSES]
    periods = defaultdict(list)
    for booking in db.session.scalars(select(Booking).where(Booking.status.in_(blocking))):
        periods[booking.item_id].append((booking.block_starts_at, booking.block_ends_at, booking.reference))
    for blackout in _all(Blackout):
        periods[blackout.item_id].append((blackout.starts_at, blackout.ends_at, f"blackout {blackout.id}"))
    assert periods
    for item_periods in periods.values():
        item_periods.sort()
        for (_, first_ends, first), (second_starts, _, second) in pairwise(item_periods):
            assert first_ends <= second_starts, (first, second)


def test_demo_refunds_never_exceed_what_was_paid(demo):
    payments = _all(Payment, selectinload(Payment.refunds))
    for payment in payments:
        refunded = sum(r.amount for r in payment.refunds if r.status == RefundStatus.SUCCEEDED.value)
        assert payment.amount_refunded == refunded <= payment.amount
        if payment.status == PaymentStatus.SUCCEEDED.value:
            assert payment.amount_captured == payment.amount
    failed = [payment for payment in payments if payment.status == PaymentStatus.FAILED.value]
    assert {payment.failure_code for payment in failed} == {"card_declined", "insufficient_funds"}
    staff = {user.id for user in _all(StaffUser)}
    refunds = _all(Refund)
    assert {"succeeded", "pending_approval", "failed"} <= {refund.status for refund in refunds}
    for refund in refunds:
        assert refund.requested_by_id in staff and refund.approved_by_id != refund.requested_by_id
        assert refund.currency == refund.payment.currency


def test_demo_feeds_the_events_messages_disputes_and_error_pages(demo):
    events = _all(WebhookEvent)
    assert {event.status for event in events} == {"processed", "ignored", "failed"}
    for event in events:
        if event.provider == "stripe":
            assert event.payload["id"] == event.event_id and event.payload["object"] == "event"
            assert event.payload["type"] == event.type and "object" in event.payload["data"]
            assert json.loads(event.raw_body) == event.payload
        else:
            assert dict(parse_qsl(event.raw_body)) == event.payload
    assert {"paypal", "stripe"} == {event.provider for event in events}
    assert {"sent", "failed", "pending"} <= {n.status for n in _all(Notification)}
    booking_keys = db.session.scalars(select(Notification.dedupe_key).where(Notification.booking_id.is_not(None)))
    assert all(re.fullmatch(r"booking:MID-\w{6}:\w+:(email|sms)", key) for key in booking_keys)
    assert {"needs_response", "under_review", "won", "lost"} <= {d.status for d in _all(Dispute)}
    groups = _all(ErrorGroup)
    assert {group.category for group in groups} == set(ErrorCategory.values())
    assert all(group.occurrences == len(group.events) for group in groups)
    declined = [g for g in groups if g.category == "PAYMENT" and g.severity == "HIGH" and g.status == "open"]
    assert declined and all(event.amount and event.currency for event in declined[0].events)


def test_demo_staff_can_sign_in_with_the_printed_password(demo):
    assert demo["staff"] == len(DEMO_LOGINS)
    for email, role in DEMO_LOGINS:
        user = authenticate(email, DEMO_PASSWORD)
        assert (user.name, user.role) == (DEMO_NAMES[email], role)
