"""Customer rules called directly: profiles, segments, value, duplicates, merges, export and erasure."""

from __future__ import annotations

import secrets
from datetime import timedelta

import pytest

from midas.extensions import db
from midas.models import (
    AuditEntry,
    Booking,
    BookingLine,
    Customer,
    ErrorEvent,
    ErrorGroup,
    Notification,
    Payment,
    Refund,
    utcnow,
)
from midas.services import InvalidInput, PermissionDenied, customers
from midas.services.customers import CustomerFilters, CustomerInput
from tests import factories
from tests.conftest import make_staff

pytestmark = pytest.mark.usefixtures("app")


@pytest.fixture
def concierge(app):
    return make_staff("concierge")


@pytest.fixture
def admin(app):
    return make_staff("admin")


def paid(booking: Booking, amount: int | None = None, refunded: int = 0, kind: str = "charge",
         status: str = "succeeded") -> Payment:
    """A payment on the booking, captured in full when it succeeded; `refunded` also leaves a refund row."""
    amount = amount or booking.total_amount
    payment = Payment(booking=booking, provider="stripe", kind=kind, status=status, amount=amount,
                      currency=booking.currency, amount_captured=amount if status == "succeeded" else 0,
                      amount_refunded=refunded, idempotency_key=secrets.token_hex(8), succeeded_at=utcnow())
    db.session.add(payment)
    if refunded:
        db.session.add(Refund(payment=payment, booking=booking, amount=refunded, currency=booking.currency,
                              status="succeeded", reason="Goodwill", idempotency_key=secrets.token_hex(8)))
    db.session.commit()
    return payment


def message(customer: Customer, **fields) -> Notification:
    defaults = {"dedupe_key": secrets.token_hex(8), "channel": "email", "template": "booking_confirmed",
                "recipient": customer.email, "subject": f"Your booking, {customer.name}",
                "context": {"name": customer.name}, "status": "sent"}
    note = Notification(customer_id=customer.id, **{**defaults, **fields})
    db.session.add(note)
    db.session.commit()
    return note


def profile(**fields) -> CustomerInput:
    return CustomerInput(**{"name": "Ada Lovelace", "email": "Ada@Example.com", **fields})


# Profiles.

def test_new_customer_gets_a_lowercase_email_an_e164_phone_and_an_audit_entry(concierge):
    customer = customers.create_customer(concierge, profile(phone="+44 20 7946 0958", notes="  Prefers Ferraris  "))
    assert (customer.email, customer.phone, customer.tier) == ("ada@example.com", "+442079460958", "standard")
    assert customer.notes == "Prefers Ferraris"
    entry = db.session.query(AuditEntry).filter_by(action="customer.created").one()
    assert entry.after["email"] == "ada@example.com" and entry.actor_id == concierge.id


def test_national_numbers_are_read_in_the_preferred_locations_country(concierge):
    paris = factories.location("PAR", name="Paris", city="Paris", country="FR", timezone="Europe/Paris",
                               currency="EUR")
    in_paris = customers.create_customer(concierge, profile(phone="01 42 68 53 00", preferred_location_id=paris.id))
    in_london = customers.create_customer(concierge, profile(email="b@example.com", phone="020 7946 0958"))
    assert (in_paris.phone, in_london.phone) == ("+33142685300", "+442079460958")


@pytest.mark.parametrize(("fields", "field"), [
    ({"email": "not-an-email"}, "email"),
    ({"email": "someone@localhost"}, "email"),
    ({"phone": "12"}, "phone"),
    ({"phone": "+44 20 7946"}, "phone"),
    ({"name": "   "}, "name"),
    ({"name": "Ada\x00Lovelace"}, "name"),
    ({"preferred_location_id": 999}, "preferred_location_id"),
])
def test_bad_profiles_name_the_field_and_save_nothing(concierge, fields, field):
    with pytest.raises(InvalidInput) as refused:
        customers.create_customer(concierge, profile(**fields))
    assert refused.value.field == field
    db.session.rollback()
    assert db.session.query(Customer).count() == 0 and db.session.query(AuditEntry).count() == 0


