"""Failures are captured scrubbed and grouped, and capturing never fails the caller."""

from __future__ import annotations

import json

from sqlalchemy import text

from midas.extensions import db
from midas.models import ErrorEvent, ErrorGroup
from midas.services.error_capture import capture_exception, fingerprint, flush_deferred, record_error


def _raise_in_our_code(message: str) -> None:
    raise ValueError(message)


def _boom(message: str) -> BaseException:
    try:
        _raise_in_our_code(message)
    except ValueError as exc:
        return exc


def test_the_same_error_a_hundred_times_is_one_group_counting_one_hundred(app):
    for n in range(100):
        capture_exception(_boom(f"booking {n} could not be priced"))
    group = db.session.query(ErrorGroup).one()
    assert group.occurrences == 100 and db.session.query(ErrorEvent).count() == 100
    assert group.error_type == "ValueError" and group.category == "SYSTEM"


def test_messages_differing_only_in_ids_group_together_but_other_frames_do_not():
    assert fingerprint("ValueError", "Booking MID-7KQ3X9 failed for pi_3Nabcdef", "a.py:f") == \
        fingerprint("ValueError", "Booking MID-ABCDEF failed for pi_9Zzzzzzz", "a.py:f")
    assert fingerprint("ValueError", "x 1", "a.py:f") != fingerprint("ValueError", "x 1", "b.py:g")


def test_secrets_in_context_never_reach_the_database(app):
    record_error("PAYMENT", "HIGH", "Card declined for 4242 4242 4242 4242", context={
        "password": "hunter2-hunter2", "stripe_key": "sk_live_51Habcdefghijklmnop",
        "headers": {"Authorization": "Bearer abc.def.ghi-token-value"},
        "note": "key sk_test_abcdefghijkl and whsec_abcdefghijkl in text", "card_number": "4000000000000002",
    })
    stored = json.dumps([(e.message, e.context) for e in db.session.query(ErrorEvent)]) + \
        json.dumps([g.message for g in db.session.query(ErrorGroup)])
    secrets = ("hunter2", "sk_live_51H", "abc.def.ghi", "sk_test_abc", "whsec_abc", "4242 4242", "4000000000000002")
    for secret in secrets:
        assert secret not in stored, secret


def test_a_resolved_group_that_happens_again_reopens_as_a_regression(app):
    group = record_error("WEBHOOK", "MEDIUM", "Signature verification failed")
    db.session.get(ErrorGroup, group.id).status = "resolved"
    db.session.commit()
    record_error("WEBHOOK", "MEDIUM", "Signature verification failed")
    reopened = db.session.get(ErrorGroup, group.id)
    assert (reopened.status, reopened.regression, reopened.occurrences) == ("open", True, 2)


def test_payment_failures_carry_the_money_at_risk(app):
    record_error("PAYMENT", "HIGH", "card_declined", amount=250000, currency="EUR")
    event = db.session.query(ErrorEvent).one()
    assert (event.amount, event.currency) == (250000, "EUR")


def test_capture_survives_its_own_database_failing(app, monkeypatch):
    from midas.services import error_capture

    monkeypatch.setattr(error_capture, "_group_for", lambda *a: (_ for _ in ()).throw(RuntimeError("db down")))
    assert record_error("SYSTEM", "HIGH", "anything") is None


def test_an_exception_in_a_view_is_captured_and_the_visitor_gets_the_500_page(app, monkeypatch):
    monkeypatch.setitem(app.config, "PROPAGATE_EXCEPTIONS", False)
    from midas.services import checkout

    monkeypatch.setattr(checkout, "for_token", lambda token: _raise_in_our_code("checkout exploded"))
    response = app.test_client().get("/pay/abcdefghijklmnopqrstuvwxyz")
    assert response.status_code == 500 and "Something went wrong on our side" in response.get_data(as_text=True)
    event = db.session.query(ErrorEvent).one()
    assert event.context["path"] == "/pay/abcdefghijklmnopqrstuvwxyz" and "checkout exploded" in event.stack_trace


def test_capture_is_its_own_transaction_and_survives_the_callers_rollback(app):
    db.session.execute(text("SELECT 1"))
    record_error("BOOKING", "LOW", "conflict while booking")
    db.session.rollback()
    flush_deferred()  # what the app context's teardown does (SQLite waits for the caller's write lock to go)
    assert db.session.query(ErrorGroup).count() == 1
