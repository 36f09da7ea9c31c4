"""Staff find bookings on the dashboard, the today board and the fleet calendar; calendar apps read the feeds."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import icalendar

from midas.extensions import db
from midas.models import Blackout, utcnow
from midas.timeutil import day_bounds, to_local
from tests import factories
from tests.conftest import soup

XSS = ['<script>alert(1)</script>', '"><img src=x onerror=alert(1)>']
START = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def shown_references(page) -> list[str]:
    return [row["data-reference"] for row in page.select("tr[data-reference]")]


def later_today(tz: str) -> datetime:
    """A moment still ahead in the location's local today."""
    now = utcnow()
    end = day_bounds(to_local(now, tz).date(), tz)[1]
    return (now + (end - now) / 2).replace(microsecond=0)


def test_dashboard_filters_narrow_the_table(login_as):
    car, yacht = factories.item(), factories.item(category="yacht", name="Riva Aquariva")
    confirmed = factories.booking(car, START)
    cancelled = factories.booking(yacht, START, status="cancelled")
    staff = login_as("concierge")
    assert set(shown_references(staff.page("/bookings"))) == {confirmed.reference, cancelled.reference}
    assert shown_references(staff.page("/bookings?status=cancelled")) == [cancelled.reference]
    assert shown_references(staff.page("/bookings?category=car")) == [confirmed.reference]
    assert shown_references(staff.page(f"/bookings?customer={confirmed.customer_id}")) == [confirmed.reference]
    assert shown_references(staff.page("/bookings?from=2026-03-10&to=2026-03-20")) == []
    odd = "/bookings?from=0001-01-01&to=9999-12-31&after=zz&before=zz&concierge=99999999999&q=%25_"
    assert staff.get(odd).status_code == 200
    assert staff.get("/bookings?q=%00").status_code == 400  # NUL is refused app-wide, with its reason
    page = staff.page(f"/bookings?customer={confirmed.customer_id}&location=abc&from=not-a-date")
    assert "Customer: Grace Hopper" in page.select_one("[data-filter=customer]").get_text()


