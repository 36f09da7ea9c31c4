"""Customers as staff see them: the list, profiles, the customer page, search, merges and privacy requests."""

from __future__ import annotations

import json
import secrets
from datetime import timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from midas.extensions import db
from midas.models import AuditEntry, Booking, Customer, Notification, Payment, Refund, utcnow
from midas.services import audit as audit_service
from tests import factories
from tests.conftest import assert_inert, soup

FORM = {"name": "Ada Lovelace", "email": "Ada@Example.com", "phone": "+44 20 7946 0958", "email_opt_in": "y",
        "sms_opt_in": "y", "notes": "Prefers the Roma"}
XSS_NAMES = ["<script>alert(1)</script>", '"><img src=x onerror=alert(1)>']


def paid(booking: Booking, amount: int | None = None, refunded: int = 0) -> Payment:
    amount = amount or booking.total_amount
    payment = Payment(booking=booking, provider="stripe", status="succeeded", amount=amount, amount_captured=amount,
                      amount_refunded=refunded, currency=booking.currency, idempotency_key=secrets.token_hex(8),
                      method="visa", succeeded_at=utcnow())
    db.session.add(payment)
    if refunded:
        db.session.add(Refund(payment=payment, booking=booking, amount=refunded, currency=booking.currency,
                              status="succeeded", reason="Late handover", idempotency_key=secrets.token_hex(8)))
    db.session.commit()
    return payment


def sent(customer: Customer, subject: str) -> Notification:
    note = Notification(dedupe_key=secrets.token_hex(8), channel="email", template="booking_confirmed",
                        recipient=customer.email, subject=subject, status="sent", customer_id=customer.id)
    db.session.add(note)
    db.session.commit()
    return note


def errors_of(response) -> dict[str, str]:
    return {e["id"].removesuffix("-errors"): e.get_text(" ", strip=True) for e in soup(response).select(".field-error")}


# Profiles.

def test_concierge_adds_a_customer_and_sees_the_normalised_profile(login_as):
    concierge = login_as("concierge")
    response = concierge.post("/customers/new", FORM)
    assert response.status_code == 302
    customer = db.session.query(Customer).one()
    assert (customer.email, customer.phone, customer.tier) == ("ada@example.com", "+442079460958", "standard")
    page = concierge.page(response.headers["Location"])
    assert page.h1.get_text() == "Ada Lovelace"
    assert page.select_one("[data-status]")["data-status"] == "standard"
    assert "+442079460958" in page.get_text() and "Prefers the Roma" in page.get_text()
    assert db.session.query(AuditEntry).filter_by(action="customer.created").count() == 1


@pytest.mark.parametrize(("change", "field", "message"), [
    ({"email": "ada-at-example.com"}, "email", "valid email"),
    ({"phone": "123"}, "phone", "+44 20 7946 0958"),
    ({"phone": "call me maybe"}, "phone", "phone number"),
    ({"name": ""}, "name", "required"),
    ({"tier": "platinum"}, "tier", "Not a valid choice"),
    ({"preferred_location_id": "nowhere"}, "preferred_location_id", "Invalid Choice"),
])
def test_bad_input_is_explained_next_to_the_field_and_saves_nothing(login_as, change, field, message):
    response = login_as("admin").post("/customers/new", {**FORM, **change})
    assert response.status_code == 422
    assert message in errors_of(response)[field]
    assert soup(response).select_one(f"[name={field}]")["aria-invalid"] == "true"
    assert db.session.query(Customer).count() == 0


def test_an_email_already_in_use_is_refused_naming_the_customer(login_as):
    factories.customer(name="Augusta King", email="ada@example.com")
    response = login_as("concierge").post("/customers/new", FORM)
    assert response.status_code == 422
    assert "Augusta King" in errors_of(response)["email"]
    assert db.session.query(Customer).count() == 1


