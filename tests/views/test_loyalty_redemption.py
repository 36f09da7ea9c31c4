"""Loyalty points redeemed on a quote: their own discount line, kept when the booking is re-priced."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from midas.extensions import db
from midas.models import AuditEntry, Booking, Customer, Payment
from midas.services import DomainError, InvalidInput, booking_changes, bookings, checkout
from tests import factories
from tests.conftest import make_staff, soup

START = datetime(2031, 6, 1, 9, tzinfo=UTC)


@pytest.fixture
def staff(app):
    return make_staff("concierge", email="chloe@midas.test")


def quote_for(staff, points: int = 5000, status: str = "quote") -> Booking:
    """A three-day London quote for a customer holding `points` (5,000 points are worth £50.00)."""
    customer = factories.customer(loyalty_points=points)
    car = factories.item(factories.location())
    return bookings.create_booking(staff, customer.id, car.id, START, START + timedelta(days=3), status=status)


def discount_lines(booking: Booking) -> list[tuple[str, int]]:
    return [(line.description, line.amount) for line in booking.lines if line.kind == "adjustment"]


def test_points_become_their_own_discount_line_and_leave_the_balance(staff):
    booking = quote_for(staff)
    total = booking.total_amount

    redeemed = booking_changes.redeem_points(staff, booking.reference, 5000)

    assert discount_lines(redeemed) == [("Loyalty: 5,000 points redeemed", -5000)]
    assert redeemed.total_amount == total - 5000 == sum(line.amount for line in redeemed.lines)
    assert db.session.get(Customer, redeemed.customer_id).loyalty_points == 0
    assert db.session.query(AuditEntry).filter_by(action="loyalty.redeemed", entity_id=str(booking.id)).count() == 1
    assert checkout.amount_due(redeemed) == total - 5000


def test_a_change_of_dates_keeps_the_discount(staff):
    booking = booking_changes.redeem_points(staff, quote_for(staff).reference, 5000)

    changed = booking_changes.change_booking(staff, booking.reference, booking.item_id,
                                             datetime(2031, 6, 1, 10), datetime(2031, 6, 5, 10))

    assert discount_lines(changed) == [("Loyalty: 5,000 points redeemed", -5000)]
    assert changed.total_amount == sum(line.amount for line in changed.lines)
    preview = booking_changes.preview_change(changed.reference, changed.item_id, datetime(2031, 6, 1, 10),
                                             datetime(2031, 6, 3, 10))
    assert preview.adjustments == -5000 and preview.new_total == preview.quote.total - 5000


def test_points_are_refused_once_money_is_paid_or_beyond_the_balance(staff):
    confirmed = quote_for(staff, status="confirmed")
    with pytest.raises(DomainError):
        booking_changes.redeem_points(staff, confirmed.reference, 100)
    paid = quote_for(staff, status="pending_payment")
    db.session.add(Payment(booking=paid, provider="bank_transfer", kind="charge", status="succeeded", amount=100,
                           currency=paid.currency, amount_captured=100, amount_refunded=0, idempotency_key="paid"))
    db.session.commit()
    with pytest.raises(DomainError):
        booking_changes.redeem_points(staff, paid.reference, 100)
    with pytest.raises(InvalidInput):
        booking_changes.redeem_points(staff, quote_for(staff).reference, 5001)
    assert all(c.loyalty_points == 5000 for c in db.session.query(Customer))


def test_the_booking_page_offers_the_points_and_redeems_them(app, login_as):
    booking = quote_for(make_staff("admin"))
    concierge = login_as("concierge")

    page = concierge.page(f"/bookings/{booking.reference}")
    form = page.select_one("form.redeem")
    assert form["data-loyalty-points"] == "5000" and form.select_one("input[name=points]")["value"] == "5000"
    too_many = concierge.post(f"/bookings/{booking.reference}/redeem-points", {"points": "9000"})
    assert too_many.status_code == 422 and "5,000 points" in soup(too_many).get_text()
    assert concierge.post(f"/bookings/{booking.reference}/redeem-points", {"points": "2500"}).status_code == 302

    page = concierge.page(f"/bookings/{booking.reference}")
    assert "Loyalty: 2,500 points redeemed" in page.select_one("table").get_text()
    assert page.select_one("form.redeem")["data-loyalty-points"] == "2500"
