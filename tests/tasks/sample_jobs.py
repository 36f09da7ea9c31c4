"""A job for exercising the worker itself (the real jobs arrive with notifications)."""

from midas.extensions import db
from midas.models import ErrorCategory, Setting
from midas.tasks.capture import captured


def remember(key: str) -> None:
    """Idempotent: running twice leaves one row."""
    if db.session.get(Setting, key) is None:
        db.session.add(Setting(key=key, value={"ran": True}))
        db.session.commit()


@captured(ErrorCategory.BOOKING)
def release_hold_or_fail(reference: str) -> None:
    """A booking job that always fails, for the error log."""
    raise RuntimeError(f"could not release the hold on {reference}")


def settle_payment_or_fail(payment_id: int) -> None:
    """An undecorated job: its category comes from its name."""
    raise LookupError(f"payment {payment_id} vanished")


def explode(message: str) -> None:
    """A job that always fails, for the Jobs page's failed-job list."""
    raise RuntimeError(message)


def remember_slowly(key: str, seconds: float) -> None:
    """A job still running when the worker is told to stop (the SIGTERM test)."""
    import time

    time.sleep(seconds)
    remember(key)
