"""Bulk inventory work: CSV import (all or nothing), CSV export, bulk price and status changes."""

from __future__ import annotations

import csv
import io

import pytest
from hypothesis import given
from hypothesis import strategies as st

from midas.extensions import db
from midas.models import AuditEntry, Item
from midas.money import parse_major
from midas.services import DomainError, InvalidInput, PermissionDenied
from midas.services import inventory_bulk as bulk
from midas.services.inventory import ItemFilters
from tests import factories
from tests.conftest import make_staff

HEADER = "name,category,location_code,daily_rate,security_deposit,insurance_rate_bp,min_days,status,specs\n"


@pytest.fixture
def admin(app):
    return make_staff("admin")


@pytest.fixture
def london(app):
    return factories.location("LON")


@pytest.fixture
def tokyo(app):
    return factories.location("TYO", name="Tokyo Ginza", city="Tokyo", country="JP", timezone="Asia/Tokyo",
                              currency="JPY")


def import_text(actor, text: str, token: str | None = None) -> bulk.ImportResult:
    return bulk.import_items(actor, text.encode("utf-8"), token or bulk.new_token())


def rejected(actor, text: str) -> list[str]:
    with pytest.raises(bulk.ImportRejected) as caught:
        import_text(actor, text)
    assert db.session.query(Item).count() == 0
    return caught.value.errors


def exported(filters: ItemFilters | None = None) -> list[list[str]]:
    text = "".join(bulk.export_csv(filters or ItemFilters()))
    assert text.startswith("\ufeff")
    return list(csv.reader(io.StringIO(text[1:], newline="")))


# --- Import -----------------------------------------------------------------------------------------------------


def test_good_rows_become_items_priced_in_their_locations_currency(admin, london, tokyo):
    result = import_text(admin, HEADER + 'Riva Aquarama,yacht,lon,"1,800.50",5000,350,2,maintenance,"{""cabins"": 1}"\n'
                                         "Nissan GT-R Nismo,car,TYO,350000,,,,,\n")
    assert result.message == "Imported 2 items."
    riva, nissan = db.session.query(Item).order_by(Item.name.desc()).all()
    assert (riva.currency, riva.daily_rate, riva.security_deposit) == ("GBP", 180050, 500000)
    assert (riva.insurance_rate_bp, riva.min_days, riva.status, riva.specs) == (350, 2, "maintenance", {"cabins": 1})
    assert (nissan.currency, nissan.daily_rate, nissan.security_deposit) == ("JPY", 350000, 0)
    assert (nissan.min_days, nissan.status, nissan.specs, nissan.location_id) == (1, "active", {}, tokyo.id)
    entry = db.session.query(AuditEntry).filter_by(action="inventory.imported").one()
    assert entry.after["count"] == 2 and entry.actor_id == admin.id


def test_one_bad_row_imports_nothing_and_every_problem_is_listed(admin, london):
    errors = rejected(admin, HEADER + "Aston Martin DB12,car,LON,900,,,,,\n"
                                      "Ferrari Roma,car,LON,abc,,,,,\n"
                                      "Gulfstream G700,plane,LON,25000,,,,,\n"
                                      ",jet,PAR,12,,,,,\n")
    assert "Row 3: daily_rate: 'abc' is not an amount in GBP (e.g. 1800.00)" in errors
    assert "Row 4: category: 'plane' is not one of car, yacht, jet, property" in errors
    assert "Row 5: name: is required" in errors
    assert "Row 5: location_code: no location has the code 'PAR'" in errors
    assert not any(error.startswith("Row 2") for error in errors)
    assert db.session.query(AuditEntry).filter_by(action="inventory.imported").count() == 0


@pytest.mark.parametrize("hostile", ["=cmd|' /C calc'!A0", "@SUM(1+1)", "+1", "-2+3+cmd|' /C calc'!A0",
                                     "=HYPERLINK(\"http://evil.test\",\"click\")"])
