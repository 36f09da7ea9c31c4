"""The Jobs page: queues, workers, scheduled jobs, and failed jobs to search, requeue and delete."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest

from midas.models import AuditEntry
from midas.services import jobs
from midas.tasks import queue
from midas.tasks.worker import run_worker
from tests.tasks.sample_jobs import explode, remember


def _needs_redis(app) -> None:
    if not app.config["REDIS_URL"]:
        pytest.skip("needs Redis (TEST_REDIS_URL)")


def _fail(*messages: str, on: str = "high") -> None:
    for message in messages:
        queue.enqueue(explode, message, queue=on)
    run_worker(burst=True, with_scheduler=False)


def _failed_rows(page) -> list[str]:
    return [row.get_text(" ", strip=True) for row in page.select("#failed-jobs tbody tr[data-job-id]")]


def test_without_redis_the_page_says_jobs_run_in_process(app, login_as):
    if app.config["REDIS_URL"]:
        pytest.skip("embedded default only")
    page = login_as("admin").page("/jobs")
    assert "run in this process" in page.get_text()
    assert page.select_one("#failed-jobs") is None


def test_page_lists_failed_jobs_with_their_exception_and_scheduled_jobs(app, login_as):
    _needs_redis(app)
    _fail("the vault is locked")
    queue.get_queue("low").enqueue_in(timedelta(hours=1), remember, "later")
    page = login_as("admin").page("/jobs")
    rows = _failed_rows(page)
    assert len(rows) == 1
    assert "tests.tasks.sample_jobs.explode" in rows[0]
    assert "RuntimeError: the vault is locked" in page.select_one(".job-error").get_text()
    assert "Scanned 1 of 1" in page.select_one("[data-scanned]").get_text(" ", strip=True)
    scheduled = page.select_one("#scheduled tbody").get_text(" ", strip=True)
    assert "tests.tasks.sample_jobs.remember" in scheduled and "low" in scheduled
    assert page.select_one("#workers caption").get_text(strip=True) == "0 workers alive"


def test_failed_jobs_filter_by_function_error_text_and_period(app, login_as):
    _needs_redis(app)
    _fail("card declined", "mailbox full")
    queue.enqueue("tests.tasks.sample_jobs.settle_payment_or_fail", 7, queue="default")
    run_worker(burst=True, with_scheduler=False)
    admin = login_as("admin")
    assert len(_failed_rows(admin.page("/jobs"))) == 3
    by_function = _failed_rows(admin.page("/jobs?func=settle_payment"))
    assert len(by_function) == 1 and "payment 7 vanished" in by_function[0]
    by_error = _failed_rows(admin.page("/jobs?error=MAILBOX"))
    assert len(by_error) == 1 and "mailbox full" in by_error[0]
    assert len(_failed_rows(admin.page("/jobs?queue=high&period=1h"))) == 2
    assert _failed_rows(admin.page("/jobs?error=nothing+like+this")) == []


def test_search_is_bounded_and_continues_where_it_stopped(app):
    _needs_redis(app)
    _fail("one", "two", "three")
    first = jobs.search_failed(jobs.FailedFilters(), max_scan=2)
    assert (first.scanned, first.total, len(first.jobs)) == (2, 3, 2)
    assert first.next_cursor == "high:2"
    rest = jobs.search_failed(jobs.FailedFilters(), cursor=first.next_cursor, max_scan=2)
    assert (rest.scanned, len(rest.jobs), rest.next_cursor) == (1, 1, None)
    errors = {j.error for j in first.jobs + rest.jobs}
    assert errors == {"RuntimeError: one", "RuntimeError: two", "RuntimeError: three"}


def test_requeue_puts_a_failed_job_back_on_its_queue_and_is_audited(app, login_as):
    _needs_redis(app)
    _fail("try me again", on="default")
    admin = login_as("admin")
    job_id = admin.page("/jobs").select_one("#failed-jobs tr[data-job-id]")["data-job-id"]
    response = admin.post(f"/jobs/failed/default/{job_id}/requeue", {"func": "explode"})
    assert response.status_code == 302 and response.headers["Location"].endswith("/jobs?func=explode")
    assert queue.get_queue("default").job_ids == [job_id]
    assert queue.get_queue("default").failed_job_registry.count == 0
    entry = AuditEntry.query.filter_by(action="job.requeued").one()
    assert entry.entity_id == job_id and entry.actor_id == admin.user_id


def test_delete_removes_a_failed_job_and_is_audited(app, login_as):
    _needs_redis(app)
    _fail("forget me")
    admin = login_as("admin")
    job_id = admin.page("/jobs").select_one("#failed-jobs tr[data-job-id]")["data-job-id"]
    assert admin.post(f"/jobs/failed/high/{job_id}/delete").status_code == 302
    assert queue.get_queue("high").failed_job_registry.count == 0
    assert queue.redis().exists(f"rq:job:{job_id}") == 0
    assert _failed_rows(admin.page("/jobs")) == []
    assert AuditEntry.query.filter_by(action="job.deleted", entity_id=job_id).count() == 1


def test_acting_on_all_matching_needs_confirmation_and_touches_only_matches(app, login_as):
    _needs_redis(app)
    _fail("gateway timeout", "gateway timeout", "disk full")
    admin = login_as("admin")
    failed = queue.get_queue("high").failed_job_registry
    admin.post("/jobs/failed/delete", {"error": "gateway"})
    assert failed.count == 3  # no confirmation: nothing happens
    admin.post("/jobs/failed/delete", {"error": "gateway", "confirm": "y"})
    assert failed.count == 1
    admin.post("/jobs/failed/requeue", {"confirm": "y"})
    assert failed.count == 0 and queue.get_queue("high").count == 1
    actions = [e.action for e in AuditEntry.query.filter(AuditEntry.action.like("job.%")).order_by(AuditEntry.id)]
    assert actions == ["job.deleted_matching", "job.requeued_matching"]
    assert AuditEntry.query.filter_by(action="job.deleted_matching").one().after == {"error": "gateway", "count": 2}


def test_jobs_actions_are_admin_only(app, login_as):
    concierge = login_as("concierge")
    assert concierge.get("/jobs").status_code == 403
    assert concierge.post("/jobs/failed/high/abc/delete").status_code == 403
    assert concierge.post("/jobs/failed/delete", {"confirm": "y"}).status_code == 403


def test_tens_of_thousands_of_failures_are_scanned_in_bounded_steps(app, login_as):
    _needs_redis(app)
    _fail("needle")
    key = queue.get_queue("high").failed_job_registry.key
    far = time.time() + 30 * 24 * 3600  # newer than the real failure: scanned first
    queue.redis().zadd(key, {f"gone-{n}": far for n in range(jobs.MAX_SCAN + 1000)})
    admin = login_as("admin")
    page = admin.page("/jobs?error=needle")
    assert "Scanned 5000 of 6001" in page.select_one("[data-scanned]").get_text(" ", strip=True)
    assert _failed_rows(page) == []
    more = page.select_one("a[rel=next]")["href"]
    assert "cursor=high%3A5000" in more or "cursor=high:5000" in more
    rows = _failed_rows(admin.page(more))
    assert len(rows) == 1 and "needle" in rows[0]


def test_filters_answer_htmx_with_the_failed_jobs_fragment(app, login_as):
    _needs_redis(app)
    _fail("fragment please")
    response = login_as("admin").get("/jobs?func=explode", headers={"HX-Request": "true", "HX-Target": "failed"})
    html = response.get_data(as_text=True)
    assert response.status_code == 200 and "fragment please" in html
    assert "<html" not in html and 'id="queue-depths"' not in html
