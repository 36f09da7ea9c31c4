"""A job that fails lands in the error log, in its category, once — in-process and on a real RQ worker."""

from __future__ import annotations

from datetime import timedelta

import pytest
from rq import Retry

from midas.extensions import db
from midas.models import ErrorEvent, ErrorGroup, utcnow
from midas.services import alerts, errors
from midas.tasks import queue
from midas.tasks.capture import category_for
from midas.tasks.errors import check_alerts, prune_error_events
from midas.tasks.worker import run_worker
from tests.tasks.sample_jobs import release_hold_or_fail, settle_payment_or_fail


def groups() -> list[ErrorGroup]:
    db.session.commit()
    return db.session.query(ErrorGroup).order_by(ErrorGroup.id).all()


def run(job, *args, **options) -> None:
    """Enqueue and, with Redis, let a real worker run it; in-process the failure reaches the caller too."""
    db.session.commit()
    if queue.redis_configured():
        queue.enqueue(job, *args, **options)
        run_worker(burst=True, with_scheduler=False)
    else:
        with pytest.raises(Exception):  # noqa: B017 (whatever the job raised)
            queue.enqueue(job, *args)


def test_a_failing_job_lands_in_its_category_with_the_job_named(app):
    run(release_hold_or_fail, "MID-7KQ3X9")
    run(release_hold_or_fail, "MID-ABCDEF")
    [group] = groups()
    assert (group.category, group.error_type, group.occurrences) == ("BOOKING", "RuntimeError", 2)
    event = db.session.query(ErrorEvent).first()
    assert event.context["job"].endswith("release_hold_or_fail") and "release_hold_or_fail" in event.stack_trace


def test_an_undecorated_job_takes_its_category_from_its_name(app):
    run(settle_payment_or_fail, 42)
    [group] = groups()
    assert (group.category, group.error_type, group.severity) == ("PAYMENT", "LookupError", "HIGH")


def test_a_failure_that_will_be_retried_is_medium_and_the_last_one_high(app):
    if not app.config["REDIS_URL"]:
        pytest.skip("retries need RQ (TEST_REDIS_URL)")
    queue.enqueue(settle_payment_or_fail, 7, retry=Retry(max=1))
    run_worker(burst=True, with_scheduler=False)
    [group] = groups()
    severities = [e.severity for e in db.session.query(ErrorEvent).order_by(ErrorEvent.id)]
    assert severities == ["MEDIUM", "HIGH"] and group.severity == "HIGH" and group.occurrences == 2


def test_a_job_dispatched_after_commit_is_logged_and_recorded_not_raised(app):
    if app.config["REDIS_URL"]:
        pytest.skip("embedded default only")
    assert queue.dispatch_safely(release_hold_or_fail, "MID-1") is False
    assert [g.category for g in groups()] == ["BOOKING"]


@pytest.mark.parametrize("name, category", [
    ("midas.tasks.notifications.send_notification", "NOTIFICATION"),
    ("midas.tasks.notifications.sweep_outbox", "NOTIFICATION"),
    ("midas.tasks.webhooks.process_stripe_event", "WEBHOOK"),
    ("midas.tasks.schedule.run_periodic release_expired_holds", "BOOKING"),
    ("midas.tasks.payments.reconcile", "PAYMENT"),
    ("midas.tasks.reports.nightly", "SYSTEM"),
])
def test_job_names_suggest_their_category(name, category):
    assert category_for(name) == category


def test_pruning_deletes_old_events_but_keeps_groups_and_counts(app):
    from midas.services.error_capture import record_error

    group = record_error("WEBHOOK", "LOW", "Signature verification failed")
    record_error("WEBHOOK", "LOW", "Signature verification failed")
    db.session.query(ErrorEvent).filter(ErrorEvent.id == db.session.query(ErrorEvent.id).limit(1).scalar_subquery()
                                        ).update({"occurred_at": utcnow() - timedelta(days=91)},
                                                 synchronize_session=False)
    db.session.commit()
    assert prune_error_events() == 1 and prune_error_events() == 0
    assert db.session.query(ErrorEvent).count() == 1 and errors.get_group(group.id).occurrences == 2
    with pytest.raises(errors.InvalidInput):
        errors.prune_events(days=0)


def test_the_alert_check_job_runs_with_nothing_to_do(app):
    assert check_alerts() == 0 and alerts.check_alerts(now=utcnow()) == 0
