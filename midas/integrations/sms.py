"""SMS through Twilio's SDK (its base URL configurable, so tests reach a local fake), or a local capture.

TWILIO_API_BASE replaces https://api.twilio.com in every URL the SDK builds; the SDK still speaks the
real wire format (form POST to …/Messages.json with basic auth) and parses the real answers.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import phonenumbers
import requests
from twilio.base.exceptions import TwilioException, TwilioRestException, TwilioServiceException
from twilio.http.http_client import TwilioHttpClient
from twilio.rest import Client

from midas.integrations import http
from midas.integrations.delivery import Gateway, PermanentError, TransientError

TWILIO_API = "https://api.twilio.com"
TIMEOUT = 15.0  # seconds; the SDK takes one figure for connect and read
LOOKBACK = 20  # recent texts to one number searched for a copy before sending again after a crash
CLOCK_SKEW = timedelta(minutes=2)  # Twilio stamps in whole seconds on its own clock
# The SDK logs each request and response at INFO (URLs carry the account SID): keep that out of our logs.
_sdk_log = logging.getLogger("midas.integrations.twilio")
_sdk_log.setLevel(logging.WARNING)


@dataclass(frozen=True)
class Sms:
    to: str  # E.164
    body: str
    tag: str


def require_e164(number: str) -> str:
    """The number itself if it is written in E.164 (+, country code, a possible length); PermanentError if not.

    Whether the number is in service is the carrier's business: Twilio answers that one.
    """
    try:
        parsed = phonenumbers.parse(number, None)
    except phonenumbers.NumberParseException as exc:
        raise PermanentError(f"{number!r} is not an E.164 phone number") from exc
    e164 = phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)
    if e164 != number or not phonenumbers.is_possible_number(parsed):
        raise PermanentError(f"{number!r} is not an E.164 phone number")
    return number


class BaseUrlHttpClient(TwilioHttpClient):
    """The SDK's own HTTP client, sending what it addresses to https://api.twilio.com to `base_url` instead."""

    def __init__(self, base_url: str, timeout: float = TIMEOUT) -> None:
        super().__init__(timeout=timeout, logger=_sdk_log)
        self.base_url = base_url.rstrip("/")

    def request(self, method: str, url: str, *args, **kwargs):
        if self.base_url != TWILIO_API and url.startswith(TWILIO_API):
            url = self.base_url + url[len(TWILIO_API):]
        return super().request(method, url, *args, **kwargs)


class TwilioGateway:
    name = "twilio"

    def __init__(self, account_sid: str, auth_token: str, from_number: str, api_base: str = TWILIO_API) -> None:
        self.from_number = from_number
        self.client = Client(account_sid, auth_token, http_client=BaseUrlHttpClient(api_base))

    def send(self, message: Sms) -> str:
        to = require_e164(message.to)
        try:
            sent = self.client.messages.create(to=to, from_=self.from_number, body=message.body)
        except (TwilioRestException, TwilioServiceException) as exc:
            raise _refusal(exc) from exc
        except requests.Timeout as exc:
            raise TransientError("timed out contacting Twilio") from exc
        except (requests.RequestException, TwilioException) as exc:
            raise TransientError(f"{type(exc).__name__} contacting Twilio") from exc
        return sent.sid or ""

    def find_sent(self, message: Sms, since: datetime) -> str | None:
        """The sid of this very text if Twilio already took it at or after `since`, else None.

        A worker killed after Twilio accepted a text, before "sent" was recorded, leaves the row to be
        sent again; asking first is what makes that second attempt not a second text.
        """
        try:
            recent = self.client.messages.list(to=require_e164(message.to), from_=self.from_number, limit=LOOKBACK)
        except (TwilioRestException, TwilioServiceException) as exc:
            raise _refusal(exc) from exc
        except (requests.RequestException, TwilioException) as exc:
            raise TransientError(f"{type(exc).__name__} asking Twilio for recent messages") from exc
        floor = since - CLOCK_SKEW
        return next((m.sid for m in recent if m.body == message.body and m.date_created and m.date_created >= floor),
                    None)


def _refusal(exc: TwilioRestException | TwilioServiceException) -> PermanentError | TransientError:
    """Twilio's answer in its own words; a malformed request (bad number) is permanent, the rest may pass later."""
    words = exc.msg if isinstance(exc, TwilioRestException) else (exc.detail or exc.title)
    if words.startswith("Unable to create record: "):  # the SDK's preface to Twilio's own message
        words = words.removeprefix("Unable to create record: ")
    code = f"{exc.code} " if exc.code else ""
    error = f"HTTP {exc.status}: {code}{words}"[:200]
    return (PermanentError if exc.status in http.PERMANENT_STATUSES else TransientError)(error)


class LocalSmsCapture:
    name = "local"

    def __init__(self, directory: Path | None) -> None:
        self.directory = directory

    def send(self, message: Sms) -> str:
        require_e164(message.to)
        if self.directory is not None:
            self.directory.mkdir(parents=True, exist_ok=True)
            (self.directory / f"{message.tag}.sms.txt").write_text(f"To: {message.to}\n\n{message.body}\n")
        return f"local-{message.tag}"


def sms_gateway(config: Mapping, capture_dir: Path | None) -> Gateway:
    if config.get("TWILIO_ACCOUNT_SID") and config.get("TWILIO_AUTH_TOKEN") and config.get("TWILIO_FROM_NUMBER"):
        return TwilioGateway(config["TWILIO_ACCOUNT_SID"], config["TWILIO_AUTH_TOKEN"],
                             config["TWILIO_FROM_NUMBER"], config["TWILIO_API_BASE"])
    return LocalSmsCapture(capture_dir)
