"""No secret, password, token or card number ends up in logs, error records, audit entries or staff pages.

Real flows run with distinctive secrets: an owner signs in (after one wrong guess), creates a colleague
and resets a password; a customer opens a checkout link, starts a card payment (the client secret comes
back from a local fake Stripe), types a card number where it does not belong, and the browser reports a
script error quoting it; Stripe delivers signed events, and a forger tries the wrong secret. Then every
log line (as the JSON formatter writes it), every error record, every audit entry and every staff page is
searched for each secret.
"""

from __future__ import annotations

import json
import logging
import re

import pytest
import sqlalchemy as sa

from midas.extensions import db
from midas.models import AuditEntry, ErrorEvent, ErrorGroup, WebhookEvent
from midas.observability import JsonFormatter
from tests.conftest import StaffClient, make_staff
from tests.fakes import stripe_api
from tests.fakes.stripe_api import PUBLISHABLE_KEY, SECRET_KEY, WEBHOOK_SECRET, card_booking, deliver, event
from tests.reliability.demo_targets import pages, record_pages

fake_stripe, stripe_server = stripe_api.fake_stripe, stripe_api.stripe_server
OWNER_PASSWORD = "Owner-Passphrase-7fQ2z!"
WRONG_GUESS = "Wrong-Guess-Xk93p#"
NEW_STAFF_PASSWORD = "Colleague-Passphrase-4Lm8"
RESET_PASSWORD = "Reset-Passphrase-9Vt1w"
CARD = "4242424242424242"
CARD_SPACED = "4242 4242 4242 4242"


@pytest.fixture
def captured_logs(caplog):
    caplog.set_level(logging.DEBUG)
    return caplog


def log_text(records: list[logging.LogRecord]) -> str:
    """Each record as production writes it: one JSON line with its extra fields, and any traceback."""
    formatter = JsonFormatter()
    return "\n".join(formatter.format(record) for record in records)


def stored_text(*models) -> str:
    db.session.rollback()
    rows = []
    for model in models:
        for row in db.session.scalars(sa.select(model)):
            rows.append(json.dumps({c.key: getattr(row, c.key) for c in model.__table__.columns}, default=str))
    return "\n".join(rows)


def staff_flows(app) -> dict[str, str]:
    """Sign-in (with one wrong guess), a new colleague, a password reset; returns the secrets they used."""
    owner_user = make_staff("owner", email="secret-owner@midas.test", password=OWNER_PASSWORD)
    owner = StaffClient(app.test_client())
    assert owner.login(owner_user.email, WRONG_GUESS).status_code == 422
    assert owner.login(owner_user.email, OWNER_PASSWORD).status_code == 302
    cookie = owner.client.get_cookie("session").value
    token = owner.csrf_token()
    response = owner.client.post("/staff/new", data={"csrf_token": token, "name": "Colleague", "role": "concierge",
                                                     "email": "colleague@midas.test", "password": NEW_STAFF_PASSWORD})
    assert response.status_code in (200, 302, 303)
    colleague = db.session.scalar(sa.select(sa.text("id")).select_from(sa.table("staff_users"))
                                  .where(sa.text("email = 'colleague@midas.test'")))
    response = owner.client.post(f"/staff/{colleague}/password", data={"csrf_token": token,
                                                                       "password": RESET_PASSWORD})
    assert response.status_code in (200, 302, 303)
    # A too-short password is refused: its echo must not leak either.
    owner.client.post(f"/staff/{colleague}/password", data={"csrf_token": token, "password": "short1"})
    return {"owner password": OWNER_PASSWORD, "wrong guess": WRONG_GUESS, "new password": NEW_STAFF_PASSWORD,
            "reset password": RESET_PASSWORD, "session cookie": cookie, "csrf token": token}