def test_an_email_already_taken_is_refused_naming_its_owner(concierge):
    first = factories.customer(name="Ada King", email="ada@example.com")
    with pytest.raises(InvalidInput, match="Ada King") as refused:
        customers.create_customer(concierge, profile(email="ADA@example.com"))
    assert refused.value.field == "email"
    other = factories.customer(email="other@example.com")
    with pytest.raises(InvalidInput):
        customers.update_customer(concierge, other.id, profile(email="ada@example.com"))
    db.session.rollback()
    assert db.session.get(Customer, other.id).email == "other@example.com"
    assert customers.update_customer(concierge, first.id, profile(email="ada@example.com")).id == first.id


def test_only_admins_change_the_tier_even_when_a_concierge_sends_one(concierge, admin):
    customer = factories.customer()
    with pytest.raises(PermissionDenied):
        customers.update_customer(concierge, customer.id, profile(tier="vvip"))
    with pytest.raises(PermissionDenied):
        customers.create_customer(concierge, profile(email="new@example.com", tier="premium"))
    db.session.rollback()
    assert db.session.get(Customer, customer.id).tier == "standard"
    customers.update_customer(concierge, customer.id, profile(tier=None, name="Kept Tier"))
    assert customers.update_customer(admin, customer.id, profile(tier="vvip", name="Kept Tier")).tier == "vvip"
    entry = db.session.query(AuditEntry).filter_by(action="customer.updated").order_by(AuditEntry.id.desc()).first()
    assert (entry.before, entry.after) == ({"tier": "standard"}, {"tier": "vvip"})


def test_marketing_consent_records_when_and_who_only_when_it_changes(concierge):
    start = utcnow() - timedelta(days=3)
    customer = customers.create_customer(concierge, profile(marketing_consent=True), now=start)
    assert customer.marketing_consent_at == start
    assert customer.marketing_consent_source == f"staff:{concierge.email}"
    customers.update_customer(concierge, customer.id, profile(marketing_consent=True, notes="VIP lounge"))
    assert db.session.get(Customer, customer.id).marketing_consent_at == start
    later = utcnow()
    withdrawn = customers.update_customer(concierge, customer.id, profile(marketing_consent=False), now=later)
    assert (withdrawn.marketing_consent, withdrawn.marketing_consent_at) == (False, later)


def test_saving_without_changes_adds_no_audit_entry(concierge):
    customer = customers.create_customer(concierge, profile())
    customers.update_customer(concierge, customer.id, profile())
    assert db.session.query(AuditEntry).filter_by(action="customer.updated").count() == 0


# Search and listing.

def test_search_finds_by_name_email_or_a_nationally_typed_phone_and_skips_erased():
    factories.customer(name="Grace Hopper", email="grace@navy.example", phone="+442079460958")
    factories.customer(name="Grace Erased", email="erased-9@invalid", erased_at=utcnow())
    factories.customer(name="Alan Turing", email="alan@example.com")
    assert [c.name for c in customers.search_customers("grace")] == ["Grace Hopper"]
    assert [c.name for c in customers.search_customers("020 7946 0958")] == ["Grace Hopper"]
    assert [c.name for c in customers.search_customers("NAVY.ex")] == ["Grace Hopper"]
    assert customers.search_customers("g") == []


def test_search_returns_at_most_ten():
    for n in range(12):
        factories.customer(name=f"Smith {n:02d}")
    assert len(customers.search_customers("smith")) == 10


def test_list_filters_by_preferred_location_and_treats_wildcards_literally():
    london = factories.location()
    factories.customer(name="Ada 100% Lovelace", preferred_location_id=london.id)
    factories.customer(name="Ada Other")
    names = lambda **f: [c.name for c in customers.list_customers(CustomerFilters(**f))[0].items]  # noqa: E731
    assert names(location_id=london.id) == ["Ada 100% Lovelace"]
    assert names(q="100%") == ["Ada 100% Lovelace"]
    assert names(q="_") == []


# Segments and value.

