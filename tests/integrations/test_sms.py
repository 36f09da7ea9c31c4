"""Twilio's REST wire format against a local fake, E.164 checks, and the local capture."""

from __future__ import annotations

import base64
from email.utils import format_datetime

import pytest

from midas.integrations.delivery import PermanentError, TransientError
from midas.integrations.sms import LocalSmsCapture, Sms, TwilioGateway, require_e164, sms_gateway
from tests.integrations import fakes

# Fixtures shared with the service and task tests.
fake_api = fakes.fake_api
fake_api_server = fakes.fake_api_server
closed_port = fakes.closed_port

SID, TOKEN = "AC0123456789abcdef0123456789abcdef", "twilio-auth-token"
MESSAGES = f"/2010-04-01/Accounts/{SID}/Messages.json"


def twilio(fake_api) -> TwilioGateway:
    return TwilioGateway(SID, TOKEN, "+15005550006", fake_api.url_for("/"))


def test_twilio_receives_a_form_post_with_basic_auth(fake_api):
    auth = "Basic " + base64.b64encode(f"{SID}:{TOKEN}".encode()).decode()
    fake_api.expect_oneshot_request(MESSAGES, method="POST", headers={"Authorization": auth}).respond_with_json(
        {"sid": "SM9f1e2d3c4b5a69788796a5b4c3d2e1f0", "status": "queued"}, status=201)

    sid = twilio(fake_api).send(Sms(to="+447911123456", body="Midas: confirmed.", tag="9-booking_confirmation"))

    assert sid == "SM9f1e2d3c4b5a69788796a5b4c3d2e1f0"
    form = fake_api.log[0][0].form
    assert dict(form) == {"To": "+447911123456", "From": "+15005550006", "Body": "Midas: confirmed."}


def test_twilio_invalid_number_is_permanent_and_names_twilios_code(fake_api):
    fake_api.expect_request(MESSAGES).respond_with_json(
        {"code": 21211, "message": "The 'To' number +15005550001 is not a valid phone number.",
         "more_info": "https://www.twilio.com/docs/errors/21211", "status": 400}, status=400)
    with pytest.raises(PermanentError, match="HTTP 400: 21211 The 'To' number"):
        twilio(fake_api).send(Sms(to="+15005550001", body="Hi", tag="1-x"))


def test_twilio_outage_is_transient(fake_api):
    fake_api.expect_request(MESSAGES).respond_with_data("Service Unavailable", status=503)
    with pytest.raises(TransientError, match="HTTP 503"):
        twilio(fake_api).send(Sms(to="+447911123456", body="Hi", tag="1-x"))


@pytest.mark.parametrize("number", ["07911 123456", "+44 7911 123456", "+44791", "not a number"])
def test_numbers_not_in_e164_are_refused_before_any_call(number):
    with pytest.raises(PermanentError, match="E.164"):
        require_e164(number)


def test_without_twilio_credentials_texts_are_captured_locally(tmp_path):
    gateway = sms_gateway({"TWILIO_ACCOUNT_SID": None}, tmp_path)
    assert isinstance(gateway, LocalSmsCapture)
    gateway.send(Sms(to="+447911123456", body="Midas: confirmed.", tag="3-booking_confirmation"))
    assert (tmp_path / "3-booking_confirmation.sms.txt").read_text() == "To: +447911123456\n\nMidas: confirmed.\n"


def test_the_sdk_itself_sends_to_the_configured_base_url(fake_api):
    fake_api.expect_oneshot_request(MESSAGES, method="POST").respond_with_json({"sid": "SM1", "status": "queued"},
                                                                               status=201)
    gateway = sms_gateway({"TWILIO_ACCOUNT_SID": SID, "TWILIO_AUTH_TOKEN": TOKEN, "TWILIO_FROM_NUMBER": "+15005550006",
                           "TWILIO_API_BASE": fake_api.url_for("/")}, None)

    assert gateway.send(Sms(to="+447911123456", body="Midas", tag="1-x")) == "SM1"
    assert fake_api.log[0][0].headers["User-Agent"].startswith("twilio-python/")


def test_twilio_unreachable_is_transient(closed_port):
    gateway = TwilioGateway(SID, TOKEN, "+15005550006", f"http://127.0.0.1:{closed_port}")
    with pytest.raises(TransientError, match="ConnectionError contacting Twilio"):
        gateway.send(Sms(to="+447911123456", body="Hi", tag="1-x"))


def test_find_sent_names_the_copy_twilio_already_took_and_only_that(fake_api):
    from datetime import UTC, datetime, timedelta

    since = datetime.now(UTC) - timedelta(minutes=1)
    fake_api.expect_request(MESSAGES, method="GET", query_string={"To": "+447911123456", "From": "+15005550006",
                                                                  "PageSize": "20"}).respond_with_json({
        "messages": [{"sid": "SMnew", "to": "+447911123456", "body": "Midas: confirmed.",
                      "date_created": format_datetime(datetime.now(UTC), usegmt=True)},
                     {"sid": "SMold", "to": "+447911123456", "body": "Midas: confirmed.",
                      "date_created": format_datetime(since - timedelta(days=1), usegmt=True)}],
        "end": 1, "first_page_uri": MESSAGES, "next_page_uri": None, "previous_page_uri": None, "page": 0,
        "page_size": 20, "start": 0, "uri": MESSAGES})
    gateway = twilio(fake_api)

    assert gateway.find_sent(Sms(to="+447911123456", body="Midas: confirmed.", tag="1-x"), since) == "SMnew"
    assert gateway.find_sent(Sms(to="+447911123456", body="Another text", tag="1-x"), since) is None
    old = since - timedelta(days=2)
    assert gateway.find_sent(Sms(to="+447911123456", body="Midas: confirmed.", tag="1-x"), old) == "SMnew"
