"""Real records behind URL placeholders, and a whole-database fingerprint, for the attack tests."""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass
from urllib.parse import urlsplit

import pytest
import sqlalchemy as sa
from bs4 import BeautifulSoup
from sqlalchemy import select
from werkzeug.exceptions import HTTPException

from midas import create_app
from midas.config import Config
from midas.extensions import db
from midas.models import (
    Blackout,
    Booking,
    ErrorGroup,
    Item,
    Location,
    Notification,
    Payment,
    Refund,
    SeasonRule,
    StaffUser,
    WebhookEvent,
)
from midas.services.reports import REPORTS


def real_ids() -> dict[str, str]:
    """A real record behind every URL placeholder, so a forged request that got through would change it."""
    first = lambda query: db.session.scalar(query.limit(1))  # noqa: E731
    booking = first(select(Booking).where(Booking.status == "confirmed").order_by(Booking.id))
    return {
        "reference": booking.reference,
        "token": first(select(Booking.checkout_token).where(Booking.status == "pending_payment")
                       .where(Booking.checkout_token.is_not(None))) or "no-token",
        "item_id": str(first(select(Item.id).order_by(Item.id))),
        "customer_id": str(booking.customer_id),
        "payment_id": str(first(select(Payment.id).order_by(Payment.id))),
        "refund_id": str(first(select(Refund.id).order_by(Refund.id))),
        "notification_id": str(first(select(Notification.id).order_by(Notification.id))),
        "group_id": str(first(select(ErrorGroup.id).order_by(ErrorGroup.id))),
        "event_id": str(first(select(WebhookEvent.id).order_by(WebhookEvent.id))),
        "blackout_id": str(first(select(Blackout.id).order_by(Blackout.id))),
        "season_id": str(first(select(SeasonRule.id).order_by(SeasonRule.id))),
        "location_id": str(first(select(Location.id).order_by(Location.id))),
        "user_id": str(first(select(StaffUser.id).where(StaffUser.role == "concierge"))),
        "staff_id": str(first(select(StaffUser.id).where(StaffUser.role == "concierge"))),
        "queue_name": "default", "job_id": "demo-job", "name": next(iter(REPORTS)), "filename": "css/midas.css",
    }


def concrete(rule: str, ids: dict[str, str]) -> str:
    return re.sub(r"<(?:\w+:)?(\w+)>", lambda match: ids[match.group(1)], rule)


def fingerprint() -> dict[str, str]:
    """Every table's rows, hashed: a forged request must leave each one byte for byte as it was."""
    db.session.rollback()
    digests = {}
    with db.engine.connect() as conn:
        for table in db.metadata.sorted_tables:
            rows = conn.execute(sa.select(table).order_by(*table.primary_key.columns)).all()
            digests[table.name] = hashlib.sha256(repr(rows).encode()).hexdigest()
    return digests


def pages(app, ids: dict[str, str]) -> list[tuple[str, str]]:
    """(endpoint, url) of every GET route, with real records behind its placeholders."""
    found = []
    for rule in app.url_map.iter_rules():
        if "GET" not in rule.methods or rule.endpoint == "static":
            continue
        try:
            found.append((rule.endpoint, concrete(rule.rule, ids)))
        except KeyError:  # a placeholder with no record to stand for it (a report name): its own list below
            continue
    return sorted(found)


@dataclass(frozen=True)
class Form:
    """A form as a browser would submit it: where, how, and the values the page filled in."""

    page: str
    action: str
    method: str
    fields: tuple[tuple[str, str], ...]  # (name, value) in page order; repeated names allowed
    text_fields: tuple[str, ...]  # names a person types into (where payloads go)
    files: tuple[str, ...]

    def data(self, **replaced: str) -> dict[str, str]:
        values = dict(self.fields)
        values.update(replaced)
        return values


TYPED = {"text", "search", "email", "tel", "url", "number", "date", "datetime-local", "time", "month", "password",
         "hidden", ""}


