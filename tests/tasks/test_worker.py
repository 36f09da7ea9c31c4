"""Jobs run on RQ workers when Redis is configured, and in-process when it is not."""

from __future__ import annotations

import pytest

from midas.extensions import db
from midas.models import Setting
from midas.tasks import queue
from midas.tasks.worker import run_worker
from tests.tasks.sample_jobs import remember


def test_without_redis_a_job_runs_at_once_in_process(app):
    if app.config["REDIS_URL"]:
        pytest.skip("embedded default only")
    queue.enqueue(remember, "inline")
    assert db.session.get(Setting, "inline") is not None


def test_worker_runs_queued_jobs_inside_the_app(app):
    if not app.config["REDIS_URL"]:
        pytest.skip("needs Redis (TEST_REDIS_URL)")
    queue.enqueue(remember, "queued", queue="high")
    queue.enqueue(remember, "queued", queue="low")  # the same job twice changes nothing more
    assert queue.queue_lengths() == {"high": 1, "default": 0, "low": 1}
    assert db.session.get(Setting, "queued") is None
    run_worker(burst=True, with_scheduler=False)
    assert queue.queue_lengths() == {"high": 0, "default": 0, "low": 0}
    assert db.session.query(Setting).filter_by(key="queued").count() == 1


def test_worker_command_explains_that_it_needs_redis(app):
    if app.config["REDIS_URL"]:
        pytest.skip("embedded default only")
    result = app.test_cli_runner().invoke(args=["worker", "--burst"])
    assert result.exit_code != 0 and "REDIS_URL is not set" in result.output


def test_jobs_page_shows_queue_depths(app, login_as):
    page = login_as("admin").page("/jobs")
    if app.config["REDIS_URL"]:
        assert [th.get_text() for th in page.select("thead th")][:2] == ["Queue", "Waiting"]
    else:
        assert "run in this process" in page.get_text()
