"""Soft time limits that retry through the broker, and the time left before them.

Two of Celery's gotchas meet here.  A soft time limit does not retry the task: the task just
fails with ``SoftTimeLimitExceeded``.  :class:`SoftLimitRetry` turns that exception into a
:func:`~celery_dlx.delayed_retry`, so a call that ran out of time is tried again later (with
the task's ``retry_wait``, ``default_retry_delay`` and ``max_retries``) while the worker holds
nothing.  And an open socket can outlive the soft limit; :func:`remaining_soft_time` tells an
HTTP client (``celery_dlx.softlimit.http_session.TimedSession``) how long it may still wait.

The clock starts when the worker starts the task (Celery's ``task_prerun`` signal, connected by
:func:`start_clock` when a :class:`SoftLimitRetry` task is bound to its app, a
``TimedSession`` is made or ``celery_dlx.ops.bootstep.install(app)`` runs — never at import);
a call outside a worker counts from the call.
"""

from __future__ import annotations

import logging
import time
from typing import Any, cast

from celery import Task
from celery.exceptions import SoftTimeLimitExceeded
from celery.signals import task_prerun

from ..compat import RequestKeptOnCall
from ..retry import DLXTask, delayed_retry

logger = logging.getLogger(__name__)

#: Attribute of ``task.request`` holding ``time.monotonic()`` at the start of the execution.
STARTED_ATTR = "dlx_started"


class SoftLimitReached(SoftTimeLimitExceeded):
    """The soft time limit was reached at a socket: a wait bounded by the time left before the
    limit timed out (or no time was left to start one).  It is a ``SoftTimeLimitExceeded``, so
    code that handles the soft limit handles this too."""


def _note_start(task: Task | None = None, **_: Any) -> None:
    if task is not None:
        setattr(task.request, STARTED_ATTR, time.monotonic())


def start_clock() -> None:
    """Note when each task starts (``task_prerun``), for :func:`remaining_soft_time`.
    Idempotent: the receiver is connected once per process."""
    task_prerun.connect(_note_start, weak=False, dispatch_uid="celery_dlx.softlimit.start_clock")


def soft_time_limit(task: Task) -> float | None:
    """The soft time limit of the current execution of ``task`` in seconds, if any: the one the
    message carries, else the task's (which Celery fills from ``task_soft_time_limit``)."""
    timelimit = task.request.timelimit or (None, None)
    limit = timelimit[1] or task.soft_time_limit
    return float(limit) if limit else None


def remaining_soft_time(task: Task) -> float | None:
    """Seconds left before the soft time limit of the current execution (negative once past
    it), or ``None`` when the task has no soft limit."""
    limit = soft_time_limit(task)
    if limit is None:
        return None
    started = task.request.get(STARTED_ATTR)
    return limit if started is None else limit - (time.monotonic() - started)


class SoftLimitRetry(RequestKeptOnCall):
    """Mixin for a Celery ``Task`` class: ``SoftTimeLimitExceeded`` becomes a delayed retry.

    Put it first in the bases so it also covers what other mixins do around the task body:
    ``class MyTask(SoftLimitRetry, DLXTask)`` (that is :class:`SoftLimitTask`).  Set
    ``retry_on_soft_time_limit = False`` on a task to let the soft limit fail it as in Celery.
    Keep the hard ``time_limit`` a few seconds above the soft one so the retry can be published.
    """

    #: Turn the soft time limit into a retry (the setting this mixin adds).
    retry_on_soft_time_limit: bool = True

    @classmethod
    def bind(cls, app: Any) -> Any:
        start_clock()
        return super().bind(app)  # type: ignore[misc]

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return super().__call__(*args, **kwargs)  # type: ignore[misc]
        except SoftTimeLimitExceeded as exc:
            if not self.retry_on_soft_time_limit:
                raise
            task = cast(Task, self)
            logger.warning("%s[%s] reached its soft time limit; retrying later", task.name, task.request.id)
            raise delayed_retry(task, exc=exc) from exc


class SoftLimitTask(SoftLimitRetry, DLXTask):
    """A :class:`~celery_dlx.DLXTask` whose soft time limit retries through the broker."""

    abstract = True