def forms_on(url: str, html: str) -> list[Form]:
    """Every form on a page, and one more per button that posts it somewhere else (formaction)."""
    found = []
    for form in BeautifulSoup(html, "html.parser").find_all("form"):
        action = form.get("action") or form.get("hx-post") or form.get("hx-get") or url
        method = (form.get("method") or ("post" if form.get("hx-post") else "get")).upper()
        fields, typed, files = [], [], []
        for control in form.find_all(["input", "select", "textarea"]):
            name = control.get("name")
            if not name or control.has_attr("disabled"):
                continue
            kind = (control.get("type") or "").lower()
            if control.name == "select":
                chosen = control.find("option", selected=True) or control.find("option")
                fields.append((name, chosen.get("value", chosen.get_text()) if chosen else ""))
            elif control.name == "textarea":
                fields.append((name, control.get_text()))
            elif kind in ("checkbox", "radio"):
                if control.has_attr("checked"):
                    fields.append((name, control.get("value", "on")))
            elif kind == "file":
                files.append(name)
                continue
            elif kind in ("submit", "button", "reset", "image"):
                continue
            else:
                fields.append((name, control.get("value", "")))
            if name != "csrf_token" and (control.name in ("textarea", "select") or kind in TYPED):
                typed.append(name)
        targets = {action} | {b["formaction"] for b in form.find_all(["button", "input"]) if b.get("formaction")}
        for target in sorted(targets):
            found.append(Form(url, urlsplit(target).path or url, method, tuple(fields), tuple(dict.fromkeys(typed)),
                              tuple(files)))
    return found


def endpoint_of(app, path: str, method: str) -> str | None:
    try:
        return app.url_map.bind("localhost").match(path, method=method)[0]
    except HTTPException:
        return None


def record_pages() -> list[str]:
    """One detail page per booking, payment and refund state, where each state's action forms appear."""
    bookings = {b.status: b.reference for b in db.session.scalars(select(Booking).order_by(Booking.id.desc()))}
    paid = db.session.scalar(select(Booking.reference).where(Booking.status == "confirmed")
                             .where(Booking.id.in_(select(Payment.booking_id).where(Payment.status == "succeeded"))))
    payments = {(p.status, p.kind, p.provider): p.id for p in db.session.scalars(select(Payment).order_by(Payment.id))}
    refunds = {r.status: r.id for r in db.session.scalars(select(Refund).order_by(Refund.id))}
    return ([f"/bookings/{reference}" for reference in bookings.values()]
            + [f"/payments/{payment_id}" for payment_id in payments.values()]
            + [f"/refunds/{refund_id}" for refund_id in refunds.values()]
            + [f"/refunds/new?booking={paid}", "/bookings/new", "/inventory/import"])


def every_form(app, client, ids: dict[str, str]) -> list[Form]:
    """One form of each kind (endpoint, method, fields) found on any page, sign-out excluded."""
    kinds = {}
    for url in [url for _endpoint, url in pages(app, ids)] + record_pages():
        response = client.get(url)
        response.get_data()  # read to the end: a streamed export closes its context
        if response.mimetype != "text/html":
            continue
        for form in forms_on(url, response.get_data(as_text=True)):
            endpoint = endpoint_of(app, form.action, form.method)
            key = (endpoint, form.method, tuple(sorted(dict(form.fields))))
            if endpoint and endpoint != "auth.logout":
                kinds.setdefault(key, form)
    return list(kinds.values())


@pytest.fixture
def production_app(app, backend_env):
    """The same database served with the production settings (as on Heroku, behind its router)."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    prod = create_app(Config({**backend_env, "MIDAS_ENV": "production", "SECRET_KEY": "production-test-key",
                              "LOG_LEVEL": "WARNING"}))
    yield prod
    with prod.app_context():
        db.engine.dispose()  # its own pool: close its connections before the test database is emptied
    root.handlers[:], root.level = handlers, level  # production logs JSON to stdout; pytest gets its own back
