"""Job failures land in the error log: a decorator for job functions, an RQ exception handler, an in-process runner.

A job names its category with `@captured(ErrorCategory.PAYMENT)`; an undecorated job gets one from the
words in its dotted name ("…notifications.send_notification" → NOTIFICATION), else SYSTEM. Each failure is
recorded once however many of these layers see it, and is re-raised so RQ's retries still happen.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from contextlib import nullcontext
from typing import Any

from rq import get_current_job

from midas.models import ErrorCategory, Severity

log = logging.getLogger(__name__)
KEYWORDS = (
    ("notification", ErrorCategory.NOTIFICATION), ("outbox", ErrorCategory.NOTIFICATION),
    ("reminder", ErrorCategory.NOTIFICATION), ("webhook", ErrorCategory.WEBHOOK), ("ipn", ErrorCategory.WEBHOOK),
    ("payment", ErrorCategory.PAYMENT), ("refund", ErrorCategory.PAYMENT), ("reconcil", ErrorCategory.PAYMENT),
    ("dispute", ErrorCategory.PAYMENT), ("stripe", ErrorCategory.PAYMENT), ("paypal", ErrorCategory.PAYMENT),
    ("booking", ErrorCategory.BOOKING), ("hold", ErrorCategory.BOOKING),
)


def captured(category: str, alerts: bool = True) -> Callable:
    """Mark a job's error category; failures are recorded, then re-raised.

    `alerts=False` for the error log's own jobs: their failures are recorded but never alert (no loops).
    """

    def decorator(func: Callable) -> Callable:
        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with _quiet(wrapper):
                try:
                    return func(*args, **kwargs)
                except Exception as exc:
                    if get_current_job() is None:  # on a worker, rq_exception_handler records it (knows retries)
                        record_job_failure(wrapper, exc, _job_name(func), args)
                    raise

        wrapper.error_category, wrapper.alerts = str(category), alerts
        return wrapper

    return decorator


def run_captured(func: Callable, *args: Any) -> Any:
    """Run a job in this process (the embedded default); a failure is recorded, then re-raised."""
    with _quiet(func):
        try:
            return func(*args)
        except Exception as exc:
            record_job_failure(func, exc, _job_name(func), args)
            raise


def rq_exception_handler(job, exc_type, exc_value, traceback) -> bool:
    """RQ calls this in the worker when a job raises; a retry still to come is MEDIUM, the last failure HIGH."""
    try:
        func = job.func
    except Exception:  # the job cannot even be loaded: still worth a record
        func = None
    severity = Severity.MEDIUM if job.retries_left else Severity.HIGH
    with _quiet(func):
        record_job_failure(func, exc_value, job.func_name, job.args, severity, job_id=job.id, queue=job.origin)
    return True  # on to RQ's own handling (the failed-job registry)


def record_job_failure(func: Callable | None, exc: BaseException, name: str, args: tuple | list,
                       severity: str = Severity.HIGH, **context: Any) -> None:
    """Record once (an exception seen by several layers is stored by the first); never raises."""
    from midas.services.error_capture import capture_exception

    try:
        category = getattr(func, "error_category", None) or category_for(f"{name} {' '.join(map(str, args))}")
        capture_exception(exc, category, severity, context={"job": name, "args": list(args)[:10], **context})
    except Exception:
        log.exception("could not record the failure of job %s", name)


def category_for(job_name: str) -> str:
    """The error category a job's dotted name (and arguments) suggest; SYSTEM when none does."""
    lowered = job_name.lower()
    return next((str(category) for word, category in KEYWORDS if word in lowered), ErrorCategory.SYSTEM.value)


def _quiet(func: Callable | None):
    from midas.services.alerts import alerts_suppressed

    return alerts_suppressed() if getattr(func, "alerts", True) is False else nullcontext()


def _job_name(func: Callable) -> str:
    return f"{getattr(func, '__module__', '?')}.{getattr(func, '__qualname__', repr(func))}"
