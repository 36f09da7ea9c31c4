"""The bookings dashboard: each filter narrows the list, and keyset pages walk every booking exactly once."""

from __future__ import annotations

import base64
import csv
import io
import json
from datetime import UTC, date, datetime, timedelta

import pytest

from midas.extensions import db
from midas.models import Booking
from midas.services.bookings import DEFAULT_SORT, SORTS, BookingFilters, booking_query, export_csv, list_bookings
from midas.services.keyset import seek
from tests import factories
from tests.conftest import make_staff

START = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def references(filters: BookingFilters) -> set[str]:
    return {b.reference for b in list_bookings(filters).items}


def walk(filters: BookingFilters, per_page: int) -> list[Booking]:
    """Follow "Next" from the first page to the last, as staff clicking through would."""
    seen, cursor = [], ""
    while True:
        page = seek(booking_query(filters), filters.sort, SORTS, DEFAULT_SORT, Booking.id, after=cursor,
                    per_page=per_page)
        seen.extend(page.items)
        if not page.has_next:
            return seen
        cursor = page.next_cursor


@pytest.fixture
def fleet(app):
    """Two locations, a car and a yacht, two concierges, and a handful of bookings spread over them."""
    london, tokyo = factories.location(), factories.location("TYO", name="Tokyo Ginza", city="Tokyo",
                                                               country="JP", timezone="Asia/Tokyo", currency="JPY")
    car, yacht = factories.item(london), factories.item(tokyo, category="yacht", name="Riva Aquariva")
    ann, bob = make_staff("concierge", email="ann@midas.test"), make_staff("concierge", email="bob@midas.test")
    ada = factories.customer(name="Ada Lovelace", email="ada@example.com")
    made = {
        "london_confirmed": factories.booking(car, START, days=2, who=ada),
        "london_cancelled": factories.booking(car, START + timedelta(days=10), status="cancelled"),
        "tokyo_in_progress": factories.booking(yacht, START + timedelta(days=3), status="in_progress"),
        "tokyo_quote": factories.booking(yacht, START + timedelta(days=20), status="quote"),
    }
    made["london_confirmed"].concierge_id = ann.id
    made["tokyo_in_progress"].concierge_id = bob.id
    db.session.commit()
    return {"london": london, "tokyo": tokyo, "ann": ann, "bob": bob, "ada": ada, **made}


def test_each_filter_narrows_the_list(fleet):
    refs = {name: b.reference for name, b in fleet.items() if isinstance(b, Booking)}
    assert references(BookingFilters()) == set(refs.values())
    assert references(BookingFilters(status="cancelled")) == {refs["london_cancelled"]}
    assert references(BookingFilters(location_id=fleet["tokyo"].id)) == {refs["tokyo_in_progress"],
                                                                          refs["tokyo_quote"]}
    assert references(BookingFilters(category="yacht", status="quote")) == {refs["tokyo_quote"]}
    assert references(BookingFilters(concierge_id=fleet["bob"].id)) == {refs["tokyo_in_progress"]}
    assert references(BookingFilters(customer_id=fleet["ada"].id)) == {refs["london_confirmed"]}
    assert references(BookingFilters(q="ADA@example")) == {refs["london_confirmed"]}
    assert references(BookingFilters(q=refs["tokyo_quote"][-4:].lower())) == {refs["tokyo_quote"]}
    assert references(BookingFilters(q=f" {refs['tokyo_quote'].lower()} ")) == {refs["tokyo_quote"]}
    assert references(BookingFilters(q="lovelace")) == {refs["london_confirmed"]}


def test_unknown_or_impossible_filter_values_match_nothing_or_are_ignored(fleet):
    assert len(list_bookings(BookingFilters(status="bogus", category="boat")).items) == 4
    assert list_bookings(BookingFilters(location_id=2**40)).items == []
    assert list_bookings(BookingFilters(customer_id=-1)).items == []
    assert list_bookings(BookingFilters(q="100%_\x00")).items == []


