"""Hostile text in every form field, query parameter and CSV import: never a 500, never executed, shown escaped.

The forms are not listed by hand: every page of the demo business (and one detail page per booking,
payment and refund state) is parsed, and each kind of form found is submitted by a signed-in owner with
each payload — once in every field it has, once in its free-text fields only (so the payload is stored
where a person could type it). Then every page is read again: none may hold a script, an on* handler or
a javascript: URL that the payloads smuggled in, and the stored payloads must show up escaped.
tests/reliability/test_attack_xss_browser.py shows the same pages in Chromium with no dialog firing.
"""

from __future__ import annotations

import csv
import io
import re
from urllib.parse import quote

import pytest
from sqlalchemy import func, select

from midas.extensions import db
from midas.models import Item, Location
from midas.services.demo import seed_demo
from midas.services.inventory_bulk import COLUMNS, TEMPLATE_ROWS
from tests.conftest import StaffClient, make_staff
from tests.reliability.demo_targets import every_form, pages, real_ids, record_pages
from tests.reliability.test_attack_headers import inline_script_problems

SCRIPT = "<script>alert(1)</script>"
IMG = '"><img src=x onerror=alert(1)>'
PAYLOADS = {
    "sql quote": "' OR '1'='1' --",
    "sql statement": "x'); DROP TABLE bookings; --",
    "sql wildcards": "%_\\' \" ` ;",
    "very long": "Ω" * 20_000,
    "nul byte": "before\x00after",
    "rtl override": "\u202egnp.exe\u202c invoice",
    "zero width": "a\u200b\u200c\u200d\u2060\ufeffb",
    "astral emoji": "🏎️💎👨‍👩‍👧‍👦 𝕄𝕚𝕕𝕒𝕤 🇲🇨",
    "combining marks": "Z̴̡̪͓a̷̰l̴̙g̸̣o̶͇ " + "e\u0301" * 40,
    "script tag": SCRIPT,
    "attribute break-out": IMG,
    "svg onload": "<svg/onload=alert(1)>",
    "javascript url": "javascript:alert(1)",
    "template syntax": "{{ 7*7 }}{% print(1) %}${7*7}",
}
STORED_PAYLOADS = ("script tag", "attribute break-out", "very long", "astral emoji", "rtl override")
FREE_TEXT = re.compile(r"name|note|reason|description|special_requests|q$|customer_q|city|decision")
QUERY_NAMES = ("q", "page", "sort", "from", "to", "status", "location", "category", "period", "since", "until")


@pytest.fixture
def owner(app) -> StaffClient:
    seed_demo()
    make_staff("owner", email="injection-owner@midas.test")
    client = StaffClient(app.test_client())
    assert client.login("injection-owner@midas.test").status_code == 302
    return client


def signed_in(owner: StaffClient, token: str) -> str:
    """Some forms end sessions (a password reset, a deactivation): sign in again if one ended ours."""
    if owner.get("/customers/search").status_code == 302:
        assert owner.login("injection-owner@midas.test").status_code == 302
        return owner.csrf_token()
    return token


def test_hostile_text_in_every_form_field_is_refused_or_stored_and_shown_escaped(app, owner, reliability_report):
    forms = [form for form in every_form(app, owner, real_ids()) if form.method == "POST"]
    assert len(forms) > 40
    tried, server_errors = 0, []
    token = owner.csrf_token()
    for form in forms:
        free = [name for name in form.text_fields if FREE_TEXT.search(name)]
        for label, payload in PAYLOADS.items():
            variants = [(form.text_fields, payload)]
            if free and label in STORED_PAYLOADS:  # stored: each carries the scripts, whichever is saved last
                variants.append((free, f"{payload} {SCRIPT}{IMG}"))
            for fields, value in variants:
                data = form.data(**{name: value for name in fields})
                data["csrf_token"] = token
                response = owner.client.post(form.action, data=data)
                tried += 1
                if response.status_code == 500:  # 503 is an honest answer: that provider is not configured here
                    server_errors.append((form.action, label, response.status_code))
                else:
                    assert inline_script_problems(response.get_data(as_text=True)) == [], (form.action, label)
        token = signed_in(owner, token)
    reliability_report.add("bad_inputs", tried)
    assert server_errors == [], server_errors
    signed_in(owner, token)
    shown = assert_every_page_escapes(app, owner)
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in shown, "no payload was stored: the test proved nothing"