def test_formula_cells_are_refused_with_a_clear_message(admin, london, hostile):
    cell = '"' + hostile.replace('"', '""') + '"'
    errors = rejected(admin, HEADER + f"{cell},car,LON,900,{cell},,,,\n")
    assert len(errors) == 2
    assert errors[0].startswith("Row 2: name: ") and errors[1].startswith("Row 2: security_deposit: ")
    assert all(f"starts with {hostile[0]!r}" in error and "spreadsheets run them as formulas" in error
               for error in errors)


def test_a_formula_hidden_behind_spaces_or_a_tab_is_still_refused(admin, london):
    errors = rejected(admin, HEADER + '"  =1+1",car,LON,900,,,,,\n"\t@SUM(A1)",car,LON,900,,,,,\n')
    assert len(errors) == 2 and all("formulas" in error for error in errors)


@pytest.mark.parametrize(("column", "value", "message"), [
    ("daily_rate", "99999999999999999999", "is too large: at most £10,000,000,000.00"),
    ("daily_rate", "9" * 5000, "is not an amount in GBP"),
    ("daily_rate", "0", "must be more than zero"),
    ("daily_rate", "12.345", "is not an amount in GBP"),
    ("daily_rate", "1e6", "is not an amount in GBP"),
    ("daily_rate", "١٢٣", "is not an amount in GBP"),
    ("security_deposit", "99999999999999999999", "is too large"),
    ("insurance_rate_bp", "99999999999999999999", "is not a whole number from 0 to 10,000"),
    ("insurance_rate_bp", "10001", "is not a whole number from 0 to 10,000"),
    ("min_days", "0", "is not a whole number from 1 to 365"),
    ("min_days", "2.5", "is not a whole number from 1 to 365"),
    ("status", "sold", "is not one of active, maintenance, retired"),
    ("specs", "[1, 2]", "is not a JSON object"),
    ("specs", "{seats: 2}", "is not a JSON object"),
    ("specs", "[" * 100_000, "is not a JSON object"),
    ("name", "N" * 161, "is 161 characters long; at most 160"),
    ("name", "Two\nlines", "contains control characters"),
])
def test_out_of_range_and_huge_values_are_reported_against_their_column(admin, london, column, value, message):
    row = {"name": "Bentley Batur", "category": "car", "location_code": "LON", "daily_rate": "900", column: value}
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(row))
    writer.writeheader()
    writer.writerow(row)
    errors = rejected(admin, buffer.getvalue())
    assert len(errors) == 1 and errors[0].startswith(f"Row 2: {column}: ") and message in errors[0]
    assert len(errors[0]) < 300  # a hostile cell is shortened, not echoed whole


def test_buffers_allow_up_to_thirty_days(admin, london):
    header = "name,category,location_code,daily_rate,buffer_before_hours,buffer_after_hours\n"
    errors = rejected(admin, header + "Sunseeker 95,yacht,LON,9000,721,0\n")
    assert errors == ["Row 2: buffer_before_hours: '721' is not a whole number from 0 to 720"]
    import_text(admin, header + "Sunseeker 95,yacht,LON,9000,720,0\n")
    assert db.session.query(Item).one().buffer_before_hours == 720


def test_unicode_names_are_accepted(admin, london):
    names = ["Château Lumière", "東京タワー Penthouse", "Villa Ἀφροδίτη ✨", "Ålesund Fjord Lodge"]
    import_text(admin, "name,category,location_code,daily_rate\n" + "".join(f"{n},property,LON,5000\n" for n in names))
    assert sorted(item.name for item in db.session.query(Item)) == sorted(names)


def test_a_file_saved_with_a_byte_order_mark_imports(admin, london):
    data = "\ufeffname,category,location_code,daily_rate\r\nChâteau Lumière,property,LON,12500\r\n".encode()
    assert bulk.import_items(admin, data, bulk.new_token()).created == 1
    assert db.session.query(Item).one().name == "Château Lumière"


