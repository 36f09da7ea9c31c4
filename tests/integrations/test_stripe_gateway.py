"""The Stripe gateway: the real `stripe` SDK against a local fake Stripe API on 127.0.0.1."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from midas.integrations import stripe_gateway as gateway_module
from midas.integrations.stripe_gateway import ProviderError, StripeUnavailable, stripe_gateway
from midas.models import ErrorGroup
from tests.fakes import stripe_api
from tests.fakes.stripe_api import (
    SECRET_KEY,
    payment_intent,
    refund,
)

fake_stripe, stripe_server = stripe_api.fake_stripe, stripe_api.stripe_server


def create(key: str = "booking:1:charge:425000", **fields) -> dict:
    params = {"amount": 425000, "currency": "EUR", "idempotency_key": key,
              "metadata": {"booking_reference": "MID-7KQ3X9", "payment_id": "1"}, **fields}
    return stripe_gateway().create_payment_intent(**params)


def test_intent_creation_sends_amount_currency_metadata_and_our_idempotency_key(fake_stripe):
    intent = create()

    [call] = fake_stripe.calls("POST")
    assert call.params["amount"] == "425000" and call.params["currency"] == "eur"
    assert call.params["metadata"] == {"booking_reference": "MID-7KQ3X9", "payment_id": "1"}
    assert call.params["payment_method_types"] == ["card"]
    assert call.idempotency_key == "booking:1:charge:425000"
    assert call.headers["Authorization"] == f"Bearer {SECRET_KEY}"
    assert intent["id"] in fake_stripe.intents and intent["client_secret"].startswith(intent["id"])


def test_a_deposit_hold_is_a_manual_capture_intent(fake_stripe):
    create("booking:1:deposit:500000", amount=500000, manual_capture=True)

    [call] = fake_stripe.calls("POST")
    assert call.params["capture_method"] == "manual"
    assert call.params["payment_method_options"] == {"card": {"request_extended_authorization": "if_available"}}


def test_a_server_error_then_success_is_retried_with_the_same_key(fake_stripe):
    fake_stripe.fail_next("POST", "/v1/payment_intents", status=500)

    intent = create()

    calls = fake_stripe.calls("POST")
    assert len(calls) == 2
    assert {call.idempotency_key for call in calls} == {"booking:1:charge:425000"}
    assert list(fake_stripe.intents) == [intent["id"]]


def test_a_timeout_after_stripe_acted_is_retried_with_the_same_key_and_makes_one_intent(fake_stripe):
    fake_stripe.slow_next("POST", "/v1/payment_intents", seconds=1.5)  # longer than the 1 s test timeout

    intent = create()

    assert len(fake_stripe.calls("POST")) == 2
    assert list(fake_stripe.intents) == [intent["id"]]  # the retry got the first answer back


def test_the_same_key_with_other_parameters_is_refused_by_stripe(fake_stripe):
    create()
    with pytest.raises(ProviderError) as refused:
        create(amount=1000)
    assert refused.value.code is None and refused.value.http_status == 400 and not refused.value.retryable


def test_failures_after_the_retries_raise_a_retryable_error_recorded_as_payment_error(app, fake_stripe):
    fake_stripe.fail_next("POST", "/v1/payment_intents", status=503, times=3)

    with pytest.raises(ProviderError) as failed:
        create()

    assert failed.value.retryable and failed.value.status_code == 502
    assert "could not be reached" in str(failed.value)
    assert len(fake_stripe.calls("POST")) == 3  # one try and two retries, no more
    group = app_error_groups()[0]
    assert group.category == "PAYMENT" and group.severity == "MEDIUM"
    assert "create_payment_intent" in group.message


def test_a_card_error_keeps_stripes_codes(fake_stripe):
    body = {"error": {"type": "card_error", "code": "card_declined", "decline_code": "insufficient_funds",
                      "message": "Your card has insufficient funds."}}
    fake_stripe.fail_next("POST", "/v1/payment_intents", status=402, body=body)

    with pytest.raises(ProviderError) as declined:
        create()

    assert (declined.value.code, declined.value.decline_code) == ("card_declined", "insufficient_funds")
    assert str(declined.value) == "Your card has insufficient funds."


def test_an_unknown_intent_is_resource_missing(fake_stripe):
    with pytest.raises(ProviderError) as missing:
        stripe_gateway().retrieve_payment_intent("pi_nothing")
    assert missing.value.code == "resource_missing" and not missing.value.retryable


def test_capture_takes_part_of_a_hold_and_cancel_releases_one(fake_stripe):
    held = fake_stripe.add("payment_intents", payment_intent(amount=500000, currency="eur", capture_method="manual",
                                                             status="requires_capture", amount_capturable=500000))
    other = fake_stripe.add("payment_intents", payment_intent(status="requires_capture", amount_capturable=1099))

    captured = stripe_gateway().capture_payment_intent(held["id"], 120000, idempotency_key="payment:1:capture:120000")
    released = stripe_gateway().cancel_payment_intent(other["id"], idempotency_key="payment:2:release")

    assert (captured["status"], captured["amount_received"]) == ("succeeded", 120000)
    assert released["status"] == "canceled"
    assert fake_stripe.calls("POST", "/capture")[0].params["amount_to_capture"] == "120000"


def test_listing_pages_through_every_intent_of_the_period(fake_stripe):
    start = int(datetime(2026, 1, 1, tzinfo=UTC).timestamp())
    for n in range(230):
        fake_stripe.add("payment_intents", payment_intent(id=f"pi_list{n:04d}", created=start + n * 60))
    fake_stripe.add("payment_intents", payment_intent(id="pi_before", created=start - 1))

    listed = list(stripe_gateway().iter_payment_intents(since=datetime(2026, 1, 1, tzinfo=UTC)))

    assert len(listed) == 230 and len({i["id"] for i in listed}) == 230
    gets = fake_stripe.calls("GET", "/v1/payment_intents")
    assert len(gets) == 3
    assert gets[1].params["starting_after"] == listed[99]["id"]
    assert gets[0].params["created"] == {"gte": str(start)}


def test_one_page_says_whether_more_follow(fake_stripe):
    for n in range(3):
        fake_stripe.add("refunds", refund(id=f"re_{n}", created=1_700_000_000 + n))

    first = stripe_gateway().list_refunds(limit=2)
    second = stripe_gateway().list_refunds(limit=2, starting_after=first.last_id)

    assert ([r["id"] for r in first.items], first.has_more) == (["re_2", "re_1"], True)
    assert ([r["id"] for r in second.items], second.has_more) == (["re_0"], False)


def test_without_a_secret_key_card_payments_are_off(app, monkeypatch):
    monkeypatch.setitem(app.config, "STRIPE_SECRET_KEY", None)
    with pytest.raises(StripeUnavailable):
        stripe_gateway()


def test_the_gateway_is_built_once_per_config_and_process(app, fake_stripe, monkeypatch):
    first = stripe_gateway()
    assert stripe_gateway() is first
    monkeypatch.setitem(app.config, "STRIPE_SECRET_KEY", "sk_test_rotated")
    assert stripe_gateway() is not first


def test_three_tries_fit_well_inside_the_routers_30_seconds():
    connect, read = gateway_module.TIMEOUT
    tries = gateway_module.MAX_NETWORK_RETRIES + 1
    assert connect + read <= 10 and tries * (connect + read) + 0.5 + 1.0 < 30  # plus the SDK's two short sleeps


def app_error_groups() -> list[ErrorGroup]:
    from midas.extensions import db
    from midas.services.error_capture import flush_deferred

    flush_deferred()
    return list(db.session.scalars(select(ErrorGroup).order_by(ErrorGroup.id)))
