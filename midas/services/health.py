"""Readiness: can this process reach its database, Redis and queues right now?"""

from __future__ import annotations

from sqlalchemy import text

from midas.extensions import db
from midas.tasks import queue


def readiness() -> dict:
    """Each dependency's state and, when one fails, the reason; ready only if all pass."""
    checks = {"database": _check_database(), "redis": _check_redis()}
    failing = {name: reason for name, reason in checks.items() if reason not in ("ok", "not configured")}
    report: dict = {"ready": not failing, "checks": checks}
    if failing:
        report["reason"] = "; ".join(f"{name}: {reason}" for name, reason in failing.items())
    else:
        report["queues"] = queue.queue_lengths()
    return report


def _check_database() -> str:
    try:
        db.session.execute(text("SELECT 1"))
        db.session.rollback()
        return "ok"
    except Exception as exc:  # any driver error means "not ready", with its reason
        db.session.rollback()
        return f"unreachable ({type(exc).__name__})"


def _check_redis() -> str:
    if not queue.redis_configured():
        return "not configured"
    try:
        queue.redis().ping()
        return "ok"
    except Exception as exc:
        return f"unreachable ({type(exc).__name__})"
