"""The fleet as staff manage it: list, add, edit, status, calendar, blackouts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from midas.extensions import db
from midas.models import AuditEntry, Blackout, Item, utcnow
from tests import factories
from tests.conftest import soup

ITEM_FORM = {"name": "Lamborghini Revuelto", "category": "car", "daily_rate": "2,450.50", "security_deposit": "10000",
             "insurance_rate_bp": "800", "buffer_before_hours": "2", "buffer_after_hours": "3", "min_days": "1",
             "status": "active", "seats": "2"}


def test_admin_adds_an_item_priced_in_its_locations_currency(login_as):
    loc = factories.location()
    admin = login_as("admin")
    response = admin.post("/inventory/new", {**ITEM_FORM, "location_id": str(loc.id)})
    assert response.status_code == 302
    item = db.session.query(Item).one()
    assert (item.currency, item.daily_rate, item.security_deposit) == ("GBP", 245050, 1000000)
    assert item.specs == {"seats": 2}
    page = admin.page(response.headers["Location"])
    assert "£2,450.50" in page.get_text() and page.select_one("[data-status]")["data-status"] == "active"
    assert db.session.query(AuditEntry).filter_by(action="item.created").count() == 1


def test_zero_decimal_location_refuses_fractions_of_a_yen(login_as):
    loc = factories.location("TYO", name="Tokyo Ginza", city="Tokyo", country="JP", timezone="Asia/Tokyo",
                             currency="JPY")
    response = login_as("owner").post("/inventory/new", {**ITEM_FORM, "location_id": str(loc.id),
                                                         "daily_rate": "350000.50"})
    assert response.status_code == 422
    assert "is not an amount in JPY" in soup(response).select_one("#daily_rate-errors").get_text()
    assert db.session.query(Item).count() == 0


def test_item_form_reports_every_bad_field_and_saves_nothing(login_as):
    loc = factories.location()
    bad = {**ITEM_FORM, "location_id": str(loc.id), "name": "", "daily_rate": "lots", "min_days": "0",
           "insurance_rate_bp": "20000"}
    response = login_as("admin").post("/inventory/new", bad)
    assert response.status_code == 422
    errors = {e["id"] for e in soup(response).select(".field-error")}
    assert {"name-errors", "daily_rate-errors", "min_days-errors", "insurance_rate_bp-errors"} <= errors
    assert db.session.query(Item).count() == 0


def test_admin_edits_an_item_and_the_change_is_audited(login_as):
    item = factories.item()
    admin = login_as("admin")
    form = admin.page(f"/inventory/{item.id}/edit")
    assert form.select_one("input[name=daily_rate]")["value"] == "1800.00"
    response = admin.post(f"/inventory/{item.id}/edit", {**ITEM_FORM, "location_id": str(item.location_id),
                                                         "daily_rate": "1900"})
    assert response.status_code == 302
    assert db.session.get(Item, item.id).daily_rate == 190000
    entry = db.session.query(AuditEntry).filter_by(action="item.updated").one()
    assert entry.before["daily_rate"] == 180000 and entry.after["daily_rate"] == 190000


def test_concierge_reads_the_fleet_but_cannot_change_it(login_as):
    item = factories.item()
    concierge = login_as("concierge")
    page = concierge.page("/inventory")
    assert "Add an item" not in page.get_text() and page.select_one("select[name=status].compact") is None
    assert concierge.get("/inventory/new").status_code == 403
    assert concierge.post(f"/inventory/{item.id}/status", {"status": "retired"}).status_code == 403
    assert db.session.get(Item, item.id).status == "active"


def test_inline_status_change_returns_just_the_row(login_as):
    item = factories.item()
    response = login_as("admin").post(f"/inventory/{item.id}/status", {"status": "maintenance"}, htmx=True)
    row = soup(response).find("tr")
    assert row["id"] == f"item-{item.id}" and soup(response).find("html") is None
    assert row.select_one("[data-status]")["data-status"] == "maintenance"
    assert db.session.get(Item, item.id).status == "maintenance"


def test_inventory_filters_by_category_location_status_and_name(login_as):
    london, tokyo = factories.location(), factories.location("TYO", name="Tokyo", city="Tokyo", country="JP",
                                                            timezone="Asia/Tokyo", currency="JPY")
    factories.item(london, name="Ferrari Roma")
    factories.item(london, name="Sunseeker 95", category="yacht")
    factories.item(tokyo, name="Ferrari Purosangue", daily_rate=350000)
    concierge = login_as("concierge")
    names = lambda url: [a.get_text() for a in concierge.page(url).select("#results tbody td:first-child a")]  # noqa: E731
    assert names(f"/inventory?category=car&location={tokyo.id}") == ["Ferrari Purosangue"]
    assert names("/inventory?q=ferrari&sort=-name") == ["Ferrari Roma", "Ferrari Purosangue"]
    assert names("/inventory?status=retired") == []
    assert "Cars: 2" in concierge.page("/inventory").get_text()


def test_item_page_shows_a_month_calendar_with_bookings_and_buffers(login_as):
    item = factories.item(buffer_before_hours=24)
    start = datetime(2031, 3, 10, 10, tzinfo=UTC)
    booking = factories.booking(item, starts_at=start, days=2)
    page = login_as("concierge").page(f"/inventory/{item.id}?month=2031-03")
    assert page.select_one("[data-month]")["data-month"] == "2031-03"
    day = lambda d: page.select_one(f'td[data-date="{d}"]')  # noqa: E731
    assert booking.reference in day("2031-03-10").get_text()
    assert "Buffer" in day("2031-03-09").get_text()
    assert day("2031-03-13").select(".entry") == []


def test_calendar_moves_to_next_month_as_an_htmx_fragment(login_as):
    item = factories.item()
    response = login_as("concierge").get(f"/inventory/{item.id}?month=2031-12", headers={"HX-Request": "true"})
    fragment = soup(response)
    assert fragment.find("html") is None and fragment.select_one("[data-month]")["data-month"] == "2031-12"
    assert fragment.select_one("a[rel=next]")["href"].endswith("month=2032-01")


def test_utilization_counts_sold_days_of_the_last_ninety(login_as):
    item = factories.item(buffer_before_hours=0, buffer_after_hours=0)
    factories.booking(item, starts_at=utcnow() - timedelta(days=30), days=9, status="completed")
    factories.booking(item, starts_at=utcnow() - timedelta(days=10), days=3, status="cancelled")
    page = login_as("concierge").page(f"/inventory/{item.id}")
    assert page.select_one("[data-utilization]")["data-utilization"] == "1000"  # 9 of 90 days
    assert "10.0%" in page.get_text()


def test_admin_adds_a_blackout_in_local_time(login_as):
    item = factories.item()
    admin = login_as("admin")
    response = admin.post(f"/inventory/{item.id}/blackouts", {"starts_at": "2031-07-01T09:00",
                                                             "ends_at": "2031-07-03T18:00", "reason": "Annual service"})
    assert response.status_code == 302
    blackout = db.session.query(Blackout).one()
    assert blackout.starts_at == datetime(2031, 7, 1, 8, tzinfo=UTC)  # 09:00 BST
    assert "Annual service" in admin.page(f"/inventory/{item.id}?month=2031-07").select_one(
        'td[data-date="2031-07-02"]').get_text()


def test_blackout_over_a_confirmed_booking_is_refused_naming_it(login_as):
    item = factories.item()
    booking = factories.booking(item, starts_at=datetime(2031, 7, 2, 10, tzinfo=UTC))
    response = login_as("admin").post(f"/inventory/{item.id}/blackouts", {
        "starts_at": "2031-07-01T09:00", "ends_at": "2031-07-03T18:00", "reason": "Service"})
    assert response.status_code == 422
    assert booking.reference in soup(response).select_one("#starts_at-errors").get_text()
    assert db.session.query(Blackout).count() == 0


def test_blackout_is_changed_and_removed(login_as):
    item = factories.item()
    admin = login_as("admin")
    admin.post(f"/inventory/{item.id}/blackouts", {"starts_at": "2031-07-01T09:00", "ends_at": "2031-07-02T09:00",
                                                  "reason": "Tyres"})
    blackout = db.session.query(Blackout).one()
    assert admin.page(f"/inventory/blackouts/{blackout.id}/edit").select_one("input[name=starts_at]")["value"] == \
        "2031-07-01T09:00"
    admin.post(f"/inventory/blackouts/{blackout.id}/edit", {"starts_at": "2031-07-01T09:00",
                                                           "ends_at": "2031-07-04T09:00", "reason": "Tyres and brakes"})
    assert db.session.get(Blackout, blackout.id).reason == "Tyres and brakes"
    admin.post(f"/inventory/blackouts/{blackout.id}/delete")
    assert db.session.query(Blackout).count() == 0
    actions = [e.action for e in db.session.query(AuditEntry).order_by(AuditEntry.id)]
    assert actions[-3:] == ["blackout.added", "blackout.changed", "blackout.removed"]


def test_availability_search_lists_only_items_free_for_the_local_dates(login_as):
    loc = factories.location()
    free, busy = factories.item(loc, name="Aston Martin DBS"), factories.item(loc, name="Bentley Bacalar")
    factories.item(loc, name="Retired Rolls", status="retired")
    factories.booking(busy, starts_at=datetime(2031, 5, 3, 9, tzinfo=UTC), days=2)
    page = login_as("concierge").page(f"/inventory/available?location={loc.id}&starts_on=2031-05-01&ends_on=2031-05-04")
    assert [a.get_text() for a in page.select("#results tbody a")] == [free.name]


def test_availability_search_explains_backwards_dates(login_as):
    loc = factories.location()
    page = login_as("concierge").page(f"/inventory/available?location={loc.id}&starts_on=2031-05-04&ends_on=2031-05-01")
    assert "end date must be after" in page.select_one(".field-error").get_text()
