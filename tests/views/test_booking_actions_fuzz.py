"""Whatever is posted to a booking's action forms (change, return, cancel, reassign, send link, redeem points),
never a 500, and a refused post changes nothing about the booking."""

from __future__ import annotations

from datetime import timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from midas.extensions import db
from midas.models import Booking, utcnow
from tests import factories

SIGNED_IN: dict = {}
ACTIONS = {
    "change": ("item_id", "starts_at", "ends_at"),
    "return": ("returned_at",),
    "cancel": ("reason",),
    "reassign": ("concierge_id",),
    "send-checkout-link": ("channel",),
    "redeem-points": ("points",),
}
junk = st.one_of(st.text(max_size=40), st.integers(-10**12, 10**12).map(str), st.sampled_from(
    ["", " ", "0", "-1", "9" * 30, "2031-02-30T10:00", "2031-13-01T10:00", "1999-01-01T10:00", "2099-01-01T10:00",
     "<script>alert(1)</script>", "' OR 1=1 --", "\x00", "sms", "fax", "x" * 500]))
SNAPSHOT = ("status", "item_id", "starts_at", "ends_at", "total_amount", "concierge_id", "returned_at",
            "cancel_reason", "hold_expires_at")


def snapshot(booking_id: int) -> dict:
    db.session.expire_all()
    booking = db.session.get(Booking, booking_id)
    return {name: getattr(booking, name) for name in SNAPSHOT} | {"lines": len(booking.lines),
                                                                   "points": booking.customer.loyalty_points}


def fresh_booking(action: str) -> Booking:
    """A booking in a state where `action` makes sense, on its own item (examples never collide)."""
    location = factories.location()
    item = factories.item(location, name=f"Car {utcnow().timestamp()}")
    if action == "return":
        return factories.booking(item, starts_at=utcnow() - timedelta(days=2), days=1, status="in_progress")
    status = "quote" if action in ("send-checkout-link", "redeem-points") else "confirmed"
    return factories.booking(item, starts_at=utcnow() + timedelta(days=30), days=2, status=status,
                             who=factories.customer(loyalty_points=5000))


def valid_form(action: str, booking: Booking, staff_id: int) -> dict:
    tz_now = utcnow().strftime("%Y-%m-%dT%H:%M")
    return {
        "change": {"item_id": booking.item_id, "starts_at": booking.starts_at.strftime("%Y-%m-%dT%H:%M"),
                   "ends_at": (booking.ends_at + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M")},
        "return": {"returned_at": tz_now},
        "cancel": {"reason": "customer changed plans"},
        "reassign": {"concierge_id": staff_id},
        "send-checkout-link": {"channel": "email"},
        "redeem-points": {"points": 100},
    }[action]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(action=st.sampled_from(sorted(ACTIONS)), data=st.data())
def test_fuzzed_booking_action_forms_never_error_and_refused_posts_change_nothing(login_as, action, data):
    # One signed-in admin for all examples (signing in for each would trip the login rate limit).
    staff = SIGNED_IN.get(login_as) or SIGNED_IN.setdefault(login_as, login_as("admin"))
    booking = fresh_booking(action)
    replaced = data.draw(st.dictionaries(st.sampled_from(ACTIONS[action]), junk, min_size=1))
    before = snapshot(booking.id)

    response = staff.post(f"/bookings/{booking.reference}/{action}",
                          {**valid_form(action, booking, staff.user_id), **replaced})

    assert response.status_code in (302, 400, 404, 409, 410, 422), (action, replaced, response.status_code)
    if response.status_code != 302:
        assert snapshot(booking.id) == before, (action, replaced)
