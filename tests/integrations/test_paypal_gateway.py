"""The PayPal gateway against a local fake PayPal: token, create, capture, retries and refusals."""

from __future__ import annotations

import socket

import pytest

from midas.integrations import paypal_gateway
from midas.integrations.paypal_gateway import PayPalError, minor_units, paypal_value
from tests.fakes import paypal_api

# Fixtures shared by the PayPal tests.
fake_paypal, paypal_server = paypal_api.fake_paypal, paypal_api.paypal_server
flush_errors = paypal_api.flush_errors

URLS = ("https://midas.example/pay/t/paypal/return", "https://midas.example/pay/t")


def create(gateway, request_id="paypal:MID-AAA111:425000EUR:0", amount=425000, currency="EUR"):
    return gateway.create_order(request_id, "MID-AAA111", amount, currency, "Booking MID-AAA111", *URLS)


@pytest.mark.parametrize(("amount", "currency", "text"), [
    (425000, "EUR", "4250.00"), (1, "USD", "0.01"), (120000, "JPY", "120000"), (2500000, "HUF", "25000"),
    (1234, "KWD", "1.234"), (0, "GBP", "0.00"),
])
def test_amounts_go_to_paypal_as_exact_strings_in_major_units(amount, currency, text):
    assert paypal_value(amount, currency) == text
    assert minor_units(text, currency) == amount


def test_fractional_forint_is_refused_rather_than_rounded():
    with pytest.raises(ValueError):
        paypal_value(2500050, "HUF")


def test_paypal_amount_strings_with_spare_zero_decimals_still_parse():
    assert minor_units("120000.00", "JPY") == 120000
    assert minor_units("-4250.00", "EUR") == -425000
    with pytest.raises(ValueError):
        minor_units("4250.5x", "EUR")


def test_token_is_fetched_once_with_client_credentials_and_reused(app, fake_paypal):
    gateway = paypal_gateway.from_app()
    create(gateway, "key-1")
    create(paypal_gateway.from_app(), "key-2")
    token_calls = fake_paypal.calls("/v1/oauth2/token")
    assert len(token_calls) == 1
    assert token_calls[0].body == b"grant_type=client_credentials"
    assert token_calls[0].headers["Authorization"].startswith("Basic ")


def test_create_order_sends_the_amount_currency_reference_and_request_id(app, fake_paypal):
    order = create(paypal_gateway.from_app())
    call = fake_paypal.calls("/v2/checkout/orders")[0]
    unit = call.json()["purchase_units"][0]
    assert call.headers["Paypal-Request-Id"] == "paypal:MID-AAA111:425000EUR:0"
    assert unit["amount"] == {"currency_code": "EUR", "value": "4250.00"}
    assert unit["custom_id"] == "MID-AAA111" and call.json()["intent"] == "CAPTURE"
    assert call.json()["payment_source"]["paypal"]["experience_context"]["return_url"] == URLS[0]
    assert order.status == "PAYER_ACTION_REQUIRED"
    assert order.approve_url == f"https://www.sandbox.paypal.com/checkoutnow?token={order.id}"


def test_yen_is_sent_without_decimals(app, fake_paypal):
    create(paypal_gateway.from_app(), amount=120000, currency="JPY")
    assert fake_paypal.calls("/v2/checkout/orders")[0].json()["purchase_units"][0]["amount"]["value"] == "120000"


def test_same_request_id_returns_the_same_order(app, fake_paypal):
    gateway = paypal_gateway.from_app()
    assert create(gateway).id == create(gateway).id
    assert len(fake_paypal.orders) == 1


def test_capture_returns_the_capture_and_a_repeat_returns_the_same_one(app, fake_paypal):
    gateway = paypal_gateway.from_app()
    order = create(gateway)
    fake_paypal.approve(order.id)
    first = gateway.capture_order(order.id, "key:capture")
    again = gateway.capture_order(order.id, "key:capture")
    assert first.status == "COMPLETED" and first.capture.status == "COMPLETED"
    assert (first.capture.value, first.capture.currency) == ("4250.00", "EUR")
    assert again.capture.id == first.capture.id


def test_server_error_is_retried_with_the_same_request_id(app, fake_paypal):
    fake_paypal.fail_next("/v2/checkout/orders", 503)
    order = create(paypal_gateway.from_app())
    calls = fake_paypal.calls("/v2/checkout/orders")
    assert len(calls) == 2 and len(fake_paypal.orders) == 1
    assert {c.headers["Paypal-Request-Id"] for c in calls} == {"paypal:MID-AAA111:425000EUR:0"}
    assert order.id in fake_paypal.orders


