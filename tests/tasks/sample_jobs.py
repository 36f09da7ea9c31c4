"""A job for exercising the worker itself (the real jobs arrive with notifications)."""

from midas.extensions import db
from midas.models import Setting


def remember(key: str) -> None:
    """Idempotent: running twice leaves one row."""
    if db.session.get(Setting, key) is None:
        db.session.add(Setting(key=key, value={"ran": True}))
        db.session.commit()
