"""SMS through Twilio's REST API (POST …/Messages.json, basic auth), or a local capture without credentials."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import phonenumbers

from midas.integrations import http
from midas.integrations.delivery import Gateway, PermanentError


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


class TwilioGateway:
    name = "twilio"

    def __init__(self, account_sid: str, auth_token: str, from_number: str, api_base: str) -> None:
        self.auth = (account_sid, auth_token)
        self.from_number = from_number
        self.url = f"{api_base.rstrip('/')}/2010-04-01/Accounts/{account_sid}/Messages.json"

    def send(self, message: Sms) -> str:
        response = http.post(self.url, data={"To": require_e164(message.to), "From": self.from_number,
                                             "Body": message.body}, auth=self.auth)
        return response.json().get("sid", "")


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
