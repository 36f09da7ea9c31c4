"""HTTP calls to providers: bounded timeouts, and responses turned into transient or permanent errors."""

from __future__ import annotations

from collections.abc import Collection
from urllib.parse import urlsplit

import requests

from midas.integrations.delivery import PermanentError, TransientError

TIMEOUT = (5, 15)  # seconds to connect, seconds to read
# A request the provider calls malformed (bad address, unknown number) fails the same way everywhere.
PERMANENT_STATUSES = frozenset({400, 422})


def post(url: str, *, permanent: Collection[int] = PERMANENT_STATUSES, **kwargs) -> requests.Response:
    """POST and return a 2xx response; anything else raises TransientError or PermanentError."""
    try:
        response = requests.post(url, timeout=TIMEOUT, **kwargs)
    except requests.Timeout as exc:
        raise TransientError(f"timed out contacting {_host(url)}") from exc
    except requests.RequestException as exc:
        # The URL may carry a secret (a Slack webhook path): name only the host.
        raise TransientError(f"{type(exc).__name__} contacting {_host(url)}") from exc
    if response.ok:
        return response
    error = f"HTTP {response.status_code}: {detail(response)}"
    raise (PermanentError if response.status_code in permanent else TransientError)(error)


def detail(response: requests.Response) -> str:
    """The provider's own words for a refusal, from its JSON error body when there is one."""
    try:
        body = response.json()
    except ValueError:
        return response.text.strip()[:200] or response.reason
    if isinstance(body, dict):
        if isinstance(body.get("errors"), list):  # SendGrid
            return "; ".join(str(e.get("message", e)) if isinstance(e, dict) else str(e) for e in body["errors"])[:200]
        if body.get("message"):  # Mailgun, Twilio (with its numeric code)
            code = f"{body['code']} " if body.get("code") else ""
            return f"{code}{body['message']}"[:200]
    return str(body)[:200]


def _host(url: str) -> str:
    return urlsplit(url).netloc or "provider"