def test_national_phone_numbers_use_the_preferred_locations_country(login_as):
    nyc = factories.location("NYC", name="New York", city="New York", country="US", timezone="America/New_York",
                             currency="USD")
    response = login_as("concierge").post("/customers/new", {**FORM, "phone": "(212) 736-3100",
                                                             "preferred_location_id": str(nyc.id)})
    assert response.status_code == 302
    assert db.session.query(Customer).one().phone == "+12127363100"


def test_edit_form_is_filled_in_and_changes_are_audited(login_as):
    london = factories.location()
    customer = factories.customer(name="Ada Lovelace", email="ada@example.com", preferred_location_id=london.id)
    admin = login_as("admin")
    form = admin.page(f"/customers/{customer.id}/edit")
    assert form.select_one("input[name=email]")["value"] == "ada@example.com"
    assert form.select_one("select[name=preferred_location_id] option[selected]")["value"] == str(london.id)
    response = admin.post(f"/customers/{customer.id}/edit", {**FORM, "tier": "premium", "marketing_consent": "y",
                                                             "preferred_location_id": str(london.id)})
    assert response.status_code == 302
    saved = db.session.get(Customer, customer.id)
    assert (saved.tier, saved.marketing_consent) == ("premium", True)
    page = admin.page(f"/customers/{customer.id}")
    consent = page.select_one("[data-consent]")
    assert consent["data-consent"] == "yes" and "staff:admin-" in consent.get_text()
    entry = db.session.query(AuditEntry).filter_by(action="customer.updated").one()
    assert entry.before["tier"] == "standard" and entry.after["tier"] == "premium"


def test_concierge_cannot_change_a_tier_even_by_posting_one(login_as):
    customer = factories.customer(tier="premium", name="Ada Lovelace", email="ada@example.com")
    concierge = login_as("concierge")
    form = concierge.page(f"/customers/{customer.id}/edit")
    assert form.select_one("select[name=tier]") is None and "Premium" in form.get_text()
    assert concierge.post(f"/customers/{customer.id}/edit", {**FORM, "tier": "vvip"}).status_code == 403
    assert concierge.post("/customers/new", {**FORM, "email": "new@example.com", "tier": "vvip"}).status_code == 403
    assert db.session.get(Customer, customer.id).tier == "premium"
    assert db.session.query(Customer).count() == 1
    assert concierge.post(f"/customers/{customer.id}/edit", {**FORM, "notes": "Keeps tier"}).status_code == 302
    assert db.session.get(Customer, customer.id).tier == "premium"


# The list and the search fragment.

def test_list_filters_by_tier_segment_location_and_search(login_as):
    london = factories.location()
    factories.customer(name="Velvet Rope", tier="vvip", preferred_location_id=london.id)
    factories.customer(name="Brand New")
    old = factories.customer(name="Long Ago", created_at=utcnow() - timedelta(days=800))
    long_ago = utcnow() - timedelta(days=500)
    factories.booking(factories.item(london), who=old, status="completed", starts_at=long_ago).created_at = long_ago
    concierge = login_as("concierge")
    names = lambda url: [a.get_text() for a in concierge.page(url).select("#results tbody td:first-child a")]  # noqa: E731
    assert names("/customers?segment=vip") == ["Velvet Rope"]
    assert names("/customers?segment=at_risk") == ["Long Ago"]
    assert names("/customers?segment=new&sort=-name") == ["Velvet Rope", "Brand New"]
    assert names(f"/customers?location={london.id}") == ["Velvet Rope"]
    assert names("/customers?tier=vvip&q=velvet") == ["Velvet Rope"]
    row = concierge.page("/customers?q=long").select_one("#results tbody tr")
    assert [b["data-segment"] for b in row.select("[data-segment]")] == ["at_risk"]


def test_list_search_as_you_type_returns_only_the_results(login_as):
    factories.customer(name="Grace Hopper")
    response = login_as("concierge").get("/customers?q=grace", headers={"HX-Request": "true"})
    fragment = soup(response)
    assert fragment.find("html") is None and "Grace Hopper" in fragment.select_one("tbody").get_text()