def test_a_currency_column_must_match_the_location(admin, london, tokyo):
    errors = rejected(admin, "name,category,location_code,currency,daily_rate\n"
                             "McLaren 750S,car,LON,USD,1200\nLexus LFA,car,TYO,jpy,80000.5\n")
    assert errors == ["Row 2: currency: 'USD' does not match the location's currency GBP",
                      "Row 3: daily_rate: '80000.5' is not an amount in JPY (e.g. 180000)"]
    import_text(admin, "name,category,location_code,currency,daily_rate\nMcLaren 750S,car,lon,gbp,1200\n")
    assert db.session.query(Item).one().currency == "GBP"


@pytest.mark.parametrize(("data", "message"), [
    (b"", "The file is empty"),
    (b"name,category\n", "Missing columns: location_code, daily_rate."),
    (b"name,category,location_code,daily_rate,colour\n", "Unknown column 'colour'"),
    (b"name,name,category,location_code,daily_rate\n", "Column 'name' appears more than once."),
    (b"name,category,location_code,daily_rate\n", "The file has a header but no items."),
    ("name,category,location_code,daily_rate\nCh\xe2teau,property,LON,1\n".encode("latin-1"), "not UTF-8 text"),
    (b"name,category,location_code,daily_rate\nA\x00,car,LON,1\n", "NUL bytes"),
    (b'name,category,location_code,daily_rate\n"A,car,LON,1\n', "the CSV could not be read"),
])
def test_a_file_that_cannot_be_read_is_refused_with_the_reason(admin, london, data, message):
    with pytest.raises(bulk.ImportRejected) as caught:
        bulk.import_items(admin, data, bulk.new_token())
    assert message in caught.value.errors[0]


def test_more_than_five_thousand_rows_are_refused(admin, london):
    errors = rejected(admin, "name,category,location_code,daily_rate\n" + "Vespa,car,LON,10\n" * 5001)
    assert errors == ["The file has 5,001 items; at most 5,000 per file: split it."]


def test_a_row_with_more_cells_than_the_header_is_reported(admin, london):
    errors = rejected(admin, "name,category,location_code,daily_rate\nVespa,car,LON,10,surprise\n")
    assert errors == ["Row 2: has 5 cells but the header has 4 columns"]


def test_a_row_with_an_id_updates_that_item_and_keeps_its_blank_cells(admin, london):
    item = factories.item(london, name="Ferrari SF90", min_days=2)
    result = import_text(admin, f"id,name,category,location_code,daily_rate,min_days\n"
                                f"{item.id},Ferrari SF90 Spider,car,LON,1950,\n,Ferrari Purosangue,car,LON,2100,\n")
    assert result.message == "Imported 2 items. 1 new, 1 updated, 0 unchanged."
    db.session.refresh(item)
    assert (item.name, item.daily_rate, item.min_days, item.security_deposit) == (
        "Ferrari SF90 Spider", 195000, 2, 500000)
    entry = db.session.query(AuditEntry).filter_by(action="item.updated").one()
    assert entry.before == {"name": "Ferrari SF90", "daily_rate": 180000}
    assert entry.after == {"name": "Ferrari SF90 Spider", "daily_rate": 195000}


def test_unknown_or_repeated_ids_are_reported(admin, london):
    item = factories.item(london)
    with pytest.raises(bulk.ImportRejected) as caught:
        import_text(admin, f"id,name,category,location_code,daily_rate\n999,A,car,LON,1\n"
                           f"{item.id},B,car,LON,1\n{item.id},C,car,LON,1\nx1,D,car,LON,1\n")
    assert caught.value.errors == [
        "Row 2: id: there is no item 999 (leave id blank to create a new item)",
        f"Row 4: id: item {item.id} is already updated by row 3",
        "Row 5: id: 'x1' is not a whole number from 1 to 1,000,000,000,000,000",
    ]
    db.session.refresh(item)
    assert item.name == "Ferrari SF90 Stradale"