def test_next_links_walk_every_booking_once_and_keep_the_filters(login_as):
    cars = [factories.item(name=f"Car {n}") for n in range(3)]
    made = [factories.booking(cars[n % 3], START + timedelta(days=n // 2), status="completed") for n in range(60)]
    factories.booking(factories.item(category="yacht", name="Riva"), START, status="completed")
    staff = login_as("concierge")
    url, seen, pages = "/bookings?category=car&status=completed&sort=starts_at", [], 0
    while url:
        page = staff.page(url)
        seen += shown_references(page)
        pages += 1
        link = page.select_one("a[rel=next]")
        url = link["href"] if link else None
        if url:
            args = parse_qs(urlsplit(url).query)
            assert args["category"] == ["car"] and args["status"] == ["completed"] and "after" in args
    assert pages == 3 and seen == [b.reference for b in made]
    assert page.select_one("[data-total]")["data-total"] == "60"
    back = staff.page(page.select_one("a[rel=prev]")["href"])
    assert shown_references(back) == [b.reference for b in made[25:50]]


def test_htmx_filtering_returns_only_the_results(login_as):
    booking = factories.booking(factories.item(), START)
    response = login_as("concierge").get("/bookings?q=grace", headers={"HX-Request": "true"})
    fragment = soup(response)
    assert fragment.find("html") is None and fragment.find("form", class_="filters") is None
    assert shown_references(fragment) == [booking.reference]
    assert "HX-Request" in response.headers["Vary"]


def test_export_link_keeps_the_filters_and_downloads_them_as_csv(login_as):
    grace = factories.customer(name="=cmd|' /C calc'!A0")
    car = factories.item()
    wanted = factories.booking(car, START, who=grace)
    factories.booking(car, START + timedelta(days=10), status="cancelled")
    staff = login_as("concierge")
    link = staff.page("/bookings?status=confirmed&after=junk").find("a", string="Export these bookings (CSV)")
    assert parse_qs(urlsplit(link["href"]).query) == {"status": ["confirmed"]}
    response = staff.get(link["href"])
    assert response.mimetype == "text/csv" and "attachment" in response.headers["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(response.get_data(as_text=True).removeprefix("\ufeff"), newline="")))
    assert [row["reference"] for row in rows] == [wanted.reference]
    assert rows[0]["customer"] == "'=cmd|' /C calc'!A0"


def test_today_board_shows_pickups_and_returns_with_links(login_as):
    loc = factories.location()
    pickup = factories.booking(factories.item(loc), later_today(loc.timezone), days=2)
    out = factories.booking(factories.item(loc, name="Riva"), later_today(loc.timezone) - timedelta(days=1), days=1,
                            status="in_progress")
    factories.booking(factories.item(loc, name="Jet"), later_today(loc.timezone) + timedelta(days=1))
    page = login_as("concierge").page("/bookings/today")
    board = page.select_one("#board")
    assert board["hx-trigger"] == "every 60s"
    section = board.select_one("section[data-location=LON]")
    assert shown_references(section.select_one(".pickups")) == [pickup.reference]
    assert shown_references(section.select_one(".returns")) == [out.reference]
    row = section.select_one(f"tr[data-reference={pickup.reference}]")
    assert row.find("a", href=f"/bookings/{pickup.reference}") and row.find("a", href=f"/inventory/{pickup.item_id}")
    local = to_local(pickup.starts_at, loc.timezone)
    assert row.td.get_text() == f"{local:%H:%M} {local.tzname()}"


def test_today_board_refresh_returns_the_board_alone(login_as):
    factories.location()
    fragment = soup(login_as("concierge").get("/bookings/today", headers={"HX-Request": "true"}))
    assert fragment.find("html") is None and fragment.select_one("#board") is None
    assert fragment.select_one("section[data-location=LON]")


def test_today_page_offers_the_staff_members_own_feed(login_as, client):
    staff = login_as("concierge")
    car = factories.item()
    booking = factories.booking(car, utcnow() + timedelta(days=3))
    booking.concierge_id = staff.user_id
    db.session.commit()
    url = staff.page("/bookings/today").select_one("[data-feed-url]")["data-feed-url"]
    assert f"/feeds/staff/{staff.user_id}/" in url
    response = client.get(urlsplit(url).path)  # no login: calendar apps cannot sign in
    assert response.status_code == 200 and response.mimetype == "text/calendar"
    calendar = icalendar.Calendar.from_ical(response.get_data(as_text=True))
    assert [str(event["UID"]) for event in calendar.walk("VEVENT")] == [f"booking-{booking.id}@midas"]


def test_feeds_with_a_wrong_token_are_not_found(client, app):
    car = factories.item()
    with app.test_request_context():
        from midas.services.feeds import feed_url

        good = urlsplit(feed_url("item", car.id)).path
    assert client.get(good).status_code == 200
    assert client.get(good.replace(".ics", "0.ics")).status_code == 404
    assert client.get(f"/feeds/items/{car.id}/{'0' * 32}.ics").status_code == 404
    assert client.get(f"/feeds/items/{2**70}/{'0' * 32}.ics").status_code == 404
    assert client.get(good.replace("/items/", "/staff/")).status_code == 404


def test_calendar_shows_bookings_and_maintenance_per_item_and_day(login_as):
    car = factories.item()
    booked = factories.booking(car, START, days=2)
    db.session.add(Blackout(item=car, starts_at=datetime(2026, 3, 20, tzinfo=UTC),
                            ends_at=datetime(2026, 3, 21, tzinfo=UTC), reason="Annual service"))
    db.session.commit()
    page = login_as("concierge").page(f"/bookings/calendar?month=2026-03&location={car.location_id}")
    row = page.select_one(f"tr[data-item='{car.id}']")
    assert len(row.select("td")) == 31
    assert row.select_one("td[data-date='2026-03-03'] a.entry.booking").get_text() == booked.reference
    assert row.select_one("td[data-date='2026-03-20'] .entry.blackout")["title"] == "Maintenance · Annual service"
    assert row.select_one("td[data-date='2026-03-05']").get_text(strip=True) == ""


def test_calendar_month_navigation_uses_htmx_and_keeps_the_filters(login_as):
    car = factories.item()
    staff = login_as("concierge")
    page = staff.page(f"/bookings/calendar?month=2026-01&location={car.location_id}&category=car")
    previous = page.select_one("a[rel=prev]")
    assert previous["hx-target"] == "#calendar"
    assert parse_qs(urlsplit(previous["hx-get"]).query) == {"month": ["2025-12"], "location": [str(car.location_id)],
                                                            "category": ["car"]}
    fragment = soup(staff.get(previous["hx-get"], headers={"HX-Request": "true"}))
    assert fragment.find("html") is None and fragment.select_one("h2[data-month]")["data-month"] == "2025-12"
    assert staff.page("/bookings/calendar?month=garbage").select_one("h2[data-month]")["data-month"] == (
        f"{utcnow():%Y-%m}")


def test_hostile_names_are_escaped_on_dashboard_today_and_calendar(login_as):
    staff = login_as("concierge")
    for n, hostile in enumerate(XSS):
        loc = factories.location(code=f"X{n}", name=hostile)
        customer = factories.customer(name=hostile)
        booking = factories.booking(factories.item(loc, name=hostile), later_today(loc.timezone), who=customer)
        db.session.add(Blackout(item=booking.item, starts_at=booking.starts_at - timedelta(days=3),
                                ends_at=booking.starts_at - timedelta(days=2), reason=hostile))
        db.session.commit()
        month = f"{to_local(booking.starts_at, loc.timezone):%Y-%m}"
        for url in ("/bookings", f"/bookings?q={hostile[:4]}", f"/bookings?customer={customer.id}",
                    "/bookings/today", f"/bookings/calendar?month={month}"):
            html = staff.get(url).get_data(as_text=True)
            assert hostile not in html, url
            assert booking.reference in html, url
