"""Admins read the reports: filters, one chart bar per table row, tables, and the same table as CSV."""

from __future__ import annotations

import csv
import io
from urllib.parse import parse_qs, urlsplit

import pytest

from tests.conftest import soup
from tests.services.test_reports import build_business

SPRING = "from=2026-03-01&to=2026-04-30"


def table_rows(section) -> list[list[str]]:
    return [[cell.get_text(strip=True) for cell in row.find_all("td")] for row in section.select("tbody tr")]


def csv_rows(response) -> list[list[str]]:
    return list(csv.reader(io.StringIO(response.get_data(as_text=True).removeprefix("\ufeff"), newline="")))


def test_concierge_may_not_see_reports_or_their_csv(login_as):
    staff = login_as("concierge")
    assert staff.get("/reports").status_code == 403
    assert staff.get("/reports/revenue").status_code == 403
    assert staff.get("/reports/revenue.csv?table=by_month").status_code == 403


def test_index_links_every_report(login_as):
    page = login_as("admin").page("/reports")
    links = {a["href"] for a in page.select("[data-report] a")}
    assert links == {f"/reports/{name}" for name in ("revenue", "utilization", "funnel", "payments", "customers")}
    assert "never adds currencies together" in page.get_text(" ", strip=True)


@pytest.mark.parametrize("name", ["revenue", "utilization", "funnel", "payments", "customers"])
def test_each_report_shows_an_accessible_chart_per_table_with_a_bar_per_row(app, login_as, name):
    build_business()
    page = login_as("admin").page(f"/reports/{name}?{SPRING}")
    sections = page.select("section[data-table]")
    assert sections
    for section in sections:
        rows = table_rows(section)
        charts = section.select("svg[role=img]")
        if rows and rows[0][0] != "Nothing in this period.":
            assert charts, section["data-table"]
            assert sum(len(chart.select("g.bar")) for chart in charts) == len(rows)
        for chart in charts:
            labelled_by = chart["aria-labelledby"].split()
            assert chart.find("title", id=labelled_by[0]).get_text() and chart.find("desc", id=labelled_by[1])
            assert chart.select_one("[data-axis=x]").get_text() and chart.select_one("[data-axis=y]").get_text()
        assert not section.select("[style]")


def test_revenue_charts_are_one_per_currency_and_the_page_says_why(app, login_as):
    build_business()
    page = login_as("admin").page(f"/reports/revenue?{SPRING}")
    by_month = page.select_one("section[data-table=by_month]")
    assert [svg["data-chart"] for svg in by_month.select("svg")] == ["by_month-gbp", "by_month-jpy"]
    assert ["JPY", "2026-04", "¥360,000", "¥0", "¥360,000", "1"] in table_rows(by_month)
    assert "exchange-rate table" in by_month.get_text()


def test_filters_narrow_the_tables_and_keep_to_the_csv_link(app, login_as):
    business = build_business()
    staff = login_as("admin")
    page = staff.page(f"/reports/revenue?{SPRING}&location={business.tokyo.id}")
    section = page.select_one("section[data-table=by_location]")
    assert [row[1] for row in table_rows(section)] == ["Tokyo Ginza"]
    link = section.find("a", string="Download this table (CSV)")["href"]
    assert parse_qs(urlsplit(link).query) == {"table": ["by_location"], "from": ["2026-03-01"], "to": ["2026-04-30"],
                                             "location": [str(business.tokyo.id)]}
    rows = csv_rows(staff.get(link))
    assert rows == [["Currency", "Location", "Captured", "Refunded", "Net revenue", "Payments"],
                    ["JPY", "Tokyo Ginza", "360000", "0", "360000", "1"]]
    yachts = staff.page("/reports/utilization?from=2026-03-01&to=2026-03-31&category=yacht")
    assert [row[0] for row in table_rows(yachts.select_one("section[data-table=by_item]"))] == ["Riva Aquariva"]


def test_csv_matches_the_table_and_neutralises_formulas(app, login_as):
    build_business(grace_name="=cmd|' /C calc'!A0")
    staff = login_as("admin")
    page = staff.page(f"/reports/customers?{SPRING}")
    shown = [row[0] for row in table_rows(page.select_one("section[data-table=lifetime_value]"))]
    response = staff.get(f"/reports/customers.csv?table=lifetime_value&{SPRING}")
    assert response.mimetype == "text/csv" and "attachment" in response.headers["Content-Disposition"]
    exported = csv_rows(response)
    assert [row[0] for row in exported[1:]] == [name if not name.startswith("=") else "'" + name for name in shown]
    assert "'=cmd|' /C calc'!A0" in [row[0] for row in exported]


def test_odd_filters_fall_back_and_unknown_reports_are_404(app, login_as):
    staff = login_as("admin")
    assert staff.get("/reports/funnel?from=0001-01-01&to=9999-12-31&location=abc&category=boat").status_code == 200
    assert staff.get("/reports/funnel?from=nope").status_code == 200
    assert staff.get("/reports/utilization?location=99999999999&category=car").status_code == 200
    assert staff.get("/reports/customers.csv?table=tiers&location=99999999999").status_code == 200
    assert staff.get("/reports/nope").status_code == 404
    assert staff.get("/reports/revenue.csv?table=nope").status_code == 404


def test_htmx_filtering_returns_the_report_alone(app, login_as):
    response = login_as("admin").get(f"/reports/payments?{SPRING}", headers={"HX-Request": "true"})
    fragment = soup(response)
    assert fragment.find("html") is None and fragment.find("form", class_="filters") is None
    assert fragment.select("section[data-table]")