def test_submitting_the_same_import_twice_imports_once(admin, london):
    text = "name,category,location_code,daily_rate\nVespa GTS,car,LON,90\n"
    import_text(admin, text, token="same-form")
    with pytest.raises(bulk.AlreadyApplied):
        import_text(admin, text, token="same-form")
    assert db.session.query(Item).count() == 1


def test_concierges_cannot_import_or_change_in_bulk(app, london):
    concierge = make_staff("concierge")
    with pytest.raises(PermissionDenied):
        import_text(concierge, "name,category,location_code,daily_rate\nVespa,car,LON,90\n")
    with pytest.raises(PermissionDenied):
        bulk.plan_bulk_change(concierge, ItemFilters(), bulk.BulkChange("status", status="retired"))
    with pytest.raises(PermissionDenied):
        bulk.apply_bulk_change(concierge, ItemFilters(), bulk.BulkChange("status", status="retired"), "t")


# --- Export -----------------------------------------------------------------------------------------------------


def test_export_neutralises_cells_a_spreadsheet_would_run(app, london):
    factories.item(london, name='=HYPERLINK("http://evil.test","Click")')
    factories.item(london, name="@SUM(1+1)", specs={"note": "=1+1"})
    factories.item(london, name="+44 Supercar")
    factories.item(london, name="-Negative Space")
    factories.item(london, name="\tTabbed")
    factories.item(london, name="Plain Bentley")
    names = [row[1] for row in exported()[1:]]
    assert set(names) == {"'=HYPERLINK(\"http://evil.test\",\"Click\")", "'@SUM(1+1)", "'+44 Supercar",
                          "'-Negative Space", "'\tTabbed", "Plain Bentley"}


def test_export_writes_amounts_in_major_units_of_each_currency(app, london, tokyo):
    kuwait = factories.location("KWI", name="Kuwait City", city="Kuwait", country="KW", timezone="Asia/Kuwait",
                                currency="KWD")
    factories.item(london, name="A Bentley", daily_rate=180000, security_deposit=500005, specs={"seats": 4})
    factories.item(tokyo, name="B Lexus", daily_rate=350000, security_deposit=0)
    factories.item(kuwait, name="C Falcon", daily_rate=12345, security_deposit=100)
    header, *rows = exported()
    assert header == bulk.COLUMNS
    assert [row[3:7] for row in rows] == [["LON", "GBP", "1800.00", "5000.05"], ["TYO", "JPY", "350000", "0"],
                                          ["KWI", "KWD", "12.345", "0.100"]]
    assert rows[0][-2:] == ["active", '{"seats": 4}']


def test_export_follows_the_list_filters_and_order(app, london, tokyo):
    factories.item(london, name="Riva Aquarama", category="yacht", daily_rate=300000)
    factories.item(london, name="Riva Rivamare", category="yacht", daily_rate=200000, status="retired")
    factories.item(tokyo, name="Riva Tokyo", category="yacht", daily_rate=100000)
    factories.item(london, name="Rivale Car", category="car")
    rows = exported(ItemFilters(q="riva", category="yacht", location_id=london.id, sort="-daily_rate"))
    assert [row[1] for row in rows[1:]] == ["Riva Aquarama", "Riva Rivamare"]
    rows = exported(ItemFilters(category="yacht", status="active", sort="daily_rate"))
    assert [row[1] for row in rows[1:]] == ["Riva Tokyo", "Riva Aquarama"]


def test_an_exported_file_imports_back_as_unchanged_items(admin, london, tokyo):
    factories.item(london, name="Château Lumière", category="property", specs={"bedrooms": 8, "pool": True})
    factories.item(tokyo, name="Lexus LFA", daily_rate=350000, insurance_rate_bp=0)
    text = "".join(bulk.export_csv(ItemFilters()))
    result = bulk.import_items(admin, text.encode(), bulk.new_token())
    assert (result.created, result.updated, result.unchanged) == (0, 0, 2)