@pytest.fixture
def crafted():
    """Customers whose segments are known by construction, at `now`."""
    now = utcnow()
    car = factories.item(buffer_before_hours=0, buffer_after_hours=0)

    def make(name: str, created_days_ago: int = 400, **fields) -> Customer:
        return factories.customer(name=name, created_at=now - timedelta(days=created_days_ago), **fields)

    def book(who: Customer, starts_days_ago: int, status: str = "completed", created_days_ago: int | None = None,
             days: int = 2) -> Booking:
        booking = factories.booking(car, starts_at=now - timedelta(days=starts_days_ago), status=status, who=who,
                                    days=days)
        booking.created_at = now - timedelta(days=created_days_ago or starts_days_ago + 10)
        db.session.commit()
        return booking

    people = {
        "brand_new": make("Brand New", created_days_ago=5),
        "first_booking": make("First Booking"),
        "repeat": make("Repeat Regular"),
        "lapsed": make("Lapsed Lord"),
        "vvip": make("Velvet VVIP", tier="vvip"),
        "big_spender": make("Big Spender"),
        "only_cancelled": make("Only Cancelled", created_days_ago=200),
    }
    book(people["first_booking"], starts_days_ago=-20, status="confirmed", created_days_ago=10)
    book(people["repeat"], 100)
    book(people["repeat"], 40)
    book(people["lapsed"], 450)
    book(people["lapsed"], 400, status="cancelled", created_days_ago=420)
    whale = book(people["big_spender"], 200, days=1)
    paid(whale, amount=6_000_000)  # £60,000: high value, not VIP (£250,000)
    book(people["only_cancelled"], 100, status="cancelled")
    return now, people


def test_segments_are_computed_from_bookings_and_money(crafted):
    now, people = crafted
    found = customers.segments_for([c.id for c in people.values()], now)
    by_name = {key: set(found[c.id]) for key, c in people.items()}
    assert by_name == {
        "brand_new": {"new"}, "first_booking": {"new"}, "repeat": {"repeat"}, "lapsed": {"at_risk"},
        "vvip": {"vip"}, "big_spender": {"high_value"}, "only_cancelled": set(),
    }


@pytest.mark.parametrize(("segment", "expected"), [
    ("new", {"Brand New", "First Booking"}), ("repeat", {"Repeat Regular"}), ("at_risk", {"Lapsed Lord"}),
    ("vip", {"Velvet VVIP"}), ("high_value", {"Big Spender"}),
])
def test_list_filters_by_segment(crafted, segment, expected):
    now, _ = crafted
    page, _ = customers.list_customers(CustomerFilters(segment=segment), now=now)
    assert {c.name for c in page.items} == expected


def test_lifetime_value_above_the_threshold_in_one_currency_makes_a_vip(crafted):
    now, people = crafted
    whale = people["big_spender"].bookings.first()
    paid(whale, amount=20_000_000)  # now £260,000 in all
    assert set(customers.segments_for([people["big_spender"].id], now)[people["big_spender"].id]) == {
        "vip", "high_value"}


def test_lifetime_value_is_per_currency_net_of_refunds_and_ignores_deposits_and_failures():
    customer = factories.customer()
    london = factories.item()
    tokyo = factories.item(factories.location("TYO", name="Tokyo", city="Tokyo", country="JP",
                                              timezone="Asia/Tokyo", currency="JPY"), daily_rate=350000)
    gbp = factories.booking(london, who=customer, status="completed", days=2,
                            starts_at=utcnow() - timedelta(days=30))  # £3,600
    jpy = factories.booking(tokyo, who=customer, status="confirmed", days=1)  # ¥350,000, starting next week
    factories.booking(london, who=customer, status="cancelled", starts_at=utcnow() + timedelta(days=40))
    paid(gbp, refunded=50000)
    paid(gbp, amount=500000, kind="deposit")
    paid(gbp, amount=1000, status="failed")
    paid(jpy)
    page = customers.customer_page(customer.id)
    assert page.lifetime_value == {"GBP": 310000, "JPY": 350000}
    assert page.stats.average == {"GBP": 360000, "JPY": 350000}
    assert (page.stats.count, page.stats.last_at, page.stats.next_at) == (2, gbp.starts_at, jpy.starts_at)
    assert page.counts == {"payments": 4, "refunds": 1, "messages": 0}


# Duplicates and merges.