def test_search_fragment_lists_up_to_ten_customers_with_their_ids(login_as):
    ids = [factories.customer(name=f"Hopper {n:02d}", phone="+442079460958").id for n in range(12)]
    fragment = soup(login_as("concierge").get("/customers/search?q=hopper", headers={"HX-Request": "true"}))
    options = fragment.select("[data-customer-id]")
    assert fragment.find("html") is None and len(options) == 10
    assert [int(o["data-customer-id"]) for o in options] == ids[:10]
    assert {"Hopper 00", "+442079460958", "Standard"} <= set(options[0].stripped_strings)


def test_search_fragment_says_when_nothing_matches(login_as):
    fragment = soup(login_as("concierge").get("/customers/search?q=nobody"))
    assert fragment.select("[data-customer-id]") == [] and "No customer matches" in fragment.get_text()


# The customer page.

def test_customer_page_shows_history_money_per_currency_messages_and_segments(login_as):
    customer = factories.customer(name="Ada Lovelace", tier="vvip", loyalty_points=5400)
    london = factories.item()
    tokyo = factories.item(factories.location("TYO", name="Tokyo", city="Tokyo", country="JP", timezone="Asia/Tokyo",
                                              currency="JPY"), daily_rate=350000)
    done = factories.booking(london, who=customer, status="completed", starts_at=utcnow() - timedelta(days=20))
    paid(done, refunded=40000)
    paid(factories.booking(tokyo, who=customer, status="completed", days=1, starts_at=utcnow() - timedelta(days=9)))
    sent(customer, "Your Ferrari is ready")
    page = login_as("concierge").page(f"/customers/{customer.id}")
    assert page.select_one("[data-status]")["data-status"] == "vvip"
    value = {e["data-lifetime-value"]: e.get_text() for e in page.select("[data-lifetime-value]")}
    assert value == {"GBP": "£5,000.00", "JPY": "¥350,000"}
    average = {e["data-average-booking"]: e.get_text() for e in page.select("[data-average-booking]")}
    assert average == {"GBP": "£5,400.00", "JPY": "¥350,000"}
    assert page.select_one("[data-booking-count]").get_text() == "2"
    assert done.reference in page.select_one("#history").get_text()
    assert "Late handover" in page.select_one("#refunds").get_text()
    assert len(page.select("#payments tbody tr")) == 2
    assert "Your Ferrari is ready" in page.select_one("#messages").get_text()
    assert {b["data-segment"] for b in page.select("[data-segment]")} == {"vip", "repeat", "new"}
    assert page.select_one("[data-loyalty-points]")["data-loyalty-points"] == "5400"


def test_booking_history_pages_as_an_htmx_fragment(login_as):
    customer = factories.customer()
    car = factories.item(buffer_before_hours=0, buffer_after_hours=0)
    for n in range(12):
        factories.booking(car, who=customer, starts_at=utcnow() + timedelta(days=10 * n + 1))
    concierge = login_as("concierge")
    assert len(concierge.page(f"/customers/{customer.id}").select("#history tbody tr")) == 10
    response = concierge.get(f"/customers/{customer.id}?page=2", headers={"HX-Request": "true"})
    fragment = soup(response)
    assert fragment.find("html") is None and len(fragment.select("tbody tr")) == 2


def test_possible_duplicates_are_suggested_and_only_admins_see_merge(login_as):
    customer = factories.customer(name="Ada Lovelace", phone="+442079460958")
    twin = factories.customer(name="Augusta King", phone="+442079460958")
    concierge_page = login_as("concierge").page(f"/customers/{customer.id}")
    item = concierge_page.select_one(f'#duplicates [data-duplicate-id="{twin.id}"]')
    assert "Same phone" in item.get_text() and item.select_one("form") is None
    admin_page = login_as("admin").page(f"/customers/{customer.id}")
    form = admin_page.select_one(f'#duplicates [data-duplicate-id="{twin.id}"] form')
    assert form["action"] == f"/customers/{customer.id}/merge"


# Merges and privacy.

