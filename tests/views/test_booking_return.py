"""Recording a return from the booking page, and the late fee that follows: on the page, the timeline and checkout."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import func, select

from midas.extensions import db
from midas.models import Booking, Notification, Payment, utcnow
from tests.conftest import soup
from tests.fakes import stripe_api
from tests.fakes.stripe_api import authorized, card_booking, card_payment, deliver, event, intent_for, run_jobs
from tests.views.test_checkout import Customer

fake_stripe, stripe_server = stripe_api.fake_stripe, stripe_api.stripe_server
MONACO = ZoneInfo("Europe/Monaco")
LATE_FEE = 425000 * 2000 * 3 // 10000  # a yacht three started hours late: €2,550.00


def on_the_water() -> Booking:
    """A yacht out of Monaco since yesterday, due back six hours ago."""
    return card_booking(status="in_progress", starts_in=-timedelta(days=1, hours=6))


def late(booking: Booking) -> datetime:
    """Back 2 h 40 late (three started hours past the grace period), to the minute as staff type it."""
    return (booking.ends_at + timedelta(hours=2, minutes=40)).replace(second=0, microsecond=0)


def typed(moment: datetime) -> str:
    """What a concierge in Monaco types for `moment`: the venue's wall-clock time."""
    return moment.astimezone(MONACO).strftime("%Y-%m-%dT%H:%M")


def record_return(staff, booking: Booking, moment: datetime):
    return staff.post(f"/bookings/{booking.reference}/return", {"returned_at": typed(moment)})


def test_the_typed_venue_time_is_stored_as_utc_and_the_late_fee_taken_from_the_hold(app, login_as, fake_stripe):
    booking = on_the_water()
    hold = card_payment(booking, kind="deposit", status="authorized")
    fake_stripe.add("payment_intents", authorized(intent_for(hold)))
    back = late(booking)
    staff = login_as("concierge")

    response = record_return(staff, booking, back)
    run_jobs(app)

    assert response.status_code == 302
    booking = db.session.get(Booking, booking.id)
    assert booking.status == "completed" and booking.returned_at == back.astimezone(UTC)
    assert db.session.get(Payment, hold.id).amount_captured == LATE_FEE
    page = staff.page(f"/bookings/{booking.reference}")
    status = page.select_one("[data-late-fee-status]")
    assert status["data-late-fee-status"] == "captured" and "€2,550.00" in status.get_text()
    timeline = page.select_one("ol.timeline").get_text(" ", strip=True)
    assert "Late fee captured from the deposit hold" in timeline
    assert "€2,550.00 captured, the rest released" in timeline


def test_without_a_hold_the_page_shows_the_balance_awaiting_the_customer(app, login_as, fake_stripe):
    booking = on_the_water()
    staff = login_as("concierge")

    record_return(staff, booking, late(booking))
    run_jobs(app)

    page = staff.page(f"/bookings/{booking.reference}")
    status = page.select_one("[data-late-fee-status]")
    assert status["data-late-fee-status"] == "balance_due" and "checkout link" in status.get_text()
    timeline = page.select_one("ol.timeline").get_text(" ", strip=True)
    assert "Late fee balance asked of the customer" in timeline and "Email: balance due" in timeline


def test_the_checkout_link_asks_for_the_balance_and_thanks_once_it_is_paid(app, client, login_as, fake_stripe):
    booking = on_the_water()
    record_return(login_as("concierge"), booking, late(booking))
    run_jobs(app)
    customer = Customer(client, booking)

    status, page = customer.page()
    assert status == 200 and page.select_one("article.checkout")["data-state"] == "balance"
    assert "€2,550.00" in page.select_one("[data-balance-due]").get_text()
    assert page.select_one("form[data-stripe-payment]")["data-intent-url"] == f"/pay/{booking.checkout_token}/intent"
    created = customer.intent()
    assert created.status_code == 200 and created.json["amount"] == LATE_FEE

    paid = fake_stripe.update_intent(created.json["payment_intent"], stripe_api.succeeded)
    deliver(client, event("payment_intent.succeeded", paid))
    run_jobs(app)

    done = customer.status().select_one("[data-payment-status]")
    assert done["data-payment-status"] == "settled"
    _, page = customer.page()
    assert page.select_one("article.checkout")["data-state"] == "paid"
    assert page.select_one("form[data-stripe-payment]") is None
    assert customer.intent().json["error"] == "already_paid"


def test_a_return_typed_in_the_future_is_refused_and_changes_nothing(app, login_as, fake_stripe):
    booking = on_the_water()

    response = record_return(login_as("concierge"), booking, utcnow() + timedelta(hours=2))

    assert response.status_code == 422 and "in the future" in soup(response).get_text()
    assert db.session.get(Booking, booking.id).status == "in_progress"


def test_a_double_submitted_return_completes_and_charges_once(app, login_as, fake_stripe):
    booking = on_the_water()
    hold = card_payment(booking, kind="deposit", status="authorized")
    fake_stripe.add("payment_intents", authorized(intent_for(hold)))
    staff = login_as("concierge")
    back = late(booking)

    first, second = record_return(staff, booking, back), record_return(staff, booking, back)
    run_jobs(app)

    assert (first.status_code, second.status_code) == (302, 409)
    booking = db.session.get(Booking, booking.id)
    assert [line.amount for line in booking.lines if line.kind == "late_fee"] == [LATE_FEE]
    assert len(fake_stripe.calls("POST", "/capture")) == 1
    assert db.session.scalar(select(func.count()).select_from(Payment).where(Payment.booking_id == booking.id)) == 1


def test_staff_send_the_balance_link_again_from_the_booking_page(app, login_as, fake_stripe):
    booking = on_the_water()
    staff = login_as("concierge")
    record_return(staff, booking, late(booking))
    run_jobs(app)
    assert staff.page(f"/bookings/{booking.reference}").select(".send-link button")

    response = staff.post(f"/bookings/{booking.reference}/send-checkout-link", {"channel": "email"})

    assert response.status_code == 302
    again = db.session.scalars(select(Notification).where(
        Notification.booking_id == booking.id, Notification.template == "balance_due",
        Notification.dedupe_key.like("%staff-%"))).all()
    assert len(again) == 1 and again[0].context["amount"] == "€2,550.00" and "/pay/" in again[0].context["checkout_url"]


def test_a_completed_booking_with_nothing_owed_has_no_link_to_send(app, login_as, fake_stripe):
    booking = on_the_water()
    staff = login_as("concierge")
    record_return(staff, booking, booking.ends_at)
    run_jobs(app)

    assert not staff.page(f"/bookings/{booking.reference}").select(".send-link button")
    response = staff.post(f"/bookings/{booking.reference}/send-checkout-link", {"channel": "email"})
    assert response.status_code in (409, 422) and "nothing left to pay" in soup(response).get_text()
