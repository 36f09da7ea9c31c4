"""Jobs area (admin): queue depths, workers, scheduled jobs, and failed jobs to search, requeue or delete."""

from __future__ import annotations

from flask import current_app, flash, redirect, request, url_for
from flask_login import current_user

from midas.htmx import render
from midas.models import Role
from midas.services import jobs
from midas.tasks import queue
from midas.views.guards import staff_blueprint

bp = staff_blueprint("jobs", __name__, minimum=Role.ADMIN, url_prefix="/jobs")
FILTERS = ("queue", "func", "error", "period")


@bp.get("")
def index():
    configured = bool(current_app.config["REDIS_URL"])
    filters = _filters(request.args)
    context = {"queues": queue.queue_overview(), "redis_configured": configured, "filters": filters,
               "queue_names": queue.QUEUES, "periods": list(jobs.PERIODS), "max_scan": jobs.MAX_SCAN}
    if configured:
        context.update(workers=jobs.workers(), scheduled=jobs.scheduled_jobs(),
                       failed=jobs.search_failed(filters, request.args.get("cursor", "")))
    block = "failed" if request.htmx and request.htmx.target == "failed" else "queues"
    return render("jobs/index.html", block, **context)


@bp.post("/failed/<queue_name>/<job_id>/requeue")
def requeue(queue_name: str, job_id: str):
    if _valid_queue(queue_name) and jobs.requeue_failed(current_user, job_id, queue_name):
        flash(f"Job {job_id} is back on the {queue_name} queue.", "success")
    else:
        flash(f"Job {job_id} is no longer among the failed jobs.", "error")
    return _back()


@bp.post("/failed/<queue_name>/<job_id>/delete")
def delete(queue_name: str, job_id: str):
    if _valid_queue(queue_name) and jobs.delete_failed(current_user, job_id, queue_name):
        flash(f"Job {job_id} deleted.", "success")
    else:
        flash(f"Job {job_id} is no longer among the failed jobs.", "error")
    return _back()


@bp.post("/failed/requeue")
def requeue_all():
    if not _confirmed():
        return _back()
    count = jobs.requeue_matching(current_user, _filters(request.form))
    flash(f"{count} failed job{'s' if count != 1 else ''} requeued.", "success")
    return _back()


@bp.post("/failed/delete")
def delete_all():
    if not _confirmed():
        return _back()
    count = jobs.delete_matching(current_user, _filters(request.form))
    flash(f"{count} failed job{'s' if count != 1 else ''} deleted.", "success")
    return _back()


def _filters(source) -> jobs.FailedFilters:
    return jobs.FailedFilters(**{key: (source.get(key) or "").strip()[:200] for key in FILTERS})


def _valid_queue(name: str) -> bool:
    return name in queue.QUEUES and bool(current_app.config["REDIS_URL"])


def _confirmed() -> bool:
    if not current_app.config["REDIS_URL"]:
        flash("No REDIS_URL is set: there are no failed jobs to act on.", "error")
        return False
    if request.form.get("confirm") != "y":
        flash("Tick the confirmation box to act on every matching job.", "error")
        return False
    return True


def _back():
    args = {key: value for key in FILTERS if (value := (request.form.get(key) or "").strip())}
    return redirect(url_for("jobs.index", **args))
