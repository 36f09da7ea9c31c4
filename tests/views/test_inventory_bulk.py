"""Staff import, export and change the fleet in bulk from the inventory pages."""

from __future__ import annotations

import csv
import io
from datetime import date

from midas.extensions import db
from midas.models import AuditEntry, Item
from midas.services.inventory_bulk import COLUMNS
from tests import factories
from tests.conftest import soup


def upload(staff, content: bytes, filename: str = "items.csv"):
    """Choose a file on the import page and submit it, as a browser would (with the page's one-time token)."""
    token = staff.page("/inventory/import").find("input", {"name": "token"})["value"]
    return staff.post("/inventory/import", {"file": (io.BytesIO(content), filename), "token": token},
                      content_type="multipart/form-data")


def csv_rows(response) -> list[list[str]]:
    return list(csv.reader(io.StringIO(response.get_data(as_text=True).removeprefix("\ufeff"), newline="")))


def hidden_fields(form) -> dict[str, str]:
    return {field["name"]: field.get("value", "") for field in form.select("input[type=hidden]")}


def test_concierges_get_403_on_import_and_bulk_changes(login_as):
    item = factories.item()
    concierge = login_as("concierge")
    assert concierge.get("/inventory/import").status_code == 403
    assert concierge.get("/inventory/import/template.csv").status_code == 403
    assert upload_as_forbidden(concierge).status_code == 403
    response = concierge.post("/inventory/bulk", {"action": "status", "status": "retired", "confirm": "yes",
                                                  "token": "abc"})
    assert response.status_code == 403
    assert db.session.get(Item, item.id).status == "active"


def upload_as_forbidden(staff):
    return staff.post("/inventory/import", {"file": (io.BytesIO(b"name\n"), "items.csv"), "token": "t"},
                      content_type="multipart/form-data")


def test_concierges_see_export_but_not_import_or_bulk_buttons(login_as):
    factories.item()
    page = login_as("concierge").page("/inventory")
    assert page.find("a", string="Export CSV")
    assert not page.find("a", string="Import CSV") and not page.select("form[action='/inventory/bulk']")


def test_admin_uploads_a_file_with_bad_rows_and_sees_every_row_error(login_as):
    factories.location("LON")
    response = upload(login_as("admin"), b"name,category,location_code,daily_rate\n"
                                         b"Aston Martin DB12,car,LON,900\n"
                                         b"Ferrari Roma,car,LON,abc\n"
                                         b"=cmd|' /C calc'!A0,car,PAR,100\n")
    assert response.status_code == 422
    errors = [li.get_text() for li in soup(response).select(".import-errors li")]
    assert "Row 3: daily_rate: 'abc' is not an amount in GBP (e.g. 1800.00)" in errors
    assert any(e.startswith("Row 4: name: \"=cmd|' /C calc'!A0\" starts with '='") for e in errors)
    assert "Row 4: location_code: no location has the code 'PAR'" in errors
    assert "Nothing was imported: 3 problems found" in soup(response).select_one(".import-errors h2").get_text()
    assert db.session.query(Item).count() == 0


def test_admin_imports_a_good_file_and_sees_the_items_listed(login_as):
    factories.location("LON")
    admin = login_as("admin")
    response = upload(admin, "\ufeffname,category,location_code,daily_rate\n"
                             "Château Lumière,property,LON,12500\nRiva Aquarama,yacht,LON,\"1,800.50\"\n".encode())
    assert response.status_code == 302 and response.headers["Location"] == "/inventory"
    page = admin.page("/inventory")
    assert "Imported 2 items." in page.select_one(".flashes").get_text()
    assert "Château Lumière" in page.get_text() and "£1,800.50" in page.get_text()
    assert db.session.query(AuditEntry).filter_by(action="inventory.imported").one().after["count"] == 2


def test_a_double_submitted_upload_imports_once(login_as):
    factories.location("LON")
    admin = login_as("admin")
    token = admin.page("/inventory/import").find("input", {"name": "token"})["value"]
    for _ in range(2):
        response = admin.post("/inventory/import", {
            "file": (io.BytesIO(b"name,category,location_code,daily_rate\nVespa GTS,car,LON,90\n"), "items.csv"),
            "token": token}, content_type="multipart/form-data")
        assert response.status_code == 302
    assert db.session.query(Item).count() == 1
    assert "already done" in admin.page("/inventory").select_one(".flashes").get_text()


def test_an_upload_that_is_not_a_csv_file_is_refused_on_the_form(login_as):
    response = upload(login_as("owner"), b"PK\x03\x04 workbook", filename="items.xlsx")
    assert response.status_code == 422
    assert "Upload a .csv file" in soup(response).select_one("#file-errors").get_text()


def test_a_file_over_two_megabytes_is_refused(login_as):
    body = (b'--b\r\nContent-Disposition: form-data; name="file"; filename="items.csv"\r\n\r\n'
            + b"x" * (2 * 1024 * 1024) + b"\r\n--b--\r\n")  # raw bytes: no temporary file left open by the test
    response = login_as("admin").client.post("/inventory/import", data=body,
                                             content_type="multipart/form-data; boundary=b")
    assert response.status_code == 413
    assert "That upload is too large" in response.get_data(as_text=True)


