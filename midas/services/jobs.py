"""The Jobs page's reading and repair of the RQ queues: workers, scheduled jobs, failed jobs (search, requeue, delete).

The failed-job registries can hold tens of thousands of ids, so searches page through them in chunks
(`get_job_ids(start, end)` then `Job.fetch_many`) and stop after one page of matches or `MAX_SCAN` ids;
the page says how far it got ("scanned N of M") and offers to continue from there.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from rq import Worker
from rq.job import Job
from rq.registry import FailedJobRegistry
from rq.results import Result

from midas.models import StaffUser
from midas.services import audit
from midas.tasks.queue import QUEUES, get_queue, redis

PERIODS = {"1h": timedelta(hours=1), "24h": timedelta(hours=24), "7d": timedelta(days=7)}
CHUNK = 500
MAX_SCAN = 5000
PAGE_SIZE = 50
SCHEDULED_SHOWN = 50
MAX_BULK = 100_000  # ids scanned by one "all matching" action


@dataclass
class FailedFilters:
    queue: str = ""
    func: str = ""
    error: str = ""
    period: str = ""

    def active(self) -> dict[str, str]:
        return {key: value for key, value in vars(self).items() if value}


@dataclass
class FailedJob:
    id: str
    queue: str
    func_name: str
    args: str
    error: str
    exc_info: str
    enqueued_at: datetime | None
    ended_at: datetime | None


@dataclass
class FailedPage:
    jobs: list[FailedJob] = field(default_factory=list)
    scanned: int = 0
    total: int = 0
    next_cursor: str | None = None  # "queue:offset" to continue the scan from


@dataclass
class WorkerInfo:
    name: str
    state: str
    queues: list[str]
    current_job: str | None
    last_heartbeat: datetime | None


@dataclass
class ScheduledJob:
    id: str
    queue: str
    func_name: str
    run_at: datetime | None


def workers() -> list[WorkerInfo]:
    """The workers registered in Redis (a worker that died unannounced drops out when its key expires)."""
    found = []
    for worker in Worker.all(connection=redis()):
        found.append(WorkerInfo(name=worker.name, state=str(worker.get_state()), queues=worker.queue_names(),
                                current_job=worker.get_current_job_id(), last_heartbeat=_aware(worker.last_heartbeat)))
    return sorted(found, key=lambda w: w.name)


def scheduled_jobs(limit: int = SCHEDULED_SHOWN) -> list[ScheduledJob]:
    """Jobs waiting for their time, soonest first (at most `limit` per queue)."""
    found = []
    for name in QUEUES:
        registry = get_queue(name).scheduled_job_registry
        ids = registry.get_job_ids(0, limit - 1)
        for job_id, job in zip(ids, Job.fetch_many(ids, connection=redis()), strict=True):
            if job is None:
                continue
            try:
                run_at = registry.get_scheduled_time(job_id)
            except Exception:  # gone between the two reads
                run_at = None
            found.append(ScheduledJob(id=job_id, queue=name, func_name=_func_name(job), run_at=_aware(run_at)))
    return sorted(found, key=lambda s: s.run_at or datetime.max.replace(tzinfo=UTC))


def failed_total(queue: str = "") -> int:
    return sum(_registry(name).count for name in _queues(queue))


def search_failed(filters: FailedFilters, cursor: str = "", page_size: int = PAGE_SIZE,
                  max_scan: int = MAX_SCAN, now: datetime | None = None) -> FailedPage:
    """One page of failed jobs matching `filters`, newest first, scanning at most `max_scan` ids from `cursor`."""
    page = FailedPage(total=failed_total(filters.queue))
    start_queue, start_offset = _parse_cursor(cursor)
    queues = _queues(filters.queue)
    if start_queue in queues:
        queues = queues[queues.index(start_queue):]
    else:
        start_offset = 0
    cutoff = _cutoff(filters.period, now)
    for name in queues:
        offset = start_offset if name == start_queue else 0
        registry = _registry(name)
        while True:
            if len(page.jobs) >= page_size or page.scanned >= max_scan:
                page.next_cursor = f"{name}:{offset}"
                return page
            size = min(CHUNK, max_scan - page.scanned)
            ids = registry.get_job_ids(offset, offset + size - 1, desc=True)
            if not ids:
                break
            jobs = Job.fetch_many(ids, connection=redis())
            errors = _exc_strings([job for job in jobs if job is not None])
            for job in jobs:
                page.scanned += 1
                offset += 1
                if job is not None and _matches(job, errors[job.id], filters, cutoff):
                    page.jobs.append(_failed_job(job, errors[job.id], name))
                    if len(page.jobs) >= page_size:
                        break
    return page


def requeue_failed(actor: StaffUser, job_id: str, queue: str) -> bool:
    """Put one failed job back on its queue; False if it is no longer in the failed registry."""
    registry = _registry(queue)
    job = Job.fetch_many([job_id], connection=redis())[0]
    if job is None or job_id not in registry:
        return False
    registry.requeue(job)
    audit.record("job.requeued", "job", job_id, actor=actor, after={"queue": queue, "func": _func_name(job)})
    _commit()
    return True


def delete_failed(actor: StaffUser, job_id: str, queue: str) -> bool:
    """Delete one failed job (its record and its place in the registry); False if it is already gone."""
    registry = _registry(queue)
    job = Job.fetch_many([job_id], connection=redis())[0]
    if job is None:
        registry.remove(job_id)
        return False
    job.delete()
    audit.record("job.deleted", "job", job_id, actor=actor, before={"queue": queue, "func": _func_name(job)})
    _commit()
    return True


def requeue_matching(actor: StaffUser, filters: FailedFilters, now: datetime | None = None) -> int:
    """Requeue every failed job matching `filters` (up to `MAX_BULK` scanned); the number requeued."""
    done = 0
    for name, job in _all_matching(filters, now):
        try:
            _registry(name).requeue(job)
        except Exception:  # requeued or removed meanwhile
            continue
        done += 1
    audit.record("job.requeued_matching", "job", None, actor=actor, after={**filters.active(), "count": done})
    _commit()
    return done


def delete_matching(actor: StaffUser, filters: FailedFilters, now: datetime | None = None) -> int:
    """Delete every failed job matching `filters` (up to `MAX_BULK` scanned); the number deleted."""
    matching = _all_matching(filters, now)
    with redis().pipeline() as pipe:
        for _, job in matching:
            job.delete(pipeline=pipe)
        pipe.execute()
    audit.record("job.deleted_matching", "job", None, actor=actor, after={**filters.active(), "count": len(matching)})
    _commit()
    return len(matching)


def _all_matching(filters: FailedFilters, now: datetime | None) -> list[tuple[str, Job]]:
    """Collect first, then act: acting while paging by offset would skip ids."""
    cutoff = _cutoff(filters.period, now)
    found: list[tuple[str, Job]] = []
    scanned = 0
    for name in _queues(filters.queue):
        registry, offset = _registry(name), 0
        while scanned < MAX_BULK:
            ids = registry.get_job_ids(offset, offset + CHUNK - 1, desc=True)
            if not ids:
                break
            offset += len(ids)
            scanned += len(ids)
            jobs = [job for job in Job.fetch_many(ids, connection=redis()) if job is not None]
            errors = _exc_strings(jobs) if filters.error else {}
            found += [(name, job) for job in jobs if _matches(job, errors.get(job.id, ""), filters, cutoff)]
    return found


def _matches(job: Job, exc_info: str, filters: FailedFilters, cutoff: datetime | None) -> bool:
    if filters.func and filters.func.lower() not in _func_name(job).lower():
        return False
    if filters.error and filters.error.lower() not in exc_info.lower():
        return False
    if cutoff is not None:
        ended = _aware(job.ended_at)
        if ended is None or ended < cutoff:
            return False
    return True


def _failed_job(job: Job, exc_info: str, queue: str) -> FailedJob:
    lines = [line for line in exc_info.strip().splitlines() if line.strip()]
    try:
        args = ", ".join(map(repr, job.args))
    except Exception:
        args = "?"
    return FailedJob(id=job.id, queue=queue, func_name=_func_name(job), args=args[:200],
                     error=lines[-1] if lines else "", exc_info=exc_info,
                     enqueued_at=_aware(job.enqueued_at), ended_at=_aware(job.ended_at))


def _func_name(job: Job) -> str:
    try:
        return job.func_name or "?"
    except Exception:  # a job whose payload cannot be read
        return "?"


def _exc_strings(jobs: list[Job]) -> dict[str, str]:
    """Each job's latest failure text, read for the whole chunk in one round trip."""
    if not jobs:
        return {}
    with redis().pipeline(transaction=False) as pipe:
        for job in jobs:
            pipe.xrevrange(Result.get_key(job.id), "+", "-", count=1)
        responses = pipe.execute()
    found = {}
    for job, response in zip(jobs, responses, strict=True):
        text = ""
        if response:
            result_id, payload = response[0]
            try:
                result = Result.restore(job.id, result_id.decode(), payload, connection=redis())
            except Exception:  # a result that cannot be decoded: search it as empty
                result = None
            if result is not None and result.type == Result.Type.FAILED:
                text = result.exc_string or ""
        found[job.id] = text
    return found


def _registry(name: str) -> FailedJobRegistry:
    return get_queue(name).failed_job_registry


def _queues(queue: str) -> list[str]:
    return [queue] if queue in QUEUES else list(QUEUES)


def _cutoff(period: str, now: datetime | None) -> datetime | None:
    if period not in PERIODS:
        return None
    return (now or datetime.now(UTC)) - PERIODS[period]


def _parse_cursor(cursor: str) -> tuple[str, int]:
    name, _, offset = (cursor or "").partition(":")
    return (name, int(offset)) if name in QUEUES and offset.isdigit() else ("", 0)


def _aware(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _commit() -> None:
    from midas.extensions import db

    db.session.commit()
