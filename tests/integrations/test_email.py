"""Email gateways against a real SMTP server and fake HTTP APIs speaking SendGrid's and Mailgun's shapes."""

from __future__ import annotations

import base64
import json
from email import message_from_bytes
from email.policy import default

import pytest
from aiosmtpd.smtp import AuthResult
from werkzeug import Response

from midas.integrations.delivery import DeliveryFailed, PermanentError, TransientError, send_with_failover
from midas.integrations.email import (
    Email,
    LocalEmailCapture,
    MailgunGateway,
    SendGridGateway,
    SmtpGateway,
    email_gateways,
)
from tests.integrations import fakes

# Fixtures shared with the service and task tests.
closed_port = fakes.closed_port
fake_api = fakes.fake_api
fake_api_server = fakes.fake_api_server
smtp_server = fakes.smtp_server

SENDER = "Midas Concierge <concierge@midas.test>"


def an_email(to: str = "grace@example.com") -> Email:
    return Email(to=to, sender=SENDER, subject="Confirmed: Riva Aquarama", text="Dear Grace,\nConfirmed.\n",
                 html="<p>Dear Grace,</p><p>Confirmed.</p>", message_id="<midas.7.abc@midas.test>",
                 tag="7-booking_confirmation", headers={"X-Midas-Notification": "7-booking_confirmation"})


def test_smtp_delivers_one_message_with_headers_and_both_parts(smtp_server):
    message_id = SmtpGateway(smtp_server.url).send(an_email())

    assert message_id == "<midas.7.abc@midas.test>"
    assert smtp_server.mailbox.envelopes == [("concierge@midas.test", ["grace@example.com"])]
    [received] = smtp_server.messages
    assert received["Subject"] == "Confirmed: Riva Aquarama" and received["To"] == "grace@example.com"
    assert received["From"] == SENDER and received["Message-ID"] == "<midas.7.abc@midas.test>"
    assert received["X-Midas-Notification"] == "7-booking_confirmation"
    assert received.get_content_type() == "multipart/alternative"
    assert [part.get_content_type() for part in received.iter_parts()] == ["text/plain", "text/html"]
    assert "Confirmed." in received.get_body(("plain",)).get_content()
    assert "<p>Confirmed.</p>" in received.get_body(("html",)).get_content()


def test_smtp_signs_in_with_the_credentials_from_its_url(smtp_server):
    seen = []

    def authenticator(server, session, envelope, mechanism, auth_data):
        seen.append((mechanism, auth_data.login, auth_data.password))
        return AuthResult(success=True)

    controller = fakes.EphemeralController(smtp_server.mailbox, hostname="127.0.0.1", port=0,
                                           authenticator=authenticator, auth_require_tls=False)
    controller.start()
    try:
        SmtpGateway(f"smtp://apikey:s%40cret@127.0.0.1:{controller.port}").send(an_email())
    finally:
        controller.stop()
    assert [login for _, login, _ in seen] == [b"apikey"] and seen[0][2] == b"s@cret"
    assert len(smtp_server.messages) == 1


def test_smtp_refusing_the_recipient_is_a_permanent_rejection(smtp_server):
    with pytest.raises(PermanentError, match="550"):
        SmtpGateway(smtp_server.url).send(an_email("invalid@example.com"))
    assert smtp_server.messages == []


def test_smtp_closed_port_is_transient(closed_port):
    with pytest.raises(TransientError, match="ConnectionRefusedError"):
        SmtpGateway(f"smtp://127.0.0.1:{closed_port}").send(an_email())


def test_smtp_url_carries_credentials_and_tls_choice():
    gateway = SmtpGateway("smtps://apikey:s%40cret@smtp.example.com")
    assert (gateway.tls, gateway.host, gateway.port) == (True, "smtp.example.com", 465)
    assert (gateway.username, gateway.password) == ("apikey", "s@cret")
    assert SmtpGateway("smtp://mail.example.com").port == 587
    with pytest.raises(ValueError):
        SmtpGateway("http://mail.example.com")


def test_sendgrid_receives_v3_mail_send_with_bearer_key(fake_api):
    fake_api.expect_oneshot_request("/v3/mail/send", method="POST",
                                    headers={"Authorization": "Bearer SG.test-key"}).respond_with_response(
        Response(status=202, headers={"X-Message-Id": "sg-abc123"}))

    message_id = SendGridGateway("SG.test-key", fake_api.url_for("/").rstrip("/")).send(an_email())

    assert message_id == "sg-abc123"
    body = json.loads(fake_api.log[0][0].get_data())
    assert body["personalizations"] == [{"to": [{"email": "grace@example.com"}]}]
    assert body["from"] == {"email": "concierge@midas.test", "name": "Midas Concierge"}
    assert body["subject"] == "Confirmed: Riva Aquarama"
    assert [part["type"] for part in body["content"]] == ["text/plain", "text/html"]
    assert body["headers"] == {"X-Midas-Notification": "7-booking_confirmation"}


