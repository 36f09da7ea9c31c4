"""The month across the fleet: a row per item, a cell per local day, bookings and maintenance in the cells."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from midas.extensions import db
from midas.models import Blackout
from midas.services.fleet_calendar import fleet_month, shift_month
from tests import factories

MARCH = date(2026, 3, 1)


def cell(month, item, day: int) -> list[tuple[str, str]]:
    row = next(row for row in month.rows if row.item.id == item.id)
    return [(entry.kind, entry.label) for entry in row.cells[day - 1]]


def test_cells_show_bookings_on_each_day_they_cover(app):
    car = factories.item()
    booked = factories.booking(car, datetime(2026, 3, 2, 9, 0, tzinfo=UTC), days=2)
    month = fleet_month(MARCH)
    assert len(month.days) == 31 and month.days[0] == MARCH
    assert cell(month, car, 1) == []
    assert [cell(month, car, d) for d in (2, 3, 4)] == [[("booking", booked.reference)]] * 3
    assert cell(month, car, 5) == []


def test_completed_bookings_show_and_cancelled_ones_do_not(app):
    car = factories.item()
    done = factories.booking(car, datetime(2026, 3, 10, 9, 0, tzinfo=UTC), days=1, status="completed")
    factories.booking(car, datetime(2026, 3, 20, 9, 0, tzinfo=UTC), days=1, status="cancelled")
    month = fleet_month(MARCH)
    assert cell(month, car, 10) == [("booking", done.reference)]
    assert cell(month, car, 20) == []


def test_blackouts_show_as_maintenance(app):
    yacht = factories.item(category="yacht", name="Riva Aquariva")
    db.session.add(Blackout(item=yacht, starts_at=datetime(2026, 3, 20, tzinfo=UTC),
                            ends_at=datetime(2026, 3, 21, tzinfo=UTC), reason="Hull cleaning"))
    db.session.commit()
    month = fleet_month(MARCH)
    assert cell(month, yacht, 20) == [("blackout", "Maintenance")]
    assert cell(month, yacht, 19) == [] and cell(month, yacht, 21) == []
    row = next(row for row in month.rows if row.item.id == yacht.id)
    assert row.cells[19][0].title == "Maintenance · Hull cleaning"


def test_days_are_the_items_local_days(app):
    tokyo = factories.location("TYO", name="Tokyo Ginza", city="Tokyo", country="JP", timezone="Asia/Tokyo",
                               currency="JPY")
    jet = factories.item(tokyo, category="jet", name="Gulfstream G700")
    late = factories.booking(jet, datetime(2026, 3, 9, 23, 30, tzinfo=UTC), days=1)
    late.ends_at = late.starts_at + timedelta(hours=1)
    db.session.commit()
    month = fleet_month(MARCH)
    assert cell(month, jet, 9) == [] and cell(month, jet, 10) == [("booking", late.reference)]


def test_rows_follow_the_location_and_category_filters_and_skip_retired_items(app):
    london = factories.location()
    tokyo = factories.location("TYO", name="Tokyo Ginza", city="Tokyo", country="JP", timezone="Asia/Tokyo",
                               currency="JPY")
    car, yacht = factories.item(london), factories.item(london, category="yacht", name="Riva Aquariva")
    factories.item(london, name="Old Bentley", status="retired")
    jet = factories.item(tokyo, category="jet", name="Gulfstream G700")
    assert {row.item.id for row in fleet_month(MARCH).rows} == {car.id, yacht.id, jet.id}
    assert {row.item.id for row in fleet_month(MARCH, london.id).rows} == {car.id, yacht.id}
    assert {row.item.id for row in fleet_month(MARCH, london.id, "yacht").rows} == {yacht.id}
    assert fleet_month(MARCH, 2**40).rows == []


def test_month_navigation_crosses_years():
    assert shift_month(date(2026, 1, 1), -1) == "2025-12"
    assert shift_month(date(2026, 12, 1), 1) == "2027-01"
