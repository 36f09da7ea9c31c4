"""Deposit hold jobs."""

from __future__ import annotations

from midas.services import deposits


def release_returned_deposits() -> int:
    """Periodic: release deposit holds 48 h after the return (or of cancelled bookings); returns how many."""
    return len(deposits.release_returned_deposits())
