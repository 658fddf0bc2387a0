"""What the retry path reports about each decision: one structured log line and the counters.

Called by :func:`celery_dlx.delayed_retry` (a retry or a deferral the broker confirmed, a retry
it did not) and by :func:`celery_dlx.parking.park.park`.  The log fields go in ``extra=`` (all
named ``dlx_*``), so a JSON log formatter emits them as fields, not only inside the message.
Everything here is cheap: counting is a buffered dict update (:mod:`.counters`).
"""

from __future__ import annotations

import logging
from typing import Any

from ..errors import Deferred
from .counters import DEFERRALS, PARKED, PUBLISH_FAILURES, RETRIES, recorder_for

logger = logging.getLogger("celery_dlx.decisions")

#: Reason recorded for a retry given no exception.
NO_EXCEPTION = "none"


def reason_of(exc: BaseException | None) -> str:
    """Why a task retries: the verdict kind of a classified response (``retry_soon``,
    ``rate_limited``, …), else the exception's class name."""
    if exc is None:
        return NO_EXCEPTION
    kind = getattr(getattr(exc, "verdict", None), "kind", None)
    if kind is not None:
        return str(getattr(kind, "value", kind)).lower()
    return type(exc).__name__


def retry_published(
    task: Any, exc: BaseException | None, *, attempt: int, delay: float, planned: float, queue: str
) -> None:
    """A retry or deferral of ``task``'s delivery was confirmed into the delay ladder."""
    name, request = task.name, task.request
    if isinstance(exc, Deferred):
        kind, reason = "deferral", f"{exc.deferred_by}:{exc.deferred_name}"
    else:
        kind, reason = "retry", reason_of(exc)
    logger.info(
        "%s[%s] %s (attempt %d, %s): back in %.3f s (asked %.3f s) in queue %s",
        name, request.id, kind, attempt, reason, planned, delay, queue,
        extra={
            "dlx_event": kind, "dlx_task": name, "dlx_task_id": request.id, "dlx_attempt": attempt,
            "dlx_delay": delay, "dlx_planned": planned, "dlx_reason": reason, "dlx_queue": queue,
        },
    )  # fmt: skip
    recorder = recorder_for(task.app.conf)
    if recorder is None:
        return
    if isinstance(exc, Deferred):
        recorder.add(DEFERRALS, (name, exc.deferred_by, exc.deferred_name), DEFERRALS)
    else:
        recorder.add(RETRIES, (name, reason), RETRIES)
    recorder.observe_delay(kind, planned)


def retry_failed(task: Any) -> None:
    """The broker did not confirm a retry of ``task`` (the failure itself is logged by the caller)."""
    recorder = recorder_for(task.app.conf)
    if recorder is not None:
        recorder.add(PUBLISH_FAILURES, (task.name,))


def parked(task: Any, reason: str) -> None:
    """``task``'s delivery was confirmed into the parking lot (:func:`park` logs it)."""
    recorder = recorder_for(task.app.conf)
    if recorder is not None:
        recorder.add(PARKED, (task.name, reason), PARKED)


def park_fields(task: Any, reason: str, queue: str, error: str, message: str) -> dict[str, Any]:
    """The ``extra=`` of the park log line: the same fields as a retry's, with the error."""
    request = task.request
    return {
        "dlx_event": "park", "dlx_task": task.name, "dlx_task_id": request.id, "dlx_attempt": request.retries,
        "dlx_reason": reason, "dlx_queue": queue, "dlx_error": error, "dlx_error_message": message,
    }  # fmt: skip
