"""Loyalty points: earned once per completed booking by tier, worth a discount on a later booking.

The rule, in one place:
- a completed booking earns floor(total in earning units) × the tier's multiplier (late-return fees are
  left out of the total: lateness is not rewarded), where an earning unit is one major unit of the
  booking's currency (£1, €1, $1 …) or, for currencies whose major unit is worth little, the amount in
  EARNING_UNITS (¥100, ₩1,000 …), so the same holiday earns about the same points
  wherever it is booked;
- 100 points are worth one earning unit of the currency they are redeemed in: 1 point = 1p, 1 cent, ¥1.
  So a standard customer gets 1% back, premium 2%, VVIP 3%. Values are rounded down to a minor unit.
"""

from __future__ import annotations

from sqlalchemy import select

from midas.extensions import db
from midas.models import AuditEntry, Booking, BookingStatus, Customer, LineKind, Role, StaffUser, Tier
from midas.money import exponent, format_money
from midas.services import DomainError, InvalidInput, NotFound, audit
from midas.services.auth import require_role

TIER_MULTIPLIERS = {Tier.STANDARD.value: 1, Tier.PREMIUM.value: 2, Tier.VVIP.value: 3}
POINTS_PER_UNIT = 100  # points worth one earning unit when redeemed
# Major units that make one earning unit, where that is not 1 (roughly £0.50–£1 each).
EARNING_UNITS = {"JPY": 100, "KRW": 1000, "THB": 20, "MXN": 20, "HKD": 10, "AED": 5, "QAR": 5, "SAR": 5,
                 "AUD": 2, "CAD": 2, "SGD": 2}
EARNED, REDEEMED = "loyalty.earned", "loyalty.redeemed"


def earning_unit(currency: str) -> int:
    """Minor units of `currency` in one earning unit: 100 for GBP (£1), 100 for JPY (¥100), 1,000 for BHD."""
    return EARNING_UNITS.get(currency.upper(), 1) * 10 ** exponent(currency)


def points_for(total: int, currency: str, tier: str) -> int:
    """Points a booking of `total` minor units earns for a customer of `tier`."""
    return max(0, total) // earning_unit(currency) * TIER_MULTIPLIERS.get(tier, 1)


def point_value(points: int, currency: str) -> int:
    """What `points` are worth in minor units of `currency`, rounded down."""
    return points * earning_unit(currency) // POINTS_PER_UNIT


def redeemable_discount(customer: Customer, currency: str) -> int:
    """The discount, in minor units of `currency`, the customer's whole balance is worth."""
    return point_value(customer.loyalty_points, currency)


def earning_total(booking: Booking) -> int:
    """What a booking earns points on: its total without late-return fees (lateness is not rewarded)."""
    return booking.total_amount - sum(line.amount for line in booking.lines if line.kind == LineKind.LATE_FEE.value)


def award_points(booking_id: int) -> int:
    """Credit the customer for a completed booking, once; returns the points added (0 if already awarded).

    Commits: call it once the completion itself is committed. The audit entry is the proof of award, so a
    second call (a retried job, a double click) finds it and adds nothing.
    """
    booking = db.session.get(Booking, booking_id)
    if booking is None:
        raise NotFound("No such booking.")
    if booking.status != BookingStatus.COMPLETED.value:
        raise DomainError(f"Points are earned when a booking completes; {booking.reference} is {booking.status}.")
    customer = _locked_customer(booking.customer_id)
    if _already_awarded(booking.id):
        db.session.rollback()
        return 0
    points = points_for(earning_total(booking), booking.currency, customer.tier)
    before = customer.loyalty_points
    customer.loyalty_points = before + points
    audit.record(EARNED, "booking", booking.id, before={"loyalty_points": before},
                 after={"loyalty_points": customer.loyalty_points, "customer_id": customer.id, "points": points,
                        "tier": customer.tier, "total_amount": booking.total_amount, "currency": booking.currency})
    db.session.commit()
    return points


def redeem_points(actor: StaffUser, customer_id: int, points: int, booking_id: int) -> int:
    """Spend points on one of the customer's bookings; returns the discount in the booking's minor units."""
    discount = spend_points(actor, customer_id, points, booking_id)
    db.session.commit()
    return discount


def spend_points(actor: StaffUser, customer_id: int, points: int, booking_id: int) -> int:
    """redeem_points without the commit, for a caller whose transaction also adds the discount line."""
    require_role(actor, Role.CONCIERGE)
    if points <= 0:
        raise InvalidInput("Redeem at least one point.", "points")
    customer = _locked_customer(customer_id)
    booking = db.session.get(Booking, booking_id)
    if booking is None or booking.customer_id != customer.id:
        raise InvalidInput("Points can only be redeemed on one of the customer's own bookings.", "points")
    if points > customer.loyalty_points:
        raise InvalidInput(f"{customer.name} has {customer.loyalty_points:,} points.", "points")
    discount = point_value(points, booking.currency)
    if discount > booking.total_amount:
        most = booking.total_amount * POINTS_PER_UNIT // earning_unit(booking.currency)
        raise InvalidInput(f"{points:,} points are worth {format_money(discount, booking.currency)}, more than the "
                           f"booking's total: redeem at most {most:,}.", "points")
    before = customer.loyalty_points
    customer.loyalty_points = before - points
    audit.record(REDEEMED, "booking", booking.id, actor=actor, before={"loyalty_points": before},
                 after={"loyalty_points": customer.loyalty_points, "customer_id": customer.id, "points": points,
                        "discount": discount, "currency": booking.currency})
    return discount


def _locked_customer(customer_id: int) -> Customer:
    """The customer row, locked until commit on PostgreSQL, so two awards or redemptions queue up."""
    customer = db.session.scalar(select(Customer).where(Customer.id == customer_id).with_for_update()
                                 .execution_options(populate_existing=True))
    if customer is None:
        raise NotFound("No such customer.")
    return customer


def _already_awarded(booking_id: int) -> bool:
    return db.session.scalar(select(AuditEntry.id).where(
        AuditEntry.action == EARNED, AuditEntry.entity_type == "booking", AuditEntry.entity_id == str(booking_id),
    ).limit(1)) is not None
