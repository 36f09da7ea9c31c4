"""The job queue: RQ on Redis when REDIS_URL is set, otherwise jobs run in this process."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from flask import current_app
from redis import Redis
from rq import Queue

QUEUES = ("high", "default", "low")
log = logging.getLogger(__name__)


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


def enqueue(func: Callable, *args: Any, queue: str = "default", job_id: str | None = None) -> None:
    """Run `func(*args)` in the background; in the embedded default, right now in this process."""
    if not redis_configured():
        func(*args)
        return
    get_queue(queue).enqueue(func, *args, job_id=job_id, failure_ttl=7 * 24 * 3600)


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