def test_admin_merges_a_duplicate_moving_its_bookings_and_points(login_as):
    survivor = factories.customer(name="Ada Lovelace", loyalty_points=100)
    duplicate = factories.customer(name="Ada Lovelace", loyalty_points=50)
    booking = factories.booking(factories.item(), who=duplicate)
    duplicate_id = duplicate.id
    admin = login_as("admin")
    unconfirmed = admin.post(f"/customers/{survivor.id}/merge", {"duplicate_id": str(duplicate_id)})
    assert unconfirmed.status_code == 422 and "confirm" in soup(unconfirmed).select_one("#merge-errors").get_text()
    assert db.session.get(Customer, duplicate_id) is not None
    response = admin.post(f"/customers/{survivor.id}/merge", {"duplicate_id": str(duplicate_id), "confirm": "y"})
    assert response.status_code == 302
    assert db.session.get(Customer, duplicate_id) is None
    assert db.session.get(Booking, booking.id).customer_id == survivor.id
    assert db.session.get(Customer, survivor.id).loyalty_points == 150
    assert booking.reference in admin.page(f"/customers/{survivor.id}").select_one("#history").get_text()


def test_merge_into_itself_is_refused_with_a_reason(login_as):
    customer = factories.customer()
    response = login_as("owner").post(f"/customers/{customer.id}/merge", {"duplicate_id": str(customer.id),
                                                                          "confirm": "y"})
    assert response.status_code == 422 and "itself" in soup(response).select_one("#merge-errors").get_text()


def test_concierges_cannot_merge_export_or_erase(login_as):
    one, two = factories.customer(), factories.customer()
    concierge = login_as("concierge")
    assert concierge.post(f"/customers/{one.id}/merge", {"duplicate_id": str(two.id), "confirm": "y"}).status_code \
        == 403
    assert concierge.get(f"/customers/{one.id}/export.json").status_code == 403
    assert concierge.post(f"/customers/{one.id}/erase", {"confirm": "y"}).status_code == 403
    assert db.session.query(Customer).count() == 2 and db.session.get(Customer, one.id).erased_at is None
    assert concierge.page(f"/customers/{one.id}").select_one("#privacy") is None


def test_export_is_a_json_download_of_everything(login_as):
    customer = factories.customer(name="Ada Lovelace", phone="+442079460958")
    booking = factories.booking(factories.item(), who=customer)
    paid(booking, refunded=1000)
    sent(customer, "Welcome")
    response = login_as("admin").get(f"/customers/{customer.id}/export.json")
    assert response.status_code == 200 and response.mimetype == "application/json"
    assert response.headers["Content-Disposition"] == f'attachment; filename="customer-{customer.id}.json"'
    data = json.loads(response.get_data(as_text=True))
    assert data["customer"]["email"] == customer.email and data["customer"]["phone"] == "+442079460958"
    assert data["bookings"][0]["reference"] == booking.reference
    assert data["bookings"][0]["payments"][0]["refunds"][0]["reason"] == "Late handover"
    assert data["notifications"][0]["subject"] == "Welcome"
    assert db.session.query(AuditEntry).filter_by(action="customer.exported").count() == 1


def test_erase_needs_confirmation_then_removes_personal_data_but_keeps_the_money(login_as):
    customer = factories.customer(name="Ada Lovelace", phone="+442079460958", notes="Villa gate code 1234")
    booking = factories.booking(factories.item(), who=customer, status="completed")
    payment = paid(booking)
    admin = login_as("owner")
    unconfirmed = admin.post(f"/customers/{customer.id}/erase", {})
    assert unconfirmed.status_code == 422 and "confirm" in errors_of(unconfirmed)["confirm"]
    assert db.session.get(Customer, customer.id).erased_at is None
    assert admin.post(f"/customers/{customer.id}/erase", {"confirm": "y"}).status_code == 302
    page = admin.page(f"/customers/{customer.id}")
    text = page.get_text()
    assert page.h1.get_text() == f"Erased customer #{customer.id}" and page.select_one("[data-erased]")
    assert "Ada" not in text and "+442079460958" not in text and "1234" not in text
    assert booking.reference in page.select_one("#history").get_text()
    assert db.session.get(Payment, payment.id).amount == booking.total_amount
    refused = admin.get(f"/customers/{customer.id}/edit")
    assert refused.status_code == 422 and "erased on request" in refused.get_data(as_text=True)
    assert admin.post(f"/customers/{customer.id}/edit", FORM).status_code == 422
    assert db.session.get(Customer, customer.id).name == f"Erased customer #{customer.id}"


