"""Periodic jobs, registered once however many workers start, and an in-process ticker for `flask run`.

With Redis each periodic job is a chain of RQ scheduled jobs: every run first books the next slot
(a wall-clock multiple of its interval) and then does its work, so a crash mid-run cannot end the
chain. A slot is booked with `SET NX` on a key naming it, so workers starting together, or a run
healing the other chains, never schedule a slot twice. The worker's RQ scheduler moves due jobs to
their queue. Without Redis, `flask run` starts a daemon thread that runs the same jobs in-process;
tests never start it (and `flask outbox sweep` / `flask schedule run NAME` work anywhere).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime

from flask import Flask
from rq.utils import import_attribute

from midas.models import utcnow
from midas.tasks.queue import get_queue, redis

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Periodic:
    name: str
    func: str  # dotted path of a job that takes no arguments
    every: int  # seconds
    queue: str


PERIODIC = (
    Periodic("release_expired_holds", "midas.tasks.schedule.release_expired_holds", 60, "high"),
    Periodic("check_alerts", "midas.tasks.errors.check_alerts", 60, "high"),
    Periodic("retry_stripe_events", "midas.tasks.webhooks.retry_due_stripe_events", 60, "high"),
    Periodic("sweep_paypal_ipn", "midas.tasks.paypal.sweep_ipn", 300, "default"),
    Periodic("follow_paypal_refunds", "midas.tasks.paypal.follow_refunds", 900, "default"),
    Periodic("queue_reminders", "midas.tasks.notifications.queue_reminders", 300, "default"),
    Periodic("release_returned_deposits", "midas.tasks.deposits.release_returned_deposits", 900, "default"),
    Periodic("sweep_outbox", "midas.tasks.notifications.sweep_outbox", 60, "low"),
    Periodic("reconcile_daily", "midas.tasks.reconciliation.reconcile_daily", 24 * 3600, "low"),
    Periodic("prune_error_events", "midas.tasks.errors.prune_error_events", 24 * 3600, "low"),
)
BY_NAME = {periodic.name: periodic for periodic in PERIODIC}
SLOT_KEY = "midas:periodic:{name}:{slot}"


def release_expired_holds() -> list[str]:
    """Pending-payment holds past their expiry go back to quotes."""
    from midas.services import booking_states

    return booking_states.release_expired_holds()


def register_periodic_jobs(now: datetime | None = None) -> list[str]:
    """Book the next run of every periodic job that has none yet; returns the names booked now."""
    now = now or utcnow()
    return [periodic.name for periodic in PERIODIC if _book_next(periodic, now)]


def run_periodic(name: str):
    """One run of a periodic job: book the next run of every chain first, then do the work."""
    register_periodic_jobs()
    return import_attribute(BY_NAME[name].func)()


def next_runs() -> dict[str, datetime | None]:
    """When each periodic job runs next, from RQ's scheduled registries (None: not scheduled)."""
    runs: dict[str, datetime | None] = {}
    for periodic in PERIODIC:
        registry = get_queue(periodic.queue).scheduled_job_registry
        scores = [score for job_id, score in registry.connection.zrange(registry.key, 0, -1, withscores=True)
                  if _text(job_id).startswith(f"periodic-{periodic.name}-")]
        runs[periodic.name] = datetime.fromtimestamp(min(scores), UTC) if scores else None
    return runs


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _book_next(periodic: Periodic, now: datetime) -> bool:
    slot = (int(now.timestamp()) // periodic.every + 1) * periodic.every
    key = SLOT_KEY.format(name=periodic.name, slot=slot)
    if not redis().set(key, "1", nx=True, ex=periodic.every * 10):
        return False
    get_queue(periodic.queue).enqueue_at(
        datetime.fromtimestamp(slot, UTC), "midas.tasks.schedule.run_periodic", periodic.name,
        job_id=f"periodic-{periodic.name}-{slot}", description=f"periodic {periodic.name}",
        job_timeout=max(periodic.every * 2, 120), result_ttl=periodic.every * 5, failure_ttl=7 * 24 * 3600,
    )
    return True


# The embedded default: no Redis, no worker, so `flask run` ticks the same jobs itself.

def start_embedded_ticker(app: Flask, tick: float = 5.0) -> threading.Thread:
    """Run each periodic job in-process when due, in a daemon thread (one per serving process)."""
    thread = threading.Thread(target=_tick_forever, args=(app, tick), name="midas-periodic", daemon=True)
    thread.start()
    log.info("periodic jobs run in this process: %s", ", ".join(BY_NAME))
    return thread


def _tick_forever(app: Flask, tick: float) -> None:
    due = {periodic.name: time.monotonic() + 5 for periodic in PERIODIC}  # let the server start first
    while True:
        for periodic in PERIODIC:
            if time.monotonic() >= due[periodic.name]:
                due[periodic.name] = time.monotonic() + periodic.every
                run_in_process(app, periodic.name)
        time.sleep(tick)


def run_in_process(app: Flask, name: str):
    """Run one periodic job now in its own app context; log, never raise (the ticker must keep going)."""
    with app.app_context():
        try:
            return import_attribute(BY_NAME[name].func)()
        except Exception:
            log.exception("periodic job %s failed", name)
            return None


def serving_with_flask_run(info_name: str | None, reload: bool | None, debug: bool) -> bool:
    """True in the process that serves `flask run` (with the reloader, its child, not the watcher)."""
    if info_name != "run":
        return False
    reloading = debug if reload is None else reload
    return not reloading or os.environ.get("WERKZEUG_RUN_MAIN") == "true"
