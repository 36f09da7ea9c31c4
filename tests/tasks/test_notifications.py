"""Message jobs on a real RQ worker, RQ's retries, the periodic schedule, and the operator commands."""

from __future__ import annotations

from datetime import timedelta

import pytest

from midas.extensions import db
from midas.models import Booking, utcnow
from midas.services import outbox
from midas.tasks import queue, schedule
from midas.tasks.notifications import DeliveryDeferred, send_notification
from midas.tasks.worker import run_worker
from tests import factories
from tests.integrations import fakes
from tests.services.test_outbox import pending_row, reload

closed_port, providers, smtp_server = fakes.closed_port, fakes.providers, fakes.smtp_server


@pytest.fixture
def redis_only(app):
    if not app.config["REDIS_URL"]:
        pytest.skip("needs Redis (TEST_REDIS_URL)")


@pytest.fixture
def smtp(smtp_server, providers):
    providers(EMAIL_PROVIDERS=["smtp"], SMTP_URL=smtp_server.url)
    return smtp_server


def test_the_same_send_job_queued_twice_sends_once_on_a_real_worker(redis_only, smtp):
    row = pending_row()
    outbox.dispatch_now(row.id)
    outbox.dispatch_now(row.id)
    assert queue.queue_lengths()["high"] == 2
    run_worker(burst=True, with_scheduler=False)
    assert len(smtp.messages) == 1 and reload(row).status == "sent"


def test_when_every_provider_is_down_rq_retries_the_job_after_the_backoff(redis_only, providers, closed_port):
    providers(EMAIL_PROVIDERS=["smtp"], SMTP_URL=f"smtp://127.0.0.1:{closed_port}")
    row = pending_row()
    outbox.dispatch_now(row.id)
    run_worker(burst=True, with_scheduler=False)

    row = reload(row)
    assert (row.status, row.attempts) == ("pending", 1)
    scheduled = queue.get_queue("high").scheduled_job_registry
    [job_id] = scheduled.get_job_ids()
    retry_at = scheduled.get_scheduled_time(job_id)
    assert timedelta(seconds=25) < retry_at - utcnow() <= timedelta(seconds=outbox.BACKOFF[0])


def test_in_process_a_failed_attempt_waits_for_the_sweep(app, providers, closed_port):
    if app.config["REDIS_URL"]:
        pytest.skip("embedded default only")
    providers(EMAIL_PROVIDERS=["smtp"], SMTP_URL=f"smtp://127.0.0.1:{closed_port}")
    assert send_notification(pending_row().id) == "retry"


def test_with_redis_a_failed_attempt_raises_for_rqs_retry(redis_only, providers, closed_port):
    providers(EMAIL_PROVIDERS=["smtp"], SMTP_URL=f"smtp://127.0.0.1:{closed_port}")
    with pytest.raises(DeliveryDeferred):
        send_notification(pending_row().id)


# Periodic jobs.

def test_periodic_jobs_are_booked_once_however_many_workers_start(redis_only):
    now = utcnow()
    assert schedule.register_periodic_jobs(now) == [periodic.name for periodic in schedule.PERIODIC]
    assert schedule.register_periodic_jobs(now) == []  # a second worker starting at the same moment
    runs = schedule.next_runs()
    assert set(runs) == set(schedule.BY_NAME) and all(runs.values())
    scheduled = sum(queue.get_queue(name).scheduled_job_registry.count for name in queue.QUEUES)
    assert scheduled == len(schedule.PERIODIC)


def test_a_periodic_run_books_the_next_run_first_then_works(redis_only, app):
    booking = factories.booking(factories.item(), status="pending_payment")
    booking.hold_expires_at = utcnow() - timedelta(minutes=1)
    db.session.commit()

    assert schedule.run_periodic("release_expired_holds") == [booking.reference]
    assert all(schedule.next_runs().values())
    assert db.session.get(Booking, booking.id).status == "quote"


def test_the_worker_books_the_periodic_jobs_when_it_runs_the_scheduler(redis_only):
    run_worker(burst=True, with_scheduler=True)
    assert all(schedule.next_runs().values())


def test_every_periodic_job_points_at_a_real_function():
    from rq.utils import import_attribute

    for periodic in schedule.PERIODIC:
        assert callable(import_attribute(periodic.func)), periodic.name
        assert periodic.queue in queue.QUEUES


@pytest.mark.parametrize(("command", "reload_flag", "debug", "run_main", "starts"), [
    ("run", None, False, None, True),  # make run: flask run, no reloader
    ("run", None, True, None, False),  # flask run --debug: the reloader's watcher process
    ("run", None, True, "true", True),  # ... and the child that serves
    ("run", False, True, None, True),  # flask run --debug --no-reload
    ("worker", None, False, None, False),
    ("db", None, False, None, False),
])
def test_the_in_process_ticker_starts_only_where_flask_run_serves(monkeypatch, command, reload_flag, debug,
                                                                   run_main, starts):
    if run_main:
        monkeypatch.setenv("WERKZEUG_RUN_MAIN", run_main)
    else:
        monkeypatch.delenv("WERKZEUG_RUN_MAIN", raising=False)
    assert schedule.serving_with_flask_run(command, reload_flag, debug) is starts


def test_a_failing_periodic_job_is_logged_and_the_ticker_goes_on(app, monkeypatch, caplog):
    monkeypatch.setitem(schedule.BY_NAME, "broken", schedule.Periodic("broken", "midas.nowhere.job", 60, "low"))
    assert schedule.run_in_process(app, "broken") is None
    assert "periodic job broken failed" in caplog.text


# Operator commands.

def test_outbox_sweep_command_sends_what_was_left_pending(app, smtp):
    row = pending_row(created_at=utcnow() - timedelta(minutes=3))
    result = app.test_cli_runner().invoke(args=["outbox", "sweep"])
    assert result.exit_code == 0, result.output
    assert "Re-dispatched 1 pending and 0 stuck message(s)" in result.output
    fakes.run_jobs()
    assert reload(row).status == "sent" and len(smtp.messages) == 1


def test_schedule_commands_list_and_run_the_periodic_jobs(app):
    listed = app.test_cli_runner().invoke(args=["schedule", "list"])
    assert listed.exit_code == 0 and all(name in listed.output for name in schedule.BY_NAME)
    ran = app.test_cli_runner().invoke(args=["schedule", "run", "queue_reminders"])
    assert ran.exit_code == 0 and "queue_reminders: 0" in ran.output
    unknown = app.test_cli_runner().invoke(args=["schedule", "run", "nope"])
    assert unknown.exit_code != 0 and "Unknown job" in unknown.output
