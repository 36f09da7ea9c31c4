"""Calendar feeds: valid iCalendar (read back with a real parser) behind an unguessable per-item or per-staff token."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import icalendar
import pytest

from midas import ical
from midas.extensions import db
from midas.models import Blackout
from midas.services import NotFound
from midas.services.feeds import feed_token, feed_url, item_feed, staff_feed
from tests import factories
from tests.conftest import make_staff

NOW = datetime(2026, 3, 1, tzinfo=UTC)


def events(text: str) -> dict[str, icalendar.Event]:
    """The feed's events by UID, after checking that the parser found nothing wrong anywhere."""
    calendar = icalendar.Calendar.from_ical(text)
    assert calendar.errors == [] and calendar["VERSION"] == "2.0" and calendar["PRODID"]
    found = calendar.walk("VEVENT")
    assert [event.errors for event in found] == [[] for _ in found]
    assert all({"UID", "DTSTAMP", "DTSTART", "DTEND"} <= set(event) for event in found)
    return {str(event["UID"]): event for event in found}


@pytest.fixture
def request_context(app):
    with app.test_request_context():
        yield


def test_item_feed_lists_its_bookings_and_maintenance_in_utc(request_context):
    car = factories.item(name="Ferrari SF90, Stradale; 2024")
    kept = factories.booking(car, datetime(2026, 3, 2, 9, 0, tzinfo=UTC), days=2)
    done = factories.booking(car, datetime(2026, 2, 1, 9, 0, tzinfo=UTC), days=1, status="completed")
    factories.booking(car, datetime(2026, 3, 20, 9, 0, tzinfo=UTC), days=1, status="cancelled")
    factories.booking(factories.item(name="Other car"), datetime(2026, 3, 2, 9, 0, tzinfo=UTC))
    blackout = Blackout(item=car, starts_at=datetime(2026, 4, 1, tzinfo=UTC), ends_at=datetime(2026, 4, 2, tzinfo=UTC),
                        reason="Annual service")
    db.session.add(blackout)
    db.session.commit()
    found = events(item_feed(car.id, feed_token("item", car.id), now=NOW))
    assert set(found) == {f"booking-{kept.id}@midas", f"booking-{done.id}@midas", f"blackout-{blackout.id}@midas"}
    event = found[f"booking-{kept.id}@midas"]
    assert event.decoded("DTSTART") == datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
    assert event.decoded("DTEND") == datetime(2026, 3, 4, 9, 0, tzinfo=UTC)
    assert str(event["SUMMARY"]) == f"Ferrari SF90, Stradale; 2024 · Grace Hopper ({kept.reference})"
    assert "DTSTAMP" in event and str(event["URL"]).endswith(f"/bookings/{kept.reference}")
    assert str(found[f"blackout-{blackout.id}@midas"]["DESCRIPTION"]) == "Annual service"


def test_feed_text_follows_rfc_5545_line_rules(request_context):
    car = factories.item(name="Château Lumière " * 8)
    factories.booking(car, datetime(2026, 3, 2, 9, 0, tzinfo=UTC), who=factories.customer(name="Zoë, Müller; Jr"))
    text = item_feed(car.id, feed_token("item", car.id), now=NOW)
    assert text.endswith("\r\n") and "\n" not in text.replace("\r\n", "")
    lines = text.split("\r\n")[:-1]
    assert max(len(line.encode()) for line in lines) <= 75
    assert any(line.startswith(" ") for line in lines)  # the long summary was folded
    assert "DTSTART:20260302T090000Z" in lines
    assert "Zoë\\, Müller\\; Jr" in text.replace("\r\n ", "")


def test_staff_feed_has_the_bookings_they_look_after(request_context):
    ann, bob = make_staff("concierge", email="ann@midas.test"), make_staff("concierge", email="bob@midas.test")
    car = factories.item()
    mine = factories.booking(car, datetime(2026, 3, 2, 9, 0, tzinfo=UTC))
    hold = factories.booking(car, datetime(2026, 3, 12, 9, 0, tzinfo=UTC), status="pending_payment")
    theirs = factories.booking(car, datetime(2026, 3, 22, 9, 0, tzinfo=UTC))
    mine.concierge_id = hold.concierge_id = ann.id
    theirs.concierge_id = bob.id
    db.session.commit()
    found = events(staff_feed(ann.id, feed_token("staff", ann.id), now=NOW))
    assert set(found) == {f"booking-{mine.id}@midas", f"booking-{hold.id}@midas"}
    assert str(found[f"booking-{hold.id}@midas"]["STATUS"]) == "TENTATIVE"


def test_old_bookings_leave_the_feed(request_context):
    car = factories.item()
    factories.booking(car, NOW - timedelta(days=200), days=1, status="completed")
    assert events(item_feed(car.id, feed_token("item", car.id), now=NOW)) == {}


@pytest.mark.parametrize("token", ["", "0" * 32, "not-hex", "é" * 32])
def test_wrong_token_finds_no_feed(request_context, token):
    car = factories.item()
    with pytest.raises(NotFound):
        item_feed(car.id, token)


def test_a_token_opens_only_its_own_feed(request_context):
    car, other = factories.item(), factories.item(name="Other car")
    staff = make_staff("concierge")
    with pytest.raises(NotFound):
        item_feed(other.id, feed_token("item", car.id))
    with pytest.raises(NotFound):
        staff_feed(staff.id, feed_token("item", staff.id))  # an item token for the same id


def test_deactivated_staff_feed_stops_working(request_context):
    staff = make_staff("concierge", active=False)
    with pytest.raises(NotFound):
        staff_feed(staff.id, feed_token("staff", staff.id))


def test_feed_url_carries_the_token(request_context):
    car = factories.item()
    url = feed_url("item", car.id)
    assert url.startswith("http") and url.endswith(f"/feeds/items/{car.id}/{feed_token('item', car.id)}.ics")
    assert len(feed_token("item", car.id)) == 32 and feed_token("item", car.id) != feed_token("staff", car.id)


def test_folding_never_splits_a_character():
    line = "SUMMARY:" + "日本語" * 40
    folded = ical.fold(line)
    assert folded.replace("\r\n ", "") == line
    assert all(len(part.encode()) <= 75 for part in folded.split("\r\n"))


def test_text_values_are_escaped():
    assert ical.escape("a,b;c\\d\r\ne\x07") == "a\\,b\\;c\\\\d\\ne"
