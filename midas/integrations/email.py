"""Email gateways: SMTP (smtplib), SendGrid v3 and Mailgun over HTTP, and a local capture for laptops."""

from __future__ import annotations

import logging
import smtplib
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.utils import formatdate, parseaddr
from pathlib import Path
from urllib.parse import unquote, urlsplit

from midas.integrations import http
from midas.integrations.delivery import Gateway, PermanentError, TransientError

SMTP_TIMEOUT = 15
LOOPBACK = ("127.0.0.1", "::1", "localhost")
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Email:
    to: str
    sender: str
    subject: str
    text: str
    html: str
    message_id: str  # ours, the same on every attempt, so a mailbox can fold a duplicate
    tag: str  # names the capture file and travels as a header: "42-booking_confirmation"
    headers: Mapping[str, str] = field(default_factory=dict)

    def mime(self) -> EmailMessage:
        """A multipart/alternative message: the plain text first, the HTML preferred."""
        message = EmailMessage()
        message["From"] = self.sender
        message["To"] = self.to
        message["Subject"] = self.subject
        message["Date"] = formatdate(localtime=False)
        message["Message-ID"] = self.message_id
        for name, value in self.headers.items():
            message[name] = value
        message.set_content(self.text)
        message.add_alternative(self.html, subtype="html")
        return message


class SmtpGateway:
    """`smtp://user:pass@host:587` (STARTTLS when the server offers it) or `smtps://…:465` (TLS from the start)."""

    name = "smtp"

    def __init__(self, url: str, timeout: float = SMTP_TIMEOUT) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
            raise ValueError("SMTP_URL must look like smtp://user:pass@host:port or smtps://…")
        self.tls = parts.scheme == "smtps"
        self.host = parts.hostname
        self.port = parts.port or (465 if self.tls else 587)
        self.username = unquote(parts.username or "")
        self.password = unquote(parts.password or "")
        self.timeout = timeout

    def send(self, message: Email) -> str:
        try:
            with self._connect() as smtp:
                if self.username:
                    self._login(smtp)
                smtp.send_message(message.mime())
        except smtplib.SMTPRecipientsRefused as exc:
            code, reply = next(iter(exc.recipients.values()))
            text = f"recipient refused: {code} {_text(reply)}"
            raise (PermanentError if 500 <= code < 600 else TransientError)(text) from exc
        except smtplib.SMTPResponseException as exc:
            raise TransientError(f"{self.host}:{self.port} answered {exc.smtp_code} {_text(exc.smtp_error)}") from exc
        except (smtplib.SMTPException, OSError) as exc:
            raise TransientError(f"{type(exc).__name__} at {self.host}:{self.port}: {exc}") from exc
        return message.message_id

    def _login(self, smtp: smtplib.SMTP) -> None:
        # Never hand the password over in clear text to anything but this machine.
        if not (isinstance(smtp.sock, ssl.SSLSocket) or self.host in LOOPBACK):
            raise TransientError(f"{self.host}:{self.port} offers no STARTTLS; not sending the password in clear")
        smtp.login(self.username, self.password)

    def _connect(self) -> smtplib.SMTP:
        if self.tls:
            return smtplib.SMTP_SSL(self.host, self.port, timeout=self.timeout, context=ssl.create_default_context())
        smtp = smtplib.SMTP(self.host, self.port, timeout=self.timeout)
        try:
            smtp.ehlo()
            if smtp.has_extn("starttls"):
                smtp.starttls(context=ssl.create_default_context())
                smtp.ehlo()
        except BaseException:
            smtp.close()
            raise
        return smtp


class SendGridGateway:
    """SendGrid's v3 Mail Send API: POST /v3/mail/send with a bearer key; 202 and an X-Message-Id back."""

    name = "sendgrid"

    def __init__(self, api_key: str, api_base: str) -> None:
        self.api_key, self.url = api_key, api_base.rstrip("/") + "/v3/mail/send"

    def send(self, message: Email) -> str:
        sender_name, sender = parseaddr(message.sender)
        payload = {
            "personalizations": [{"to": [{"email": message.to}]}],
            "from": {"email": sender, **({"name": sender_name} if sender_name else {})},
            "subject": message.subject,
            # SendGrid wants text/plain before text/html.
            "content": [{"type": "text/plain", "value": message.text}, {"type": "text/html", "value": message.html}],
            "headers": dict(message.headers),
            "custom_args": {"midas_tag": message.tag},
        }
        response = http.post(self.url, json=payload, headers={"Authorization": f"Bearer {self.api_key}"})
        return response.headers.get("X-Message-Id") or message.message_id


class MailgunGateway:
    """Mailgun's messages API: POST /v3/<domain>/messages as a form, basic auth `api:<key>`."""

    name = "mailgun"

    def __init__(self, api_key: str, domain: str, api_base: str) -> None:
        self.api_key, self.url = api_key, f"{api_base.rstrip('/')}/v3/{domain}/messages"

    def send(self, message: Email) -> str:
        form = {"from": message.sender, "to": message.to, "subject": message.subject, "text": message.text,
                "html": message.html, "v:midas_tag": message.tag,
                **{f"h:{name}": value for name, value in message.headers.items()}}
        response = http.post(self.url, data=form, auth=("api", self.api_key))
        return _json(response).get("id") or message.message_id


class LocalEmailCapture:
    """No provider configured: the message is kept as an .eml file (and on the Communications page)."""

    name = "local"

    def __init__(self, directory: Path | None) -> None:
        self.directory = directory

    def send(self, message: Email) -> str:
        if self.directory is not None:
            self.directory.mkdir(parents=True, exist_ok=True)
            (self.directory / f"{message.tag}.eml").write_bytes(bytes(message.mime()))
        return message.message_id


def email_gateways(config: Mapping, capture_dir: Path | None) -> list[Gateway]:
    """The EMAIL_PROVIDERS chain, skipping providers without credentials; the local capture when none is left."""
    builders = {
        "smtp": lambda: config.get("SMTP_URL") and SmtpGateway(config["SMTP_URL"]),
        "sendgrid": lambda: config.get("SENDGRID_API_KEY") and SendGridGateway(
            config["SENDGRID_API_KEY"], config["SENDGRID_API_BASE"]),
        "mailgun": lambda: config.get("MAILGUN_API_KEY") and config.get("MAILGUN_DOMAIN") and MailgunGateway(
            config["MAILGUN_API_KEY"], config["MAILGUN_DOMAIN"], config["MAILGUN_API_BASE"]),
    }
    chain = []
    for name in config.get("EMAIL_PROVIDERS") or ():
        gateway = builders[name]() if name in builders else None
        if gateway:
            chain.append(gateway)
        else:
            log.warning("email provider %r is listed in EMAIL_PROVIDERS but unknown or not configured", name)
    return chain or [LocalEmailCapture(capture_dir)]


def _text(reply: bytes | str) -> str:
    return reply.decode(errors="replace") if isinstance(reply, bytes) else str(reply)


def _json(response) -> dict:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}
