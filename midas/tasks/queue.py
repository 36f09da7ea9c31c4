"""The job queue: RQ on Redis when REDIS_URL is set, otherwise jobs run in this process."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from flask import current_app
from redis import Redis
from rq import Queue
from rq.utils import import_attribute
from sqlalchemy import event

from midas.extensions import db
from midas.tasks.capture import run_captured

QUEUES = ("high", "default", "low")
FAILURE_TTL = 7 * 24 * 3600
AFTER_COMMIT = "midas.after_commit_jobs"  # key in Session.info: jobs waiting for the transaction to commit
log = logging.getLogger(__name__)
_listening = threading.Lock()

Job = Callable | str  # a function, or its dotted path ("midas.tasks.notifications.send_notification")


def redis_configured() -> bool:
    return bool(current_app.config.get("REDIS_URL"))


def redis() -> Redis:
    """One client per app, built on first use with short timeouts so a dead Redis fails fast."""
    client = current_app.extensions.get("midas_redis")
    if client is None:
        client = Redis.from_url(
            current_app.config["REDIS_URL"], socket_connect_timeout=2, socket_timeout=5,
            health_check_interval=30,
        )
        current_app.extensions["midas_redis"] = client
    return client


def get_queue(name: str = "default") -> Queue:
    if name not in QUEUES:
        raise ValueError(f"unknown queue {name!r}")
    return Queue(name, connection=redis())


def enqueue(func: Job, *args: Any, queue: str = "default", job_id: str | None = None, **options: Any) -> None:
    """Run `func(*args)` in the background; in the embedded default, right now in this process.

    `options` go to RQ (retry, job_timeout, description …) and are ignored in-process.
    """
    if not redis_configured():
        run_captured(_resolve(func), *args)
        return
    options.setdefault("failure_ttl", FAILURE_TTL)
    get_queue(queue).enqueue(func, *args, job_id=job_id, **options)


def enqueue_after_commit(func: Job, *args: Any, queue: str = "default", **options: Any) -> None:
    """Enqueue once the current transaction commits, and never if it rolls back (the outbox's dispatch).

    A dispatch that fails (Redis down) is logged, not raised: the change has committed, and the
    outbox sweep finds what was left pending. In the embedded default the job runs right after the
    commit, in a fresh app context (its own session), with its errors logged the same way.
    """
    _listen_once()
    db.session().info.setdefault(AFTER_COMMIT, []).append((func, args, queue, options))


def _listen_once() -> None:
    with _listening:
        if not event.contains(db.session, "after_commit", _run_after_commit):
            event.listen(db.session, "after_commit", _run_after_commit)
            event.listen(db.session, "after_rollback", _forget_after_rollback)


def _run_after_commit(session) -> None:
    for func, args, queue, options in session.info.pop(AFTER_COMMIT, ()):
        if not dispatch_safely(func, *args, queue=queue, **options) and redis_configured():
            break  # Redis is down: one connect timeout is enough, the sweep sends the rest


def _forget_after_rollback(session) -> None:
    session.info.pop(AFTER_COMMIT, None)


def dispatch_safely(func: Job, *args: Any, queue: str = "default", **options: Any) -> bool:
    """Enqueue (or, in-process, run in a fresh app context); log instead of raising. True if it went."""
    try:
        if redis_configured():
            enqueue(func, *args, queue=queue, **options)
        else:
            with current_app._get_current_object().app_context():
                run_captured(_resolve(func), *args)
    except Exception:
        log.exception("job %s%r was not dispatched; the outbox sweep will pick it up", _name(func), args)
        return False
    return True


def _resolve(func: Job) -> Callable:
    return import_attribute(func) if isinstance(func, str) else func


def _name(func: Job) -> str:
    return func if isinstance(func, str) else f"{func.__module__}.{func.__qualname__}"


def queue_lengths() -> dict[str, int | None]:
    """Waiting jobs per queue; None per queue in the embedded default, where nothing waits."""
    if not redis_configured():
        return {name: None for name in QUEUES}
    return {name: get_queue(name).count for name in QUEUES}


def queue_overview() -> list[dict]:
    """Per queue: waiting, running, failed and scheduled job counts (empty in the embedded default)."""
    if not redis_configured():
        return []
    overview = []
    for name in QUEUES:
        q = get_queue(name)
        overview.append({
            "name": name, "waiting": q.count, "running": q.started_job_registry.count,
            "failed": q.failed_job_registry.count, "scheduled": q.scheduled_job_registry.count,
        })
    return overview
