"""Owners shape prices on /settings: locations, seasons, service tiers."""

from __future__ import annotations

from datetime import date

from midas.extensions import db
from midas.models import AuditEntry, Location, SeasonRule
from tests import factories
from tests.conftest import soup

LOCATION = {"code": "mco", "name": "Monaco Port Hercule", "city": "Monaco", "country": "mc",
            "timezone": "Europe/Monaco", "currency": "EUR", "tax_rate_bp": "2000", "service_fee_bp": "500"}


def test_owner_adds_a_location_with_tax_and_fee(login_as):
    owner = login_as("owner")
    assert owner.post("/settings/locations/new", LOCATION).status_code == 302
    loc = db.session.query(Location).one()
    assert (loc.code, loc.country, loc.tax_rate_bp, loc.service_fee_bp) == ("MCO", "MC", 2000, 500)
    assert "Monaco Port Hercule" in owner.page("/settings").get_text()


def test_location_form_refuses_an_unknown_time_zone_and_a_taken_code(login_as):
    factories.location("MCO")
    response = login_as("owner").post("/settings/locations/new", {**LOCATION, "timezone": "Mars/Olympus"})
    errors = " ".join(e.get_text() for e in soup(response).select(".field-error"))
    assert response.status_code == 422 and "already uses the code MCO" in errors
    response = login_as("owner").post("/settings/locations/new", {**LOCATION, "code": "MC2", "timezone": "Mars/X"})
    assert "not an IANA time zone" in soup(response).select_one("#timezone-errors").get_text()
    assert db.session.query(Location).count() == 1


def test_currency_is_fixed_once_items_are_priced_in_it(login_as):
    item = factories.item()
    loc_id = item.location_id
    response = login_as("owner").post(f"/settings/locations/{loc_id}/edit",
                                      {**LOCATION, "code": "LON", "currency": "USD"})
    assert response.status_code == 422 and "can't change now" in soup(response).get_text()
    assert db.session.get(Location, loc_id).currency == "GBP"


def test_owner_adds_edits_and_deletes_a_season(login_as):
    loc = factories.location()
    owner = login_as("owner")
    owner.post("/settings/seasons/new", {"name": "Summer peak", "starts_on": "2031-07-01", "ends_on": "2031-08-31",
                                         "multiplier_bp": "13000", "location_id": str(loc.id), "category": "",
                                         "priority": "0"})
    rule = db.session.query(SeasonRule).one()
    assert (rule.starts_on, rule.location_id, rule.category) == (date(2031, 7, 1), loc.id, None)
    owner.post(f"/settings/seasons/{rule.id}/edit", {"name": "Summer peak", "starts_on": "2031-07-01",
                                                      "ends_on": "2031-08-31", "multiplier_bp": "15000",
                                                      "location_id": "", "category": "yacht", "priority": "1"})
    rule = db.session.get(SeasonRule, rule.id)
    assert (rule.multiplier_bp, rule.location_id, rule.category) == (15000, None, "yacht")
    owner.post(f"/settings/seasons/{rule.id}/delete")
    assert db.session.query(SeasonRule).count() == 0
    assert [e.action for e in db.session.query(AuditEntry).filter(AuditEntry.action.like("season.%"))] == [
        "season.created", "season.changed", "season.deleted"]


def test_season_that_ends_before_it_starts_is_refused(login_as):
    response = login_as("owner").post("/settings/seasons/new", {
        "name": "Backwards", "starts_on": "2031-08-31", "ends_on": "2031-07-01", "multiplier_bp": "13000",
        "location_id": "", "category": "", "priority": "0"})
    assert response.status_code == 422 and "end on or after" in response.get_data(as_text=True)


def test_owner_sets_tier_multipliers(login_as):
    owner = login_as("owner")
    page = owner.page("/settings")
    assert page.select_one("input[name=premium]")["value"] == "13000"
    assert owner.post("/settings/tiers", {"standard": "10000", "premium": "12500", "vvip": "17000"}).status_code == 302
    assert owner.page("/settings").select_one("input[name=vvip]")["value"] == "17000"


def test_admins_cannot_change_settings(login_as):
    admin = login_as("admin")
    assert admin.post("/settings/tiers", {"standard": "1", "premium": "1", "vvip": "1"}).status_code == 403
    assert admin.post("/settings/locations/new", LOCATION).status_code == 403
