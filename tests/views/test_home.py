"""The home page: a board per location, tiles that link to their filtered lists, accessible trend lines, and a
board that HTMX refetches alone on the configured interval."""

from __future__ import annotations

from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

from midas.config import Config
from midas.extensions import db
from midas.models import utcnow
from tests import factories
from tests.conftest import soup


def _pending_booking():
    london = factories.location()
    booking = factories.booking(factories.item(london), utcnow() + timedelta(days=3), status="pending_payment")
    booking.hold_expires_at = utcnow() + timedelta(minutes=10)
    db.session.commit()
    return london


def test_home_shows_each_location_with_tiles_linking_to_their_lists(app, login_as):
    london = _pending_booking()
    page = login_as("concierge").page("/")
    board = page.select_one(f"section.location-board[data-location={london.code}]")
    assert board.select_one("h2").get_text().startswith("London Mayfair")
    awaiting = board.select_one("a[data-tile=awaiting-payment]")
    assert awaiting.select_one(".value").get_text() == "1"
    link = urlsplit(awaiting["href"])
    assert link.path == "/bookings" and parse_qs(link.query) == {
        "status": ["pending_payment"], "location": [str(london.id)], "sort": ["starts_at"]}
    assert "alert" in board.select_one("a[data-tile=holds-expiring]")["class"]
    assert board.select_one("a[data-tile=pickups]")["href"] == "/bookings/today"
    queues = {tile["data-tile"]: tile["href"] for tile in page.select("#tiles a.tile")}
    assert queues["refund-approvals"] == "/refunds?status=pending_approval"
    assert queues["open-disputes"] == "/payments?disputes=open"


def test_trend_lines_are_titled_svg_with_the_daily_figures_as_a_table(app, login_as):
    _pending_booking()
    page = login_as("concierge").page("/")
    bookings = page.select_one("figure.kpi[data-kpi=bookings]")
    svg = bookings.select_one("svg[role=img]")
    labelled_by = svg["aria-labelledby"].split()
    assert [page.find(id=ident).name for ident in labelled_by] == ["title", "desc"]
    assert "last 30 days" in svg.find("title").get_text()
    assert len(svg.select("polyline.trend-line")) == 1
    rows = bookings.select("details table tbody tr")
    assert len(rows) == 30 and rows[-1].select("td")[1].get_text() == "1"  # the booking made today
    assert bookings.select_one("[data-total]").get_text() == "1"
    assert page.select_one("figure.kpi[data-kpi=success-rate] [data-total]").get_text() == "—"  # nothing decided
    assert not page.select("[style]") and not [s for s in page.select("script") if not s.get("src")]


def test_htmx_refresh_returns_the_board_alone_on_the_configured_interval(app, login_as):
    _pending_booking()
    staff = login_as("concierge")
    assert soup(staff.get("/")).select_one("#home-board")["hx-trigger"] == "every 30s"
    fragment = soup(staff.get("/", headers={"HX-Request": "true"}))
    assert fragment.find("html") is None and fragment.select_one(".page-head") is None
    assert fragment.select("section.location-board") and fragment.select("figure.kpi svg")
    app.config["HOME_REFRESH_SECONDS"] = 2
    try:
        assert soup(staff.get("/")).select_one("#home-board")["hx-trigger"] == "every 2s"
    finally:
        app.config["HOME_REFRESH_SECONDS"] = 30


def test_refresh_interval_comes_from_the_environment():
    assert Config({"SECRET_KEY": "x", "HOME_REFRESH_SECONDS": "5"}).HOME_REFRESH_SECONDS == 5
    assert Config({"SECRET_KEY": "x", "HOME_REFRESH_SECONDS": "0"}).HOME_REFRESH_SECONDS == 1
    assert Config({"SECRET_KEY": "x"}).HOME_REFRESH_SECONDS == 30
