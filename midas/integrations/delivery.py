"""What every message gateway shares: its errors, the record of each attempt, and failover along a chain."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol


class DeliveryError(Exception):
    """A provider did not take the message. Transient errors fall over to the next provider."""

    permanent = False


class TransientError(DeliveryError):
    """Connection refused, timeout, 5xx, throttling, bad credentials: another provider (or later) may work."""


class PermanentError(DeliveryError):
    """The provider rejected the message itself (an invalid address): no other provider will do better."""

    permanent = True


class Gateway(Protocol):
    name: str

    def send(self, message: Any) -> str:
        """Hand the message over; return the provider's message id or raise a DeliveryError."""


@dataclass(frozen=True)
class Attempt:
    provider: str
    ok: bool
    ms: int
    error: str | None = None
    permanent: bool = False


@dataclass(frozen=True)
class Receipt:
    provider: str
    message_id: str
    attempts: tuple[Attempt, ...]


class DeliveryFailed(Exception):
    """Every provider in the chain failed, or one rejected the message for good."""

    def __init__(self, attempts: Sequence[Attempt]) -> None:
        self.attempts = tuple(attempts)
        self.permanent = any(attempt.permanent for attempt in self.attempts)
        super().__init__(summary(self.attempts))


def send_with_failover(gateways: Sequence[Gateway], message: Any) -> Receipt:
    """Try each gateway in order; a transient error moves on, a permanent one stops the chain."""
    attempts: list[Attempt] = []
    for gateway in gateways:
        started = time.perf_counter()
        try:
            message_id = gateway.send(message)
        except DeliveryError as exc:
            attempts.append(Attempt(gateway.name, False, _ms(started), str(exc) or type(exc).__name__,
                                    exc.permanent))
            if exc.permanent:
                break
            continue
        attempts.append(Attempt(gateway.name, True, _ms(started)))
        return Receipt(gateway.name, message_id, tuple(attempts))
    raise DeliveryFailed(attempts)


def summary(attempts: Sequence[Attempt]) -> str:
    """One line per failed provider, e.g. "smtp: connection refused; sendgrid: HTTP 500"."""
    return "; ".join(f"{a.provider}: {a.error}" for a in attempts if not a.ok) or "no provider was tried"


def _ms(started: float) -> int:
    return round((time.perf_counter() - started) * 1000)