def assert_every_page_escapes(app, owner: StaffClient) -> str:
    """Read every page again; returns all the HTML, for checks on what was stored."""
    everything = []
    for url in [url for _e, url in pages(app, real_ids())] + record_pages():
        response = owner.get(url)
        html = response.get_data(as_text=True)  # read to the end: a streamed export closes its context
        assert response.status_code != 500, url
        if response.mimetype == "text/html":
            assert inline_script_problems(html) == [], url
            everything.append(html)
    return "\n".join(everything)


def test_hostile_query_parameters_never_break_a_page(app, owner, reliability_report):
    filters = [form for form in every_form(app, owner, real_ids()) if form.method == "GET"]
    urls = [url for _e, url in pages(app, real_ids())] + record_pages()
    tried, server_errors = 0, []
    for form in filters:
        for label, payload in PAYLOADS.items():
            response = owner.get(form.action, query_string={name: payload for name in form.text_fields})
            response.get_data()
            tried += 1
            if response.status_code == 500:
                server_errors.append((form.action, label))
            elif response.mimetype == "text/html":
                assert inline_script_problems(response.get_data(as_text=True)) == [], (form.action, label)
    for url in urls:  # every page, with every common argument hostile (and raw bytes that are not UTF-8)
        for payload in (f"{PAYLOADS['sql quote']}{SCRIPT}{IMG}", "%ff%fe%00"):
            query = "&".join(f"{name}={quote(payload)}" for name in QUERY_NAMES) if payload[0] != "%" else \
                "q=%ff%fe&page=%c0%af"
            response = owner.get(f"{url}{'&' if '?' in url else '?'}{query}")
            response.get_data()  # streamed exports run to the end, closing their context
            tried += 1
            if response.status_code == 500:
                server_errors.append((url, payload))
            elif response.mimetype == "text/html":
                assert inline_script_problems(response.get_data(as_text=True)) == [], (url, payload)
    reliability_report.add("bad_inputs", tried)
    assert server_errors == [], server_errors


def upload(owner: StaffClient, rows: list[list[str]], csrf_token: str):
    page = owner.get("/inventory/import").get_data(as_text=True)
    token = re.search(r'name="token"[^>]*value="([^"]+)"', page) or re.search(r'value="([^"]+)"[^>]*name="token"', page)
    buffer = io.StringIO()
    csv.writer(buffer).writerows([COLUMNS, *rows])  # raw cells, as an attacker's spreadsheet would save them
    body = "\ufeff" + buffer.getvalue()
    return owner.client.post("/inventory/import", content_type="multipart/form-data", data={
        "csrf_token": csrf_token, "token": token.group(1),
        "file": (io.BytesIO(body.encode()), "items.csv")})


def test_hostile_csv_import_is_refused_cell_by_cell_or_imported_escaped(app, owner, reliability_report):
    location = db.session.scalar(select(Location).limit(1))
    filled = {"location_code": location.code, "currency": location.currency}
    template = [filled.get(column, cell) for column, cell in zip(COLUMNS, TEMPLATE_ROWS[0], strict=True)]
    csrf_token = owner.csrf_token()
    control = upload(owner, [template], csrf_token)
    assert control.status_code == 302, re.findall(r"<li>(.*?)</li>", control.get_data(as_text=True))
    tried = 0
    for column in COLUMNS:
        for label, payload in PAYLOADS.items():
            row = [payload if name == column else cell for name, cell in zip(COLUMNS, template, strict=True)]
            before = db.session.scalar(select(func.count()).select_from(Item))
            response = upload(owner, [row], csrf_token)
            tried += 1
            assert response.status_code != 500, (column, label)
            assert inline_script_problems(response.get_data(as_text=True)) == [], (column, label)
            if response.status_code >= 400:
                assert db.session.scalar(select(func.count()).select_from(Item)) == before, (column, label)
    for formula in ("=HYPERLINK(\"http://evil.example\")", "+1+cmd|' /C calc'!A0", "@SUM(1)"):
        row = [formula if name == "name" else cell for name, cell in zip(COLUMNS, template, strict=True)]
        assert upload(owner, [row], csrf_token).status_code == 422, formula  # a spreadsheet would run it: refused
        tried += 1
    reliability_report.add("bad_inputs", tried)
    named = {name for name in db.session.scalars(select(Item.name))}
    assert SCRIPT in named  # a hostile but valid name is kept as typed …
    listing = owner.get("/inventory", query_string={"q": "script"}).get_data(as_text=True)
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in listing and inline_script_problems(listing) == []  # … escaped
    export = owner.get("/inventory/export.csv").get_data(as_text=True)
    assert not any(line.split(",")[1].startswith(("=", "+", "@")) for line in export.splitlines()[1:] if "," in line)