def test_period_finds_bookings_overlapping_the_local_days(fleet):
    # london_confirmed: 2–4 March; tokyo_in_progress: 5–8 March (UTC 09:00 = 18:00 in Tokyo).
    refs = references(BookingFilters(period_from=date(2026, 3, 4), period_to=date(2026, 3, 5)))
    assert refs == {fleet["london_confirmed"].reference, fleet["tokyo_in_progress"].reference}
    assert references(BookingFilters(period_from=date(2026, 3, 9))) == {
        fleet["london_cancelled"].reference, fleet["tokyo_quote"].reference}
    assert references(BookingFilters(period_to=date(2026, 3, 1))) == set()
    # Reversed dates are read as the same period.
    assert references(BookingFilters(period_from=date(2026, 3, 5), period_to=date(2026, 3, 4))) == refs
    everything = BookingFilters(period_from=date(1, 1, 1), period_to=date(9999, 12, 31))
    assert len(references(everything)) == 4


def test_period_days_are_each_locations_local_days(app):
    tokyo = factories.location("TYO", name="Tokyo Ginza", city="Tokyo", country="JP", timezone="Asia/Tokyo",
                               currency="JPY")
    yacht = factories.item(tokyo, category="yacht", name="Riva Aquariva")
    # Starts 23:30 UTC on 9 March, which is already 10 March in Tokyo, and lasts one hour.
    late = factories.booking(yacht, datetime(2026, 3, 9, 23, 30, tzinfo=UTC), days=1)
    late.ends_at = late.starts_at + timedelta(hours=1)
    db.session.commit()
    assert references(BookingFilters(period_from=date(2026, 3, 9), period_to=date(2026, 3, 9))) == set()
    assert references(BookingFilters(period_from=date(2026, 3, 10), period_to=date(2026, 3, 10))) == {late.reference}


