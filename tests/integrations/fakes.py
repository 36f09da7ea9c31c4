"""Local stand-ins for the providers, speaking their real protocols on 127.0.0.1 ephemeral ports.

Import the fixtures into a test module to use them: `from tests.integrations.fakes import smtp_server`.
"""

from __future__ import annotations

import email
import socket
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.policy import default

import pytest
from aiosmtpd.controller import Controller
from flask import Flask
from pytest_httpserver import HTTPServer

from midas.tasks import queue
from midas.tasks.worker import run_worker


@dataclass
class Mailbox:
    """What the fake SMTP server accepted; addresses containing "invalid" are refused with 550."""

    messages: list[EmailMessage] = field(default_factory=list)
    envelopes: list[tuple[str, list[str]]] = field(default_factory=list)

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if "invalid" in address:
            return f"550 5.1.1 <{address}>: Recipient address rejected: User unknown"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        self.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))
        self.messages.append(email.message_from_bytes(envelope.content, policy=default))
        return "250 Message accepted for delivery"


class EphemeralController(Controller):
    """aiosmtpd's Controller on port 0: read the port the OS chose before the readiness check uses it."""

    def _trigger_server(self):
        self.port = self.server.sockets[0].getsockname()[1]
        super()._trigger_server()


@dataclass
class SmtpServer:
    mailbox: Mailbox
    port: int

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}"

    @property
    def messages(self) -> list[EmailMessage]:
        return self.mailbox.messages


@pytest.fixture
def smtp_server():
    mailbox = Mailbox()
    controller = EphemeralController(mailbox, hostname="127.0.0.1", port=0)
    controller.start()
    yield SmtpServer(mailbox, controller.port)
    controller.stop()


@pytest.fixture
def closed_port() -> int:
    """A port nothing listens on: connecting is refused at once."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="session")
def fake_api_server():
    server = HTTPServer(host="127.0.0.1", port=0)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def fake_api(fake_api_server):
    """An HTTP server for SendGrid, Mailgun, Twilio and Slack shapes (pytest-httpserver), empty for each test."""
    fake_api_server.clear()
    yield fake_api_server
    fake_api_server.clear()


@pytest.fixture
def providers(app: Flask, monkeypatch, tmp_path):
    """Point the app's provider settings somewhere for one test: providers(EMAIL_PROVIDERS=["smtp"], …)."""
    monkeypatch.setitem(app.config, "OUTBOX_CAPTURE_DIR", str(tmp_path / "outbox"))

    def configure(**settings) -> None:
        for key, value in settings.items():
            monkeypatch.setitem(app.config, key, value)

    return configure


def run_jobs() -> None:
    """With Redis, run what is queued on a real worker (as production does); in-process it already ran."""
    if queue.redis_configured():
        run_worker(burst=True, with_scheduler=False)