def test_possible_duplicates_by_mailbox_phone_and_similar_name():
    ada = factories.customer(name="Ada Lovelace", email="ada.lovelace@gmail.com", phone="+442079460958")
    same_mailbox = factories.customer(name="A. King", email="ada.lovelace+rentals@gmail.com")
    gmail_dots = factories.customer(name="Countess", email="a.d.a.lovelace@gmail.com")
    same_phone = factories.customer(name="Augusta King", email="augusta@example.com", phone="+442079460958")
    typo = factories.customer(name="Ada Lovelace", email="ada@example.org")
    accent = factories.customer(name="Adá Lovelacé", email="ada2@example.org")
    factories.customer(name="Alan Lovelace", email="alan@example.org")
    factories.customer(name="Ada Lovelace", email="gone@invalid", erased_at=utcnow())
    found = {d.customer.id: d.reasons for d in customers.possible_duplicates(ada)}
    assert found == {same_mailbox.id: ["Same email"], same_phone.id: ["Same phone"], typo.id: ["Similar name"],
                     accent.id: ["Similar name"], gmail_dots.id: ["Same email"]}


def test_plus_tags_match_at_any_domain_but_dots_only_at_gmail():
    grace = factories.customer(name="Grace Hopper", email="grace@navy.example")
    tagged = factories.customer(name="G H", email="grace+yachts@navy.example")
    factories.customer(name="G R", email="g.race@navy.example")
    assert [d.customer.id for d in customers.possible_duplicates(grace)] == [tagged.id]
    assert [d.customer.id for d in customers.possible_duplicates(tagged)] == [grace.id]


def test_merge_moves_bookings_messages_and_errors_sums_points_and_keeps_the_latest_consent(admin):
    now = utcnow()
    survivor = factories.customer(name="Ada Lovelace", email="ada@example.com", loyalty_points=120, phone=None,
                                  marketing_consent=False, marketing_consent_at=now - timedelta(days=30),
                                  marketing_consent_source="staff:old@midas.test")
    duplicate = factories.customer(name="Ada Lovelace", email="ada.l@example.com", loyalty_points=80,
                                   phone="+442079460958", notes="Allergic to lilies", marketing_consent=True,
                                   marketing_consent_at=now - timedelta(days=2), marketing_consent_source="web")
    car = factories.item()
    booking = factories.booking(car, who=duplicate)
    payment = paid(booking)
    message(duplicate)
    group = ErrorGroup(fingerprint="f" * 64, category="PAYMENT", severity="HIGH", error_type="CardError", message="x")
    db.session.add(ErrorEvent(group=group, severity="HIGH", message="declined", customer_id=duplicate.id))
    db.session.commit()
    duplicate_id = duplicate.id

    merged = customers.merge_customers(admin, survivor.id, duplicate_id)

    assert db.session.get(Customer, duplicate_id) is None
    assert db.session.get(Booking, booking.id).customer_id == survivor.id
    assert db.session.get(Payment, payment.id).booking.customer_id == survivor.id
    assert db.session.query(Notification).one().customer_id == survivor.id
    assert db.session.query(ErrorEvent).one().customer_id == survivor.id
    assert (merged.email, merged.loyalty_points, merged.phone, merged.notes) == (
        "ada@example.com", 200, "+442079460958", "Allergic to lilies")
    assert (merged.marketing_consent, merged.marketing_consent_source) == (True, "web")
    entry = db.session.query(AuditEntry).filter_by(action="customer.merged").one()
    assert entry.entity_id == str(survivor.id) and entry.after["duplicate_id"] == duplicate_id
    assert entry.after["bookings_moved"] == 1 and entry.before["loyalty_points"] == 120
    away = db.session.query(AuditEntry).filter_by(action="customer.merged_away").one()
    assert away.entity_id == str(duplicate_id) and away.before["email"] == "ada.l@example.com"


def test_merge_keeps_the_survivors_consent_when_it_is_more_recent(admin):
    now = utcnow()
    survivor = factories.customer(marketing_consent=False, marketing_consent_at=now, marketing_consent_source="opt-out")
    duplicate = factories.customer(marketing_consent=True, marketing_consent_at=now - timedelta(days=9))
    merged = customers.merge_customers(admin, survivor.id, duplicate.id)
    assert (merged.marketing_consent, merged.marketing_consent_source) == (False, "opt-out")