@pytest.fixture
def sixty_bookings(app) -> list[Booking]:
    """60 bookings over 4 items; starts repeat in threes, so the id must break ties (none holds its item)."""
    items = [factories.item(name=f"Car {n}") for n in range(4)]
    statuses = ["completed", "cancelled", "quote", "no_show", "completed"]
    return [factories.booking(items[n % 4], START + timedelta(days=n // 3), days=1 + n % 2, status=statuses[n % 5])
            for n in range(60)]


@pytest.mark.parametrize("sort", ["-starts_at", "starts_at", "-created_at", "created_at", "reference", "-reference"])
def test_keyset_pages_walk_every_booking_exactly_once_in_order(sixty_bookings, sort):
    seen = walk(BookingFilters(sort=sort), per_page=7)
    assert len(seen) == 60 and len({b.id for b in seen}) == 60
    expected = sorted(seen, key=lambda b: (getattr(b, sort.lstrip("-")), b.id), reverse=sort.startswith("-"))
    assert [b.id for b in seen] == [b.id for b in expected]


def test_unknown_sort_falls_back_to_newest_start_first(sixty_bookings):
    page = list_bookings(BookingFilters(sort="-total"))
    assert page.sort == "-starts_at" and page.items[0].starts_at == max(b.starts_at for b in sixty_bookings)


def test_default_order_is_newest_start_first_and_ties_by_newest_id(sixty_bookings):
    page = list_bookings(BookingFilters())
    assert len(page.items) == 25 and page.total == 60 and page.count_text == "60"
    assert [b.id for b in page.items[:3]] == sorted((b.id for b in sixty_bookings[-3:]), reverse=True)
    assert not page.has_prev and page.has_next


def test_previous_goes_back_to_the_same_rows(sixty_bookings):
    first = list_bookings(BookingFilters())
    second = list_bookings(BookingFilters(after=first.next_cursor))
    third = list_bookings(BookingFilters(after=second.next_cursor))
    assert len(third.items) == 10 and not third.has_next
    back = list_bookings(BookingFilters(before=third.prev_cursor))
    assert [b.id for b in back.items] == [b.id for b in second.items]
    assert [b.id for b in list_bookings(BookingFilters(before=back.prev_cursor)).items] == [
        b.id for b in first.items]


def test_paging_keeps_the_filters(sixty_bookings):
    car = sixty_bookings[0].item
    seen = walk(BookingFilters(item_id=car.id, sort="starts_at"), per_page=4)
    assert [b.id for b in seen] == [b.id for b in sixty_bookings if b.item_id == car.id]


def cursor_of(*parts) -> str:
    return base64.urlsafe_b64encode(json.dumps(parts).encode()).decode()


@pytest.mark.parametrize("cursor", [
    "garbage", "W10", "eyJhIjoxfQ", "!" * 2000, cursor_of("-starts_at", 1, 1),
    cursor_of("-starts_at", "0001-01-01T00:00:00+05:00", 1), cursor_of("-starts_at", "9999-12-31T23:00:00-05:00", 1),
    cursor_of("-starts_at", "2026-03-01T00:00:00", 1), cursor_of("-starts_at", "2026-03-01T00:00:00+00:00", 2**40),
])
def test_damaged_or_foreign_cursor_starts_again_at_the_first_page(sixty_bookings, cursor):
    first = list_bookings(BookingFilters())
    assert [b.id for b in list_bookings(BookingFilters(after=cursor, before=cursor)).items] == [
        b.id for b in first.items]


def test_next_past_the_last_booking_starts_again_at_the_first_page(sixty_bookings):
    first = list_bookings(BookingFilters())
    stale = cursor_of("-starts_at", "2000-01-01T00:00:00+00:00", 1)  # older than every booking
    assert [b.id for b in list_bookings(BookingFilters(after=stale)).items] == [b.id for b in first.items]


def test_cursor_from_another_sort_is_ignored(sixty_bookings):
    by_reference = list_bookings(BookingFilters(sort="reference"))
    first = list_bookings(BookingFilters())
    assert [b.id for b in list_bookings(BookingFilters(after=by_reference.next_cursor)).items] == [
        b.id for b in first.items]


def test_count_stops_at_the_cap(sixty_bookings):
    page = seek(booking_query(BookingFilters()), "", SORTS, DEFAULT_SORT, Booking.id, count_cap=50)
    assert page.total_capped and page.count_text == "More than 50"


def test_export_has_every_filtered_booking_and_neutralises_formulas(fleet):
    fleet["ada"].name = "=cmd|' /C calc'!A0"
    db.session.commit()
    text = "".join(export_csv(BookingFilters(location_id=fleet["london"].id)))
    assert text.startswith("\ufeff")
    rows = list(csv.DictReader(io.StringIO(text.removeprefix("\ufeff"), newline="")))
    assert {row["reference"] for row in rows} == {fleet["london_confirmed"].reference,
                                                  fleet["london_cancelled"].reference}
    ada_row = next(row for row in rows if row["reference"] == fleet["london_confirmed"].reference)
    assert ada_row["customer"] == "'=cmd|' /C calc'!A0"
    assert ada_row["starts_at"] == "2026-03-02 09:00" and ada_row["time_zone"] == "Europe/London"
    assert ada_row["total"] == "3600.00" and ada_row["concierge"] == "Concierge Person"


@pytest.fixture
def two_cities(app) -> list[Booking]:
    """120 bookings over cars and yachts in two cities, for two customers: each filter leaves several pages."""
    paris = factories.location("PAR", timezone="Europe/Paris", currency="EUR")
    items = [factories.item(name="Car London"), factories.item(paris, name="Car Paris"),
             factories.item(name="Yacht London", category="yacht"), factories.item(paris, name="Yacht Paris",
                                                                                  category="yacht")]
    people = [factories.customer(name="Ada Lovelace"), factories.customer(name="Alan Turing")]
    return [factories.booking(items[n % 4], START + timedelta(days=n * 2), days=1, who=people[n % 2])
            for n in range(120)]


@pytest.mark.parametrize("narrowing", [
    {}, {"category": "yacht"}, {"q": "turing"}, {"period_from": date(2026, 3, 10), "period_to": date(2026, 6, 30)},
    {"category": "car", "q": "lovelace"}, {"location": "PAR"},
])
def test_the_count_is_the_number_of_rows_the_pages_show(two_cities, narrowing):
    # The count is taken without the display's joins: it must still agree with the rows, filter by filter.
    fields = dict(narrowing)
    if fields.pop("location", None):
        fields["location_id"] = two_cities[1].item.location_id
    filters = BookingFilters(**fields)
    shown = walk(filters, per_page=25)
    page = list_bookings(filters)
    assert page.has_next and page.total == len(shown)  # more than a page: the total is counted, not seen
    assert page.total < 120 or not narrowing
