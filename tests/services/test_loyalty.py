"""Loyalty points: earned once per completed booking by tier, redeemable as a discount, never below zero."""

from __future__ import annotations

from datetime import timedelta

import pytest

from midas.extensions import db
from midas.models import AuditEntry, Customer
from midas.services import DomainError, InvalidInput, PermissionDenied, booking_states, customers, loyalty
from tests import factories
from tests.conftest import make_staff

pytestmark = pytest.mark.usefixtures("app")


def tokyo_item():
    tokyo = factories.location("TYO", name="Tokyo Ginza", city="Tokyo", country="JP", timezone="Asia/Tokyo",
                               currency="JPY")
    return factories.item(tokyo, name="Lexus LFA", daily_rate=350000)


def completed(tier: str = "standard", item=None, points: int = 0, days: int = 3):
    who = factories.customer(tier=tier, loyalty_points=points)
    return factories.booking(item or factories.item(), who=who, status="completed", days=days)


@pytest.mark.parametrize(("tier", "expected"), [("standard", 5400), ("premium", 10800), ("vvip", 16200)])
def test_a_completed_booking_earns_whole_pounds_times_the_tier_multiplier(tier, expected):
    booking = completed(tier)  # 3 days × £1,800
    booking.total_amount = 540099  # £5,400.99: the pence are not counted
    db.session.commit()
    assert loyalty.award_points(booking.id) == expected
    assert db.session.get(Customer, booking.customer_id).loyalty_points == expected


def test_points_are_awarded_once_however_often_award_is_called():
    booking = completed(points=100)
    assert loyalty.award_points(booking.id) == 5400
    assert loyalty.award_points(booking.id) == 0
    assert db.session.get(Customer, booking.customer_id).loyalty_points == 5500
    entry = db.session.query(AuditEntry).filter_by(action="loyalty.earned").one()
    assert entry.entity_id == str(booking.id) and entry.after["points"] == 5400 and entry.actor_label == "system"


def test_points_stay_awarded_once_after_the_customer_is_merged():
    booking = completed()
    loyalty.award_points(booking.id)
    survivor = factories.customer()
    customers.merge_customers(make_staff("admin"), survivor.id, booking.customer_id)
    assert loyalty.award_points(booking.id) == 0
    assert db.session.get(Customer, survivor.id).loyalty_points == 5400


def test_yen_earn_a_point_per_hundred_yen_so_a_tokyo_booking_earns_like_a_london_one():
    booking = completed(item=tokyo_item(), days=1)  # ¥350,000 ≈ £1,800
    assert loyalty.award_points(booking.id) == 3500


def test_only_completed_bookings_earn():
    booking = factories.booking(factories.item(), status="confirmed")
    with pytest.raises(DomainError, match="completes"):
        loyalty.award_points(booking.id)
    assert db.session.query(AuditEntry).count() == 0


@pytest.mark.parametrize(("currency", "points", "discount"), [
    ("GBP", 1000, 1000),  # 1,000 points = £10.00 (1,000 pence)
    ("EUR", 150, 150),  # €1.50
    ("JPY", 1000, 1000),  # ¥1,000
    ("KRW", 1000, 10000),  # ₩10,000
    ("BHD", 1000, 10000),  # 10.000 BHD (three decimals)
    ("USD", 0, 0),
])
def test_a_hundred_points_are_worth_one_earning_unit_of_the_currency(currency, points, discount):
    assert loyalty.redeemable_discount(Customer(loyalty_points=points), currency) == discount


def test_redeeming_deducts_points_is_audited_and_returns_the_discount():
    concierge = make_staff("concierge")
    booking = factories.booking(factories.item(), who=factories.customer(loyalty_points=2500), status="quote")
    assert loyalty.redeem_points(concierge, booking.customer_id, 2000, booking.id) == 2000  # £20.00
    assert db.session.get(Customer, booking.customer_id).loyalty_points == 500
    entry = db.session.query(AuditEntry).filter_by(action="loyalty.redeemed").one()
    assert (entry.before, entry.after["loyalty_points"], entry.after["discount"]) == ({"loyalty_points": 2500}, 500,
                                                                                      2000)


def test_points_never_go_below_zero_or_pay_for_someone_elses_booking():
    concierge = make_staff("concierge")
    mine = factories.booking(factories.item(), who=factories.customer(loyalty_points=300), status="quote")
    theirs = factories.booking(mine.item, who=factories.customer(loyalty_points=5000), status="quote",
                               starts_at=mine.ends_at + (mine.ends_at - mine.starts_at) * 2)
    for points, booking_id in ((301, mine.id), (0, mine.id), (-5, mine.id), (100, theirs.id)):
        with pytest.raises(InvalidInput):
            loyalty.redeem_points(concierge, mine.customer_id, points, booking_id)
        db.session.rollback()
    assert db.session.get(Customer, mine.customer_id).loyalty_points == 300
    assert db.session.query(AuditEntry).count() == 0


def test_a_discount_larger_than_the_booking_is_refused():
    booking = factories.booking(factories.item(daily_rate=1000), who=factories.customer(loyalty_points=10**6),
                                days=1, status="quote")  # £10.00
    with pytest.raises(InvalidInput, match="at most 1,000"):
        loyalty.redeem_points(make_staff("concierge"), booking.customer_id, 1001, booking.id)


def test_redeeming_needs_an_active_staff_member():
    booking = factories.booking(factories.item(), who=factories.customer(loyalty_points=500), status="quote")
    with pytest.raises(PermissionDenied):
        loyalty.redeem_points(make_staff("concierge", active=False), booking.customer_id, 100, booking.id)


def test_a_late_return_fee_earns_no_points(app):
    staff = make_staff("concierge")
    booking = completed()
    booking.status = "in_progress"
    db.session.commit()

    back = booking.ends_at + timedelta(hours=2, minutes=40)  # a late fee is added to the total
    done = booking_states.complete(staff, booking.reference, returned_at=back)
    assert done.total_amount > 540000
    assert db.session.get(Customer, booking.customer_id).loyalty_points == 5400  # 3 days × £1,800, the fee left out
