"""Twilio's REST wire format against a local fake, E.164 checks, and the local capture."""

from __future__ import annotations

import base64

import pytest

from midas.integrations.delivery import PermanentError, TransientError
from midas.integrations.sms import LocalSmsCapture, Sms, TwilioGateway, require_e164, sms_gateway
from tests.integrations import fakes

# Fixtures shared with the service and task tests.
fake_api = fakes.fake_api
fake_api_server = fakes.fake_api_server

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
