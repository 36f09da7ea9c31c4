"""Slack alerts through an incoming webhook (POST {"text": …}), or a local capture without one."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from midas.integrations import http
from midas.integrations.delivery import Gateway


@dataclass(frozen=True)
class SlackPost:
    text: str
    tag: str


class SlackWebhook:
    name = "slack"

    def __init__(self, url: str) -> None:
        self.url = url

    def send(self, message: SlackPost) -> str:
        # Slack answers 400/403/404 with a plain-text reason (invalid_payload, no_service): a fixed refusal.
        http.post(self.url, json={"text": message.text}, permanent={400, 403, 404, 410})
        return f"slack-{message.tag}"


class LocalSlackCapture:
    name = "local"

    def __init__(self, directory: Path | None) -> None:
        self.directory = directory

    def send(self, message: SlackPost) -> str:
        if self.directory is not None:
            self.directory.mkdir(parents=True, exist_ok=True)
            (self.directory / f"{message.tag}.slack.json").write_text(json.dumps({"text": message.text}))
        return f"local-{message.tag}"


def slack_gateway(config: Mapping, capture_dir: Path | None) -> Gateway:
    url = config.get("SLACK_WEBHOOK_URL")
    return SlackWebhook(url) if url else LocalSlackCapture(capture_dir)
