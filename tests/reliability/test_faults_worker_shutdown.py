"""SIGTERM, as Heroku sends it to a dyno being stopped: the worker finishes the job in hand and exits.

Heroku sends SIGKILL 30 seconds after SIGTERM; the worker must be gone well before, with the job it was
running done (not abandoned to the sweep).
"""

from __future__ import annotations

import signal
import time

from rq.job import Job

from midas.extensions import db
from midas.models import Setting
from midas.tasks import queue
from tests.reliability.processes import app_env, start_worker, wait_for

HEROKU_WINDOW = 30  # seconds between SIGTERM and SIGKILL on a dyno


def test_sigterm_mid_job_finishes_the_job_and_exits_inside_herokus_window(
        app, postgres_url, private_redis, processes, tmp_path, reliability_report):
    worker = start_worker(app_env(postgres_url, private_redis.url), tmp_path / "worker.log")
    processes.append(worker)
    queue.enqueue("tests.tasks.sample_jobs.remember_slowly", "sigterm-job", 3, queue="high", job_id="sigterm-job")
    job = Job.fetch("sigterm-job", connection=queue.redis())
    wait_for(lambda: Job.fetch(job.id, connection=queue.redis()).get_status() == "started", 60,
             f"the worker to start the job: {worker.tail()}")

    worker.popen.send_signal(signal.SIGTERM)
    reliability_report.add("faults")
    stopped = time.monotonic()
    exit_code = worker.popen.wait(timeout=HEROKU_WINDOW)

    assert time.monotonic() - stopped < HEROKU_WINDOW
    assert exit_code == 0, worker.tail()
    assert Job.fetch(job.id, connection=queue.redis()).get_status() == "finished"
    db.session.expire_all()
    assert db.session.get(Setting, "sigterm-job") is not None