def test_the_template_downloads_as_csv_with_the_header_and_two_examples(login_as):
    response = login_as("admin").get("/inventory/import/template.csv")
    assert response.status_code == 200 and response.mimetype == "text/csv"
    assert response.headers["Content-Disposition"] == 'attachment; filename="midas-inventory-template.csv"'
    header, *examples = csv_rows(response)
    assert header == COLUMNS and len(examples) == 2
    assert soup(login_as("admin").get("/inventory/import")).find("a", href="/inventory/import/template.csv")


def test_export_under_filters_returns_only_the_filtered_rows(login_as):
    london = factories.location("LON")
    factories.item(london, name="Riva Aquarama", category="yacht", daily_rate=300000)
    factories.item(london, name="Riva Rivamare", category="yacht", status="retired")
    factories.item(london, name="Rivale Car", category="car")
    factories.item(london, name="Sunseeker 95", category="yacht")
    response = login_as("concierge").get("/inventory/export.csv?q=riva&category=yacht&status=active")
    assert response.status_code == 200 and response.mimetype == "text/csv"
    assert response.headers["Content-Disposition"] == (
        f'attachment; filename="midas-inventory-{date.today():%Y-%m-%d}.csv"')
    header, *rows = csv_rows(response)
    assert header == COLUMNS
    assert [(row[1], row[5]) for row in rows] == [("Riva Aquarama", "3000.00")]


def test_the_export_link_follows_the_filters_even_when_htmx_reloads_the_results(login_as):
    factories.item()
    staff = login_as("concierge")
    page = soup(staff.get("/inventory?category=yacht&q=riva", headers={"HX-Request": "true"}))
    href = page.find("a", string="Export CSV")["href"]
    assert href.startswith("/inventory/export.csv?") and "category=yacht" in href and "q=riva" in href


def test_bulk_price_cut_shows_how_many_items_change_then_applies_after_confirmation(login_as):
    london = factories.location("LON")
    tokyo = factories.location("TYO", name="Tokyo Ginza", city="Tokyo", country="JP", timezone="Asia/Tokyo",
                               currency="JPY")
    factories.item(london, name="Ferrari SF90", daily_rate=180000)
    factories.item(tokyo, name="Lexus LFA", daily_rate=350000)
    factories.item(london, name="Riva Aquarama", category="yacht", daily_rate=300000)
    admin = login_as("admin")
    bulk_form = admin.page("/inventory?category=car").select_one("form[action='/inventory/bulk']")
    assert hidden_fields(bulk_form)["category"] == "car"
    review = admin.post("/inventory/bulk", {**hidden_fields(bulk_form), "action": "price", "percent": "-10"})
    assert review.status_code == 200
    page = soup(review)
    assert "This will change 2 items." in page.select_one("[data-bulk-count]").get_text()
    assert "£1,800.00" in page.get_text() and "£1,620.00" in page.get_text() and "¥315,000" in page.get_text()
    assert {i.daily_rate for i in db.session.query(Item)} == {180000, 350000, 300000}  # nothing yet
    confirm = page.find("button", string="Apply to 2 items").find_parent("form")
    response = admin.post("/inventory/bulk", hidden_fields(confirm))
    assert response.status_code == 302 and response.headers["Location"] == "/inventory?category=car"
    assert {i.name: i.daily_rate for i in db.session.query(Item)} == {
        "Ferrari SF90": 162000, "Lexus LFA": 315000, "Riva Aquarama": 300000}
    assert db.session.query(AuditEntry).filter_by(action="item.price_changed").count() == 2
    flashes = admin.page("/inventory").select_one(".flashes").get_text()
    assert "2 items changed" in flashes


def test_confirming_a_bulk_change_twice_applies_it_once(login_as):
    factories.item(daily_rate=180000)
    admin = login_as("admin")
    review = soup(admin.post("/inventory/bulk", {"action": "price", "percent": "12.5"}))
    confirm = hidden_fields(review.find("button", string="Apply to 1 item").find_parent("form"))
    assert admin.post("/inventory/bulk", confirm).status_code == 302
    assert admin.post("/inventory/bulk", confirm).status_code == 302
    assert db.session.query(Item).one().daily_rate == 202500
    assert "already done" in admin.page("/inventory").select_one(".flashes").get_text()


def test_bulk_status_change_retires_the_matching_items(login_as):
    london = factories.location("LON")
    factories.item(london, name="Old Jet", category="jet")
    factories.item(london, name="New Car", category="car")
    owner = login_as("owner")
    review = soup(owner.post("/inventory/bulk", {"action": "status", "status": "retired", "category": "jet"}))
    confirm = hidden_fields(review.find("button", string="Apply to 1 item").find_parent("form"))
    assert owner.post("/inventory/bulk", confirm).status_code == 302
    assert {i.name: i.status for i in db.session.query(Item)} == {"Old Jet": "retired", "New Car": "active"}
    assert db.session.query(AuditEntry).filter_by(action="item.status_changed").count() == 1


def test_a_bad_percentage_is_explained_and_changes_nothing(login_as):
    factories.item(daily_rate=180000)
    response = login_as("admin").post("/inventory/bulk", {"action": "price", "percent": "ten"})
    assert response.status_code == 422
    assert "'ten' is not a percentage such as -10 or 12.5" in soup(response).select_one("[role=alert]").get_text()
    assert soup(response).find("input", {"name": "percent"})["value"] == "ten"
    assert db.session.query(Item).one().daily_rate == 180000