def test_the_template_imports_cleanly_once_its_location_exists(admin):
    factories.location("MCO", name="Monaco Port Hercule", city="Monaco", country="MC", timezone="Europe/Monaco",
                       currency="EUR")
    result = bulk.import_items(admin, bulk.template_csv().encode(), bulk.new_token())
    assert result.created == 2
    villa = db.session.query(Item).filter_by(category="property").one()
    assert (villa.name, villa.daily_rate, villa.min_days) == ("Château Lumière", 1250000, 3)


@given(amount=st.integers(min_value=0, max_value=bulk.MAX_AMOUNT), currency=st.sampled_from(["GBP", "JPY", "KWD"]))
def test_exported_amounts_read_back_exactly(amount, currency):
    assert parse_major(bulk.major_units(amount, currency), currency) == amount


# --- Bulk price and status changes ------------------------------------------------------------------------------


def change_prices(actor, percent: str, filters: ItemFilters | None = None) -> bulk.BulkPlan:
    return bulk.apply_bulk_change(actor, filters or ItemFilters(), bulk.BulkChange("price", percent), bulk.new_token())


def rates() -> dict[str, int]:
    return {item.name: item.daily_rate for item in db.session.query(Item)}


def test_ten_percent_off_is_exact_in_pounds_and_yen(admin, london, tokyo):
    factories.item(london, name="Ferrari", daily_rate=180000)  # £1,800.00
    factories.item(london, name="Odd pence", daily_rate=123457)  # £1,234.57 → 1,111.113 → £1,111.11
    factories.item(tokyo, name="Lexus", daily_rate=350000)
    factories.item(tokyo, name="Half yen", daily_rate=15)  # ¥13.5 → ¥14, half-up
    plan = change_prices(admin, "-10")
    assert plan.count == 4 and plan.basis_points == -1000
    assert rates() == {"Ferrari": 162000, "Odd pence": 111111, "Lexus": 315000, "Half yen": 14}


def test_twelve_and_a_half_percent_more_rounds_half_up(admin, london, tokyo):
    factories.item(london, name="Ferrari", daily_rate=180000)
    factories.item(london, name="Odd pence", daily_rate=123457)  # 138,889.125 → 138,889
    factories.item(tokyo, name="Lexus", daily_rate=350000)
    factories.item(tokyo, name="Four yen", daily_rate=4)  # 4.5 → 5
    change_prices(admin, "12.5")
    assert rates() == {"Ferrari": 202500, "Odd pence": 138889, "Lexus": 393750, "Four yen": 5}


def test_each_price_change_is_audited_with_before_and_after(admin, london):
    item = factories.item(london, daily_rate=180000)
    plan = change_prices(admin, "-10")
    entry = db.session.query(AuditEntry).filter_by(action="item.price_changed").one()
    assert (entry.entity_id, entry.before, entry.after) == (
        str(item.id), {"daily_rate": 180000, "currency": "GBP"}, {"daily_rate": 162000, "currency": "GBP"})
    summary = db.session.query(AuditEntry).filter_by(action="inventory.bulk_price_changed").one()
    assert summary.entity_id == plan.token and summary.after["changed"] == 1
    assert summary.after["summary"] == "Change the daily rate by −10 %, rounded half-up"


def test_a_cut_that_would_make_a_rate_zero_changes_nothing(admin, london, tokyo):
    factories.item(london, name="Ferrari", daily_rate=180000)
    factories.item(tokyo, name="One yen", daily_rate=1)
    with pytest.raises(InvalidInput, match="One yen would cost ¥0 a day"):
        change_prices(admin, "-99.99")
    assert rates() == {"Ferrari": 180000, "One yen": 1}
    assert db.session.query(AuditEntry).count() == 0