def checkout_flows(app) -> dict[str, str]:
    """A customer's card checkout, a card number typed into the wrong place, a script error quoting it."""
    booking = card_booking()
    customer = app.test_client()
    page = customer.get(f"/pay/{booking.checkout_token}").get_data(as_text=True)
    csrf = re.search(r'name="csrf-token" content="([^"]+)"', page).group(1)
    intent = customer.post(f"/pay/{booking.checkout_token}/intent",
                           headers={"X-CSRFToken": csrf, "Accept": "application/json"})
    assert intent.status_code == 200, intent.get_data(as_text=True)
    client_secret = intent.json["client_secret"]
    customer.post(f"/pay/{booking.checkout_token}/offline", data={"csrf_token": csrf, "method": CARD_SPACED})
    customer.post(f"/pay/{booking.checkout_token}/offline", data={"csrf_token": csrf, "method": CARD,
                                                                  "card_number": CARD, "cvc": "123"})
    customer.post("/errors", json={"message": f"TypeError: card {CARD} rejected", "source": "checkout.js",
                                   "url": f"http://localhost/pay/{booking.checkout_token}?card={CARD}"},
                  headers={"Origin": "http://localhost"})
    customer.get(f"/pay/{booking.checkout_token}/status?card={CARD}")
    return {"checkout token": booking.checkout_token, "client secret": client_secret,
            "card number": CARD, "spaced card number": CARD_SPACED, "stripe secret key": SECRET_KEY}


def webhook_flows(app) -> dict[str, str]:
    """Signed deliveries (one that cannot be placed), and a forgery signed with a guessed secret."""
    provider = app.test_client()
    intent = stripe_api.payment_intent(amount=1000, currency="eur", status="succeeded",
                                       metadata={"booking_reference": "MID-NOPE00", "note": f"card {CARD}"})
    assert deliver(provider, event("payment_intent.succeeded", intent)).status_code == 200
    assert deliver(provider, event("charge.refunded", stripe_api.charge())).status_code == 200
    forged = deliver(provider, event("charge.refunded", stripe_api.charge()), secret="whsec_guessed0000000000000")
    assert forged.status_code == 400
    stored = db.session.scalar(sa.select(WebhookEvent.payload).where(WebhookEvent.type == "payment_intent.succeeded"))
    assert intent["client_secret"] not in json.dumps(stored)  # redacted before it is stored
    return {"webhook secret": WEBHOOK_SECRET, "event client secret": intent["client_secret"]}


def test_no_secret_reaches_logs_error_records_audit_entries_or_pages(app, fake_stripe, captured_logs,
                                                                     reliability_report):
    secrets = {**staff_flows(app), **checkout_flows(app), **webhook_flows(app)}
    db.session.rollback()
    assert db.session.query(ErrorEvent).count() > 0, "the flows recorded no errors: the test proved nothing"
    assert db.session.query(AuditEntry).count() > 0
    assert len(captured_logs.records) > 20, "nothing was logged: the test proved nothing"
    owner = StaffClient(app.test_client())
    owner.login("secret-owner@midas.test", OWNER_PASSWORD)
    shown = []
    for url in [url for _e, url in pages(app, MatchNothing())] + record_pages():
        response = owner.get(url)
        shown.append(response.get_data(as_text=True))
    places = {
        "logs": log_text(captured_logs.records),
        "error records": stored_text(ErrorGroup, ErrorEvent),
        "audit entries": stored_text(AuditEntry),
        "staff pages": "\n".join(shown),
    }
    visible_by_design = {("staff pages", "checkout token"), ("staff pages", "csrf token")}
    leaks = [(place, name) for place, text in places.items() for name, secret in secrets.items()
             if secret in text and (place, name) not in visible_by_design]
    reliability_report.add("bad_inputs", len(secrets))
    assert leaks == []
    assert PUBLISHABLE_KEY  # publishable keys are public by design; the secret key is the one that must not leak


class MatchNothing(dict):
    """URL placeholders for list pages: the flows' own records are reached through record_pages()."""

    def __missing__(self, key: str) -> str:
        return "987654"