@pytest.mark.parametrize(("status", "error"), [(400, PermanentError), (500, TransientError), (401, TransientError)])
def test_sendgrid_refusals_are_classified(fake_api, status, error):
    fake_api.expect_request("/v3/mail/send").respond_with_json(
        {"errors": [{"message": "Does not contain a valid address.", "field": "personalizations.0.to.0.email"}]},
        status=status)
    with pytest.raises(error, match=f"HTTP {status}: Does not contain a valid address"):
        SendGridGateway("SG.key", fake_api.url_for("/")).send(an_email())


def test_mailgun_receives_a_form_with_basic_auth(fake_api):
    expected_auth = "Basic " + base64.b64encode(b"api:key-mailgun").decode()
    fake_api.expect_oneshot_request("/v3/mg.midas.test/messages", method="POST",
                                    headers={"Authorization": expected_auth}).respond_with_json(
        {"id": "<20260101.1@mg.midas.test>", "message": "Queued. Thank you."})

    message_id = MailgunGateway("key-mailgun", "mg.midas.test", fake_api.url_for("/")).send(an_email())

    assert message_id == "<20260101.1@mg.midas.test>"
    form = fake_api.log[0][0].form
    assert (form["from"], form["to"], form["subject"]) == (SENDER, "grace@example.com", "Confirmed: Riva Aquarama")
    assert form["text"].startswith("Dear Grace") and form["html"].startswith("<p>Dear Grace")
    assert form["h:X-Midas-Notification"] == "7-booking_confirmation"


def test_mailgun_invalid_address_is_permanent(fake_api):
    fake_api.expect_request("/v3/mg.midas.test/messages").respond_with_json(
        {"message": "'to' parameter is not a valid address. please check documentation"}, status=400)
    with pytest.raises(PermanentError, match="not a valid address"):
        MailgunGateway("key", "mg.midas.test", fake_api.url_for("/")).send(an_email())


def test_failover_smtp_refused_then_sendgrid_500_then_mailgun(closed_port, fake_api):
    fake_api.expect_request("/v3/mail/send").respond_with_data("upstream error", status=500)
    fake_api.expect_request("/v3/mg.midas.test/messages").respond_with_json({"id": "<mg-1@mg.midas.test>"})
    chain = [SmtpGateway(f"smtp://127.0.0.1:{closed_port}"), SendGridGateway("SG.key", fake_api.url_for("/")),
             MailgunGateway("key", "mg.midas.test", fake_api.url_for("/"))]

    receipt = send_with_failover(chain, an_email())

    assert (receipt.provider, receipt.message_id) == ("mailgun", "<mg-1@mg.midas.test>")
    assert [(a.provider, a.ok) for a in receipt.attempts] == [("smtp", False), ("sendgrid", False), ("mailgun", True)]
    assert "ConnectionRefusedError" in receipt.attempts[0].error and "HTTP 500" in receipt.attempts[1].error


def test_a_permanent_rejection_stops_the_chain(smtp_server, fake_api):
    chain = [SmtpGateway(smtp_server.url), SendGridGateway("SG.key", fake_api.url_for("/"))]
    with pytest.raises(DeliveryFailed) as failed:
        send_with_failover(chain, an_email("invalid@example.com"))
    assert failed.value.permanent and [a.provider for a in failed.value.attempts] == ["smtp"]
    assert fake_api.log == []


def test_all_providers_down_is_a_transient_failure(closed_port):
    with pytest.raises(DeliveryFailed) as failed:
        send_with_failover([SmtpGateway(f"smtp://127.0.0.1:{closed_port}"),
                            SendGridGateway("SG.key", f"http://127.0.0.1:{closed_port}")], an_email())
    assert not failed.value.permanent
    assert str(failed.value).startswith("smtp: ConnectionRefusedError") and "sendgrid: ConnectionError" in str(
        failed.value)


def test_the_chain_follows_email_providers_and_skips_unconfigured_ones(tmp_path):
    config = {"EMAIL_PROVIDERS": ["mailgun", "smtp", "sendgrid"], "SMTP_URL": "smtp://127.0.0.1:2525",
              "SENDGRID_API_KEY": "SG.key", "SENDGRID_API_BASE": "https://api.sendgrid.com",
              "MAILGUN_API_KEY": None, "MAILGUN_DOMAIN": None, "MAILGUN_API_BASE": "https://api.mailgun.net"}
    assert [g.name for g in email_gateways(config, tmp_path)] == ["smtp", "sendgrid"]
    assert [g.name for g in email_gateways({"EMAIL_PROVIDERS": []}, tmp_path)] == ["local"]


def test_without_a_provider_the_message_is_kept_as_an_eml_file(tmp_path):
    LocalEmailCapture(tmp_path / "outbox").send(an_email())
    saved = message_from_bytes((tmp_path / "outbox" / "7-booking_confirmation.eml").read_bytes(), policy=default)
    assert saved["To"] == "grace@example.com" and saved.get_body(("html",)) is not None