def test_merge_is_refused_to_concierges_into_itself_and_for_unknown_or_erased_profiles(admin, concierge):
    one, two = factories.customer(), factories.customer()
    gone = factories.customer(erased_at=utcnow())
    with pytest.raises(PermissionDenied):
        customers.merge_customers(concierge, one.id, two.id)
    for duplicate_id in (one.id, 99999, gone.id, 10**20):
        with pytest.raises(InvalidInput):
            customers.merge_customers(admin, one.id, duplicate_id)
    db.session.rollback()
    assert db.session.query(Customer).count() == 3


# Privacy.

def test_export_holds_the_profile_bookings_with_lines_payments_refunds_and_messages(admin, concierge):
    customer = factories.customer(name="Ada Lovelace", phone="+442079460958")
    booking = factories.booking(factories.item(), who=customer)
    booking.lines = [BookingLine(position=0, kind="rental", description="3 days", amount=540000)]
    db.session.commit()
    paid(booking, refunded=1000)
    message(customer)
    with pytest.raises(PermissionDenied):
        customers.export_customer(concierge, customer.id)
    data = customers.export_customer(admin, customer.id)
    assert data["customer"]["name"] == "Ada Lovelace" and data["customer"]["phone"] == "+442079460958"
    [exported] = data["bookings"]
    assert exported["reference"] == booking.reference and exported["total_amount"] == booking.total_amount
    assert exported["lines"] == [{"kind": "rental", "description": "3 days", "amount": 540000}]
    assert exported["payments"][0]["refunds"][0]["amount"] == 1000
    assert data["notifications"][0]["recipient"] == customer.email
    assert db.session.query(AuditEntry).filter_by(action="customer.exported").count() == 1


def test_erasure_anonymises_the_person_but_keeps_bookings_and_money(admin, concierge):
    customer = factories.customer(name="Ada Lovelace", phone="+442079460958", notes="Lives in Mayfair",
                                  marketing_consent=True)
    booking = factories.booking(factories.item(), who=customer, status="completed")
    payment = paid(booking, refunded=1000)
    pending = message(customer, status="pending")
    with pytest.raises(PermissionDenied):
        customers.erase_customer(concierge, customer.id)
    erased = customers.erase_customer(admin, customer.id)
    assert (erased.name, erased.email, erased.phone, erased.notes) == (
        f"Erased customer #{customer.id}", f"erased-{customer.id}@invalid", None, "")
    assert not (erased.marketing_consent or erased.email_opt_in or erased.sms_opt_in) and erased.erased_at
    assert db.session.get(Booking, booking.id).total_amount == booking.total_amount
    assert db.session.get(Payment, payment.id).amount_refunded == 1000
    assert db.session.query(Refund).count() == 1
    note = db.session.get(Notification, pending.id)
    assert (note.recipient, note.subject, note.context, note.status) == ("erased", None, {}, "cancelled")
    entry = db.session.query(AuditEntry).filter_by(action="customer.erased").one()
    assert "Ada" not in str(entry.before) + str(entry.after)
    customers.erase_customer(admin, customer.id)
    assert db.session.query(AuditEntry).filter_by(action="customer.erased").count() == 1


def test_an_erased_profile_cannot_be_edited_back(admin):
    customer = factories.customer(erased_at=utcnow())
    with pytest.raises(Exception, match="erased"):
        customers.update_customer(admin, customer.id, profile())


def test_search_finds_an_email_or_phone_whatever_the_case_typed(concierge):
    ada = customers.create_customer(concierge, profile(phone="+44 20 7946 0958"))
    customers.create_customer(concierge, profile(name="Grace Hopper", email="grace@example.com", phone=""))

    for typed in ("ADA@EXAMPLE", "Ada@example.COM", "7946", "+4420", "lovelace"):
        page, _ = customers.list_customers(CustomerFilters(q=typed))
        assert [c.id for c in page.items] == [ada.id], typed
        assert [c.id for c in customers.search_customers(typed)] == [ada.id], typed