def test_persistent_outage_is_a_transient_error(app, fake_paypal):
    fake_paypal.fail_next("/v2/checkout/orders", 500, times=3)
    with pytest.raises(PayPalError) as caught:
        create(paypal_gateway.from_app())
    assert caught.value.transient and caught.value.status == 500
    assert len(fake_paypal.calls("/v2/checkout/orders")) == 3


def test_a_slow_paypal_is_not_asked_again_within_the_same_request(app, fake_paypal, monkeypatch):
    monkeypatch.setattr(paypal_gateway, "TIMEOUT", (1, 0.2))
    monkeypatch.setattr(paypal_gateway, "RETRY_WITHIN", 0.1)
    fake_paypal.slow_paths["/v2/checkout/orders"] = 0.5
    with pytest.raises(PayPalError) as caught:
        create(paypal_gateway.from_app())
    assert caught.value.transient and caught.value.code == "NETWORK_ERROR"
    assert len(fake_paypal.calls("/v2/checkout/orders")) == 1


def test_revoked_token_is_replaced_once(app, fake_paypal):
    gateway = paypal_gateway.from_app()
    create(gateway, "key-1")
    fake_paypal.tokens.clear()  # PayPal forgot it before its expiry
    create(gateway, "key-2")
    assert len(fake_paypal.calls("/v1/oauth2/token")) == 2


def test_wrong_credentials_are_a_permanent_error_naming_paypals_code(app, fake_paypal):
    app.config["PAYPAL_CLIENT_SECRET"] = "wrong"
    with pytest.raises(PayPalError) as caught:
        create(paypal_gateway.from_app())
    assert caught.value.code == "invalid_client" and not caught.value.transient
    assert "wrong" not in str(caught.value)


def test_declined_instrument_is_reported_with_paypals_issue(app, fake_paypal):
    gateway = paypal_gateway.from_app()
    order = create(gateway)
    fake_paypal.approve(order.id)
    fake_paypal.capture_outcome = "INSTRUMENT_DECLINED"
    with pytest.raises(PayPalError) as caught:
        gateway.capture_order(order.id, "key:capture")
    assert caught.value.code == "INSTRUMENT_DECLINED" and caught.value.status == 422
    assert caught.value.debug_id and not caught.value.transient


def test_capturing_an_unapproved_order_is_refused(app, fake_paypal):
    gateway = paypal_gateway.from_app()
    order = create(gateway)
    with pytest.raises(PayPalError, match="ORDER_NOT_APPROVED"):
        gateway.capture_order(order.id, "key:capture")


def test_unknown_order_is_not_found(app, fake_paypal):
    with pytest.raises(PayPalError) as caught:
        paypal_gateway.from_app().get_order("5O000000000000999")
    assert caught.value.code == "RESOURCE_NOT_FOUND" and caught.value.status == 404


def test_unreachable_paypal_is_transient(app, fake_paypal):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    app.config["PAYPAL_API_BASE"] = f"http://127.0.0.1:{port}"
    with pytest.raises(PayPalError) as caught:
        create(paypal_gateway.from_app())
    assert caught.value.transient and caught.value.code == "NETWORK_ERROR"


def test_without_credentials_paypal_is_off(app):
    gateway = paypal_gateway.from_app()
    assert not gateway.enabled
    with pytest.raises(PayPalError, match="not configured"):
        create(gateway)


def test_ipn_verification_posts_the_exact_bytes_back(app, fake_paypal):
    body = fake_paypal.sent(b"mc_gross=10.00&first_name=Ren%E9e&charset=windows-1252&txn_id=1")
    gateway = paypal_gateway.from_app()
    assert gateway.verify_ipn(body) == "VERIFIED"
    assert gateway.verify_ipn(body + b"&extra=1") == "INVALID"
    call = fake_paypal.calls("/cgi-bin/webscr")[0]
    assert call.body == b"cmd=_notify-validate&" + body
    assert call.headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert call.headers["User-Agent"]


def test_ipn_verification_outage_is_transient(app, fake_paypal):
    fake_paypal.fail_next("/cgi-bin/webscr", 503, times=3)
    with pytest.raises(PayPalError) as caught:
        paypal_gateway.from_app().verify_ipn(b"txn_id=1")
    assert caught.value.transient
