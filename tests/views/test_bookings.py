"""The concierge's booking screens: the new-booking flow, the booking page and its actions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from midas.extensions import db
from midas.models import Booking, Payment, utcnow
from midas.services import bookings
from tests import factories
from tests.conftest import make_staff, soup

XSS = ['<script>alert(1)</script>', '"><img src=x onerror=alert(1)>']


def _future(days: int) -> str:
    return (utcnow() + timedelta(days=days)).strftime("%Y-%m-%dT10:00")


def test_customer_search_offers_matching_customers_to_choose(login_as):
    grace = factories.customer(name="Grace Hopper")
    factories.customer(name="Ada Lovelace", email="ada@example.com")
    response = login_as("concierge").get("/bookings/new/customers?customer_q=grac")
    choices = soup(response).select("input[name=customer_id]")
    assert [c["value"] for c in choices] == [str(grace.id)]


def test_options_list_only_free_items_and_price_the_chosen_one(login_as):
    loc = factories.location()
    free, busy = factories.item(loc, name="Aston Martin DBS"), factories.item(loc, name="Bentley Bacalar")
    factories.item(loc, name="Riva Yacht", category="yacht")
    factories.booking(busy, starts_at=utcnow() + timedelta(days=10), days=5)
    customer = factories.customer(tier="premium")
    args = {"customer_id": customer.id, "location_id": loc.id, "category": "car", "starts_at": _future(10),
            "ends_at": _future(13), "item_id": free.id}
    fragment = soup(login_as("concierge").get("/bookings/new", query_string=args, headers={"HX-Request": "true"}))
    assert fragment.find("html") is None
    offered = [label.find("span").get_text() for label in fragment.select("label.choice")]
    assert offered == ["Aston Martin DBS"]
    quote = fragment.select_one(".quote")
    assert "Premium tier" in quote.get_text()
    lines = [int(td.get_text().replace("£", "").replace(",", "").replace(".", "")) for td in
             quote.select("tbody td.num")]
    assert sum(lines) == int(quote["data-total"])


def test_concierge_creates_a_booking_and_sees_its_checkout_link(login_as):
    loc = factories.location()
    car = factories.item(loc)
    customer = factories.customer()
    concierge = login_as("concierge")
    response = concierge.post("/bookings/new", {
        "customer_id": customer.id, "location_id": loc.id, "category": "", "starts_at": _future(20),
        "ends_at": _future(23), "item_id": car.id, "special_requests": "Chauffeur at Heathrow",
        "notes": "", "status": "pending_payment"})
    assert response.status_code == 302
    booking = db.session.query(Booking).one()
    assert booking.reference.startswith("MID-") and booking.status == "pending_payment"
    assert booking.starts_at.astimezone(UTC).hour in (9, 10)  # 10:00 in London
    page = concierge.page(response.headers["Location"])
    link = page.select_one("[data-checkout-url]")["data-checkout-url"]
    assert link.endswith(f"/pay/{booking.checkout_token}")
    assert page.select_one("[data-status]")["data-status"] == "pending_payment"
    assert "Chauffeur at Heathrow" in page.get_text()
    assert "Booking created" in page.select_one(".timeline").get_text()


def test_new_booking_for_a_taken_slot_names_the_conflict_and_saves_nothing(login_as):
    loc = factories.location()
    car = factories.item(loc)
    existing = factories.booking(car, starts_at=datetime.now(UTC).replace(microsecond=0) + timedelta(days=20))
    response = login_as("concierge").post("/bookings/new", {
        "customer_id": factories.customer().id, "location_id": loc.id, "starts_at": _future(20),
        "ends_at": _future(22), "item_id": car.id, "status": "pending_payment"})
    assert response.status_code == 422
    assert existing.reference in soup(response).select_one("#item_id-errors").get_text()
    assert db.session.query(Booking).count() == 1


def test_new_booking_form_explains_missing_choices(login_as):
    loc = factories.location()
    response = login_as("concierge").post("/bookings/new", {"location_id": loc.id, "starts_at": "", "ends_at": "",
                                                            "status": "quote"})
    assert response.status_code == 422
    text = soup(response).get_text()
    assert "Choose the customer." in text and "Choose an available item." in text


def test_booking_page_offers_only_the_possible_next_steps(login_as):
    staff = make_staff("admin", email="a2@midas.test")
    car = factories.item()
    start = utcnow() + timedelta(days=5)
    booking = bookings.create_booking(staff, factories.customer().id, car.id, start, start + timedelta(days=2))
    page = login_as("admin").page(f"/bookings/{booking.reference}")
    buttons = {b.get_text(strip=True) for b in page.select(".actions-bar button, .actions-bar summary")}
    assert buttons == {"Confirm on account", "Cancel booking"}


def test_cancel_from_the_booking_page_needs_a_reason(login_as):
    car = factories.item()
    booking = factories.booking(car, status="confirmed")
    staff = login_as("concierge")
    response = staff.post(f"/bookings/{booking.reference}/cancel", {"reason": ""})
    assert response.status_code == 422 and db.session.get(Booking, booking.id).status == "confirmed"
    staff.post(f"/bookings/{booking.reference}/cancel", {"reason": "Flight cancelled"})
    assert db.session.get(Booking, booking.id).status == "cancelled"


def test_illegal_action_is_refused_with_a_clear_message(login_as):
    booking = factories.booking(factories.item(), status="confirmed")
    response = login_as("concierge").post(f"/bookings/{booking.reference}/send-for-payment")
    assert response.status_code == 409
    assert "cannot become pending payment" in soup(response).get_text()


def test_concierge_cannot_confirm_on_account(login_as):
    booking = factories.booking(factories.item(), status="pending_payment")
    assert login_as("concierge").post(f"/bookings/{booking.reference}/confirm").status_code == 403
    assert db.session.get(Booking, booking.id).status == "pending_payment"


def test_checkout_link_opens_for_the_customer_without_login(client):
    booking = factories.booking(factories.item(), status="pending_payment")
    page = soup(client.get(f"/pay/{booking.checkout_token}"))
    assert page.select_one("[data-status]")["data-status"] == "pending_payment"
    assert booking.reference in page.get_text()
    assert client.get("/pay/not-a-real-token-at-all").status_code == 404


def test_hostile_names_are_escaped_on_booking_pages(login_as, client):
    for hostile in XSS:
        customer = factories.customer(name=hostile)
        booking = factories.booking(factories.item(factories.location(code=f"L{len(hostile)}"), name=hostile),
                                    who=customer)
        staff = login_as("concierge")
        for url in ("/bookings", f"/bookings/{booking.reference}", f"/bookings/new/customers?customer_q={hostile[:5]}"):
            html = staff.get(url).get_data(as_text=True)
            assert hostile not in html, url
        assert hostile not in client.get(f"/pay/{booking.checkout_token}").get_data(as_text=True)


def _booked(days_ahead: int = 20, days: int = 3):
    staff = make_staff("concierge", email=f"c{days_ahead}@midas.test")
    loc = factories.location()
    car = factories.item(loc)
    start = datetime(2031, 6, 1, 9, tzinfo=UTC) + timedelta(days=days_ahead)
    return bookings.create_booking(staff, factories.customer().id, car.id, start, start + timedelta(days=days))


def test_change_preview_shows_the_price_difference(login_as):
    booking = _booked()
    local = booking.starts_at.strftime("%Y-%m-%dT10:00")
    longer = (booking.ends_at + timedelta(days=1)).strftime("%Y-%m-%dT10:00")
    fragment = soup(login_as("concierge").get(
        f"/bookings/{booking.reference}/change", query_string={"item_id": booking.item_id, "starts_at": local,
                                                              "ends_at": longer}, headers={"HX-Request": "true"}))
    difference = int(fragment.select_one("[data-difference]")["data-difference"])
    assert difference > 0 and "To collect" in fragment.get_text()


def test_concierge_moves_a_booking_to_another_free_item_and_it_is_repriced(login_as):
    booking = _booked()
    yacht = factories.item(booking.item.location, name="Riva 88", category="yacht", daily_rate=900000)
    old_total, old_period = booking.total_amount, (booking.starts_at, booking.ends_at)
    response = login_as("concierge").post(f"/bookings/{booking.reference}/change", {
        "item_id": yacht.id, "starts_at": booking.starts_at.strftime("%Y-%m-%dT10:00"),
        "ends_at": booking.ends_at.strftime("%Y-%m-%dT10:00")})
    assert response.status_code == 302
    changed = db.session.get(Booking, booking.id)
    assert changed.item_id == yacht.id and changed.total_amount > old_total
    assert (changed.starts_at, changed.ends_at) == old_period  # 10:00 in London's summer time is 09:00 UTC
    assert changed.total_amount == sum(line.amount for line in changed.lines)


def test_change_onto_a_taken_period_is_refused_and_changes_nothing(login_as):
    booking = _booked()
    other = factories.booking(booking.item, starts_at=booking.ends_at + timedelta(days=5), days=2)
    response = login_as("concierge").post(f"/bookings/{booking.reference}/change", {
        "item_id": booking.item_id, "starts_at": booking.starts_at.strftime("%Y-%m-%dT10:00"),
        "ends_at": (other.starts_at + timedelta(days=1)).strftime("%Y-%m-%dT10:00")})
    assert response.status_code == 422 and other.reference in soup(response).get_text()
    assert db.session.get(Booking, booking.id).ends_at == booking.ends_at


def test_booking_is_reassigned_to_another_concierge(login_as):
    booking = _booked()
    colleague = make_staff("concierge", email="colleague@midas.test", name="Colin Colleague")
    staff = login_as("concierge")
    staff.post(f"/bookings/{booking.reference}/reassign", {"concierge_id": colleague.id})
    assert db.session.get(Booking, booking.id).concierge_id == colleague.id
    assert "Colin Colleague" in staff.page(f"/bookings/{booking.reference}").select_one(
        "form.reassign option[selected]").get_text()


def test_concierge_adds_a_customer_inline_and_it_comes_back_chosen(login_as):
    from midas.models import Customer

    response = login_as("concierge").post("/bookings/new/customer", {
        "new_name": "Hedy Lamarr", "new_email": "Hedy@Example.com", "new_phone": "+44 20 7946 0958"}, htmx=True)
    chosen = soup(response).select_one("input[name=customer_id][checked]")
    customer = db.session.query(Customer).filter_by(email="hedy@example.com").one()
    assert chosen["value"] == str(customer.id) and customer.phone == "+442079460958"


def test_inline_customer_with_a_bad_email_is_explained_and_not_saved(login_as):
    from midas.models import Customer

    response = login_as("concierge").post("/bookings/new/customer", {"new_name": "X", "new_email": "nope"}, htmx=True)
    assert response.status_code == 422 and soup(response).select_one(".field-error")
    assert db.session.query(Customer).count() == 0


def test_checkout_link_is_sent_by_email_once_even_on_a_double_click(login_as):
    from midas.models import Notification

    booking = _booked()
    staff = login_as("concierge")
    links = db.session.query(Notification).filter_by(booking_id=booking.id, template="checkout_link")
    before = links.count()  # creating a held booking already sent one
    for _ in range(2):
        response = staff.post(f"/bookings/{booking.reference}/send-checkout-link", {"channel": "email"})
        assert response.status_code == 302
    assert links.count() == before + 1
    assert {n.recipient for n in links} == {booking.customer.email}


def test_checkout_link_by_sms_needs_a_phone_number(login_as):
    booking = _booked()
    response = login_as("concierge").post(f"/bookings/{booking.reference}/send-checkout-link", {"channel": "sms"})
    assert response.status_code == 422


def test_a_partly_refunded_booking_still_offers_the_refund_flow(login_as):
    booking = factories.booking(factories.item(), status="cancelled")
    staff = login_as("concierge")
    refund_link = f"a[href='/refunds/new?booking={booking.reference}']"
    assert staff.page(f"/bookings/{booking.reference}").select_one(refund_link) is None
    db.session.add(Payment(booking=booking, provider="stripe", kind="charge", status="partially_refunded",
                           amount=booking.total_amount, currency=booking.currency, amount_captured=booking.total_amount,
                           amount_refunded=1000, provider_ref="pi_partly", idempotency_key="partly"))
    db.session.commit()
    assert staff.page(f"/bookings/{booking.reference}").select_one(refund_link) is not None
