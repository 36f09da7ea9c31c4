"""The RQ worker as a Flask command, so jobs run inside the app context with the app's Redis."""

from __future__ import annotations

from rq.worker import HerokuWorker

from midas.extensions import db
from midas.tasks.capture import rq_exception_handler
from midas.tasks.queue import QUEUES, get_queue, redis
from midas.tasks.schedule import register_periodic_jobs


class MidasWorker(HerokuWorker):
    """Heroku-friendly shutdown (SIGTERM → finish within the 30 s window), fresh DB connections per job."""

    def perform_job(self, job, queue) -> bool:
        # The work horse is a fork: connections inherited from the parent must not be reused.
        db.engine.dispose(close=False)
        return super().perform_job(job, queue)


def run_worker(burst: bool = False, with_scheduler: bool = True) -> bool:
    """Process the high, default and low queues in priority order; return when told to stop.

    With the scheduler, the periodic jobs are booked first (once, however many workers start).
    """
    if with_scheduler:
        register_periodic_jobs()
    worker = MidasWorker([get_queue(name) for name in QUEUES], connection=redis(),
                         exception_handlers=[rq_exception_handler])
    return worker.work(burst=burst, with_scheduler=with_scheduler)