@pytest.mark.parametrize(("text", "bp"), [("-10", -1000), ("12.5", 1250), ("+0.25", 25), ("12.5 %", 1250),
                                          ("−7", -700), ("1000", 100_000), ("-99.99", -9999)])
def test_percentages_are_read_exactly(text, bp):
    assert bulk.percent_to_bp(text) == bp


@pytest.mark.parametrize("text", ["", "abc", "1e3", "12.345", "0", "-100", "1000.01", "0x10", "10,5", "NaN", "--5"])
def test_nonsense_percentages_are_refused(text):
    with pytest.raises(InvalidInput) as caught:
        bulk.percent_to_bp(text)
    assert caught.value.field == "percent"


@given(st.integers(min_value=-9999, max_value=bulk.MAX_PERCENT_BP).filter(bool))
def test_any_percentage_with_two_decimals_reads_back_to_the_same_basis_points(bp):
    text = f"{'-' if bp < 0 else ''}{abs(bp) // 100}.{abs(bp) % 100:02d}"
    assert bulk.percent_to_bp(text) == bp


def test_status_change_is_audited_per_item_and_skips_items_already_there(admin, london):
    moving = factories.item(london, name="Moving", status="active")
    factories.item(london, name="Already", status="maintenance")
    plan = bulk.apply_bulk_change(admin, ItemFilters(), bulk.BulkChange("status", status="maintenance"), "tok-1")
    assert (plan.matched, plan.count) == (2, 1)
    assert {item.status for item in db.session.query(Item)} == {"maintenance"}
    entry = db.session.query(AuditEntry).filter_by(action="item.status_changed").one()
    assert (entry.entity_id, entry.before, entry.after) == (str(moving.id), {"status": "active"},
                                                            {"status": "maintenance"})
    assert db.session.query(AuditEntry).filter_by(action="inventory.bulk_status_changed").count() == 1


def test_bulk_change_touches_only_the_filtered_items(admin, london, tokyo):
    factories.item(london, name="London yacht", category="yacht")
    factories.item(tokyo, name="Tokyo yacht", category="yacht")
    factories.item(london, name="London car", category="car")
    plan = bulk.plan_bulk_change(admin, ItemFilters(category="yacht", location_id=london.id),
                                 bulk.BulkChange("status", status="retired"))
    assert plan.count == 1 and plan.scope == "yacht · London Mayfair (LON)"
    bulk.apply_bulk_change(admin, ItemFilters(category="yacht", location_id=london.id),
                           bulk.BulkChange("status", status="retired"), plan.token, expected=plan.count)
    assert {i.name for i in db.session.query(Item).filter_by(status="retired")} == {"London yacht"}


def test_a_change_reviewed_for_other_items_is_not_applied(admin, london):
    factories.item(london, name="Ferrari")
    plan = bulk.plan_bulk_change(admin, ItemFilters(), bulk.BulkChange("price", "5"))
    factories.item(london, name="Added meanwhile")
    with pytest.raises(InvalidInput, match="2 would change now, not 1"):
        bulk.apply_bulk_change(admin, ItemFilters(), bulk.BulkChange("price", "5"), plan.token, expected=plan.count)
    assert set(rates().values()) == {180000}


def test_confirming_the_same_change_twice_cuts_prices_once(admin, london):
    factories.item(london, daily_rate=180000)
    change = bulk.BulkChange("price", "-10")
    bulk.apply_bulk_change(admin, ItemFilters(), change, "one-token", expected=1)
    with pytest.raises(bulk.AlreadyApplied):
        bulk.apply_bulk_change(admin, ItemFilters(), change, "one-token", expected=1)
    assert set(rates().values()) == {162000}


def test_a_bulk_form_without_a_token_is_refused(admin, london):
    factories.item(london)
    with pytest.raises(DomainError, match="expired"):
        bulk.apply_bulk_change(admin, ItemFilters(), bulk.BulkChange("status", status="retired"), "")
