"""Slack incoming webhooks: the JSON they take, the refusals they give, and secrets kept out of errors."""

from __future__ import annotations

import pytest

from midas.integrations.delivery import PermanentError, TransientError
from midas.integrations.slack import LocalSlackCapture, SlackPost, SlackWebhook, slack_gateway
from tests.integrations import fakes

# Fixtures shared with the service and task tests.
closed_port = fakes.closed_port
fake_api = fakes.fake_api
fake_api_server = fakes.fake_api_server

HOOK = "/services/T0000/B0000/XXXXXXXXXXXXXXXXXXXXXXXX"


def test_slack_receives_the_text_as_json(fake_api):
    fake_api.expect_oneshot_request(HOOK, method="POST", json={"text": "*HIGH PAYMENT* card declined"}
                                    ).respond_with_data("ok")
    SlackWebhook(fake_api.url_for(HOOK)).send(SlackPost(text="*HIGH PAYMENT* card declined", tag="5-error_alert"))
    assert len(fake_api.log) == 1


def test_a_removed_webhook_is_a_permanent_refusal(fake_api):
    fake_api.expect_request(HOOK).respond_with_data("no_service", status=404)
    with pytest.raises(PermanentError, match="HTTP 404: no_service"):
        SlackWebhook(fake_api.url_for(HOOK)).send(SlackPost(text="x", tag="1-x"))


def test_an_unreachable_webhook_does_not_leak_its_secret_path(closed_port):
    with pytest.raises(TransientError) as error:
        SlackWebhook(f"http://127.0.0.1:{closed_port}{HOOK}").send(SlackPost(text="x", tag="1-x"))
    assert "XXXXXXXX" not in str(error.value) and f"127.0.0.1:{closed_port}" in str(error.value)


def test_without_a_webhook_alerts_are_captured_locally(tmp_path):
    gateway = slack_gateway({"SLACK_WEBHOOK_URL": None}, tmp_path)
    assert isinstance(gateway, LocalSlackCapture)
    gateway.send(SlackPost(text="hello", tag="2-error_alert"))
    assert (tmp_path / "2-error_alert.slack.json").read_text() == '{"text": "hello"}'
