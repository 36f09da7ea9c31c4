"""Deposit hold and late-fee jobs."""

from __future__ import annotations

from midas.models import ErrorCategory
from midas.services import deposits, late_fees
from midas.tasks.capture import captured


@captured(ErrorCategory.PAYMENT)
def charge_late_fee(booking_id: int) -> str:
    """After a late return: take the fee from the deposit hold or open a balance payment; returns its status."""
    return late_fees.charge_late_fee(booking_id).status


def release_returned_deposits() -> int:
    """Periodic: charge late fees still uncharged, then release deposit holds 48 h after the return; returns how many.

    Late fees go first, so a hold that should pay one is not released before it does.
    """
    late_fees.charge_outstanding()
    return len(deposits.release_returned_deposits())