# Escaping.

@pytest.mark.parametrize("name", XSS_NAMES)
def test_names_that_look_like_html_are_shown_escaped_everywhere(login_as, name):
    customer = factories.customer(name=name, notes=name, phone="+442079460958")
    factories.customer(name=name, email="twin@example.com", phone="+442079460958")  # shown as a duplicate
    admin = login_as("admin")
    pages = {
        "list": admin.get("/customers"),
        "list fragment": admin.get("/customers?q=alert", headers={"HX-Request": "true"}),
        "customer page": admin.get(f"/customers/{customer.id}"),
        "edit form": admin.get(f"/customers/{customer.id}/edit"),
        "search fragment": admin.get("/customers/search?q=alert", headers={"HX-Request": "true"}),
    }
    for where, response in pages.items():
        parsed = assert_inert(response, where)
        assert name in parsed.get_text(), where  # shown, as text


# Fuzzing: whatever is posted, never a 500, and refused input changes nothing.

PROFILE = ["name", "email", "phone", "tier", "notes", "email_opt_in", "sms_opt_in", "marketing_consent",
           "preferred_location_id"]
VALID = {"name": "Ada Lovelace", "phone": "+44 20 7946 0958", "tier": "premium", "notes": "Quiet suite",
         "email_opt_in": "y", "sms_opt_in": "", "marketing_consent": "y", "preferred_location_id": ""}
junk = st.one_of(st.text(max_size=60), st.sampled_from(["", " ", "vvip", "1", "99999999999999999999", "020 7946 0958",
                                                        "a@example.com", "x" * 300, "\x00", "<b>", "None"]))


@st.composite
def fuzzed_form(draw, email: str) -> dict[str, str]:
    """A valid profile with a few fields replaced by arbitrary text and a few left out."""
    corrupted = draw(st.dictionaries(st.sampled_from(PROFILE), junk, max_size=4))
    dropped = draw(st.sets(st.sampled_from(PROFILE), max_size=2))
    form = {**VALID, "email": email, **corrupted}
    return {key: value for key, value in form.items() if key not in dropped}


@pytest.fixture
def fuzz_target(login_as):
    """Set up once for all examples of the run (function-scoped fixtures are not reset between examples)."""
    return login_as("admin"), factories.customer(name="Fuzz Target", email="fuzz@example.com").id


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(edit=fuzzed_form("edit@example.com"), new=fuzzed_form("new@example.com"))
def test_fuzzed_customer_forms_never_fail_and_refused_input_changes_nothing(fuzz_target, edit, new):
    admin, target_id = fuzz_target
    before = audit_service.snapshot(db.session.get(Customer, target_id), PROFILE)
    audit_before = db.session.query(AuditEntry).count()

    edited = admin.post(f"/customers/{target_id}/edit", edit)
    created = admin.post("/customers/new", new)

    # 400: a NUL character, refused for every field before any view runs
    assert {edited.status_code, created.status_code} <= {302, 400, 422}, (edited.status_code, created.status_code)
    if edited.status_code in (400, 422):
        assert audit_service.snapshot(db.session.get(Customer, target_id), PROFILE) == before
    assert db.session.query(Customer).count() == 1 + (created.status_code == 302)
    added = db.session.query(AuditEntry).count() - audit_before - (created.status_code == 302)
    assert added in ((0, 1) if edited.status_code == 302 else (0,))
    for saved in db.session.query(Customer):
        assert saved.email == saved.email.lower() and (saved.phone is None or saved.phone.startswith("+"))
    db.session.query(Customer).filter(Customer.id != target_id).delete()
    db.session.commit()
