"""Customer (and item) names that look like HTML are shown as text on every page that shows them.

One customer named with each payload from issue #4 has a booking picked up today (today board, fleet
calendar), a card payment (payments list and reports), a message (communications) and a checkout link.
Each page must carry the name as text, with no element or inline script made from it.
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from midas.extensions import db
from midas.models import Notification, Payment, utcnow
from tests import factories
from tests.conftest import assert_inert, soup

PAYLOADS = ['<script>alert(1)</script>', '"><img src=x onerror=alert(1)>']


def hostile_booking(name: str):
    location = factories.location()
    item = factories.item(location, name=f"Yacht {name}", category="yacht")
    customer = factories.customer(name=name, notes=name, phone="+442079460958")
    booking = factories.booking(item, starts_at=utcnow() + timedelta(hours=2), days=2, status="confirmed",
                                who=customer)
    db.session.add(Payment(booking=booking, provider="stripe", kind="charge", status="succeeded",
                           amount=booking.total_amount, currency=booking.currency, amount_captured=booking.total_amount,
                           amount_refunded=0, provider_ref="pi_hostile", idempotency_key="hostile",
                           succeeded_at=utcnow()))
    db.session.add(Notification(dedupe_key="hostile", channel="email", template="booking_confirmation",
                                recipient=customer.email, subject=f"Confirmed: {name}", context={"customer": name},
                                booking_id=booking.id, customer_id=customer.id, status="sent"))
    db.session.commit()
    return booking


@pytest.mark.parametrize("name", PAYLOADS)
def test_hostile_names_are_escaped_on_every_page_that_shows_them(login_as, client, name):
    booking = hostile_booking(name)
    customer, item = booking.customer, booking.item
    message = db.session.query(Notification).filter_by(booking_id=booking.id).one()
    payment = db.session.query(Payment).filter_by(booking_id=booking.id).one()
    admin = login_as("admin")
    htmx = {"HX-Request": "true"}
    pages = {
        "bookings list": admin.get("/bookings"),
        "bookings search": admin.get("/bookings", query_string={"q": "alert"}, headers=htmx),
        "booking page": admin.get(f"/bookings/{booking.reference}"),
        "change form": admin.get(f"/bookings/{booking.reference}/change"),
        "today board": admin.get("/bookings/today"),
        "fleet calendar": admin.get("/bookings/calendar"),
        "new booking customer search": admin.get("/bookings/new/customers", query_string={"customer_q": "alert"}),
        "new booking inline customer": admin.post("/bookings/new/customer", {
            "new_name": name, "new_email": "inline@example.com", "new_phone": ""}, htmx=True),
        "customers list": admin.get("/customers"),
        "customer page": admin.get(f"/customers/{customer.id}"),
        "customer edit": admin.get(f"/customers/{customer.id}/edit"),
        "customer search": admin.get("/customers/search", query_string={"q": "alert"}, headers=htmx),
        "payments list": admin.get("/payments"),
        "payment page": admin.get(f"/payments/{payment.id}"),
        "communications": admin.get("/communications", query_string={"customer_id": customer.id}),
        "message page": admin.get(f"/communications/{message.id}"),
        "item page": admin.get(f"/inventory/{item.id}"),
        "customers report": admin.get("/reports/customers"),
        "checkout": client.get(f"/pay/{booking.checkout_token}"),
    }
    for where, response in pages.items():
        assert_inert(response, where)
    for where in ("bookings list", "booking page", "today board", "customer page", "payments list", "checkout",
                  "new booking inline customer", "item page"):
        assert name in soup(pages[where]).get_text(), where
