"""``delayed_retry`` and ``DLXTask``: Celery's ``retry`` with the waiting done by the broker.

Celery's ``self.retry(countdown=…)`` republishes the task with an ETA and the worker that
receives it holds it unacknowledged until then.  ``delayed_retry`` republishes the same Celery
message into the celery_dlx delay topology instead; the broker hands it back to the work queue
when it is due and the worker holds nothing.

Everything Celery's retry does is kept by calling it: task id, ``retries + 1``, root and parent
ids, ``max_retries`` handling, the RETRY state, signals and events.  Only where the message goes
and how it is published differ: into the delay exchange, persistent, mandatory and confirmed.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import TYPE_CHECKING, Any, NoReturn, cast

from celery import Task
from celery.exceptions import MaxRetriesExceededError, Retry
from celery.signals import task_retry
from celery.utils.time import maybe_make_aware

from .backoff import WaitStrategy, wait_seconds
from .broker.destination import retry_destination
from .broker.headers import uncounted, user_headers
from .broker.publish import publish_delayed
from .broker.requeue import requeue_if_transient
from .errors import PublishFailed, RetryPublishError
from .metrics import decisions
from .parking.park import MAX_RETRIES, park
from .retry_options import check_retry_options
from .signals import retry_published

if TYPE_CHECKING:  # billiard comes with Celery; only its type is named here
    from billiard.einfo import ExceptionInfo

__all__ = ["DLXTask", "delayed_retry"]

logger = logging.getLogger(__name__)


def delayed_retry(
    task: Task,
    args: Any = None,
    kwargs: Any = None,
    exc: BaseException | None = None,
    throw: bool = True,
    eta: datetime | None = None,
    countdown: float | None = None,
    max_retries: int | None = None,
    *,
    wait: WaitStrategy | None = None,
    queue: str | None = None,
    count_attempt: bool = True,
    **options: Any,
) -> Retry:
    """Retry ``task`` after a delay held by the broker, not by the worker.

    Same arguments as :meth:`celery.Task.retry`, plus ``wait`` (a tenacity wait strategy, used
    when neither ``eta`` nor ``countdown`` is given).  Give at most one of ``eta``, ``countdown``
    and ``wait``; with none, the task's ``retry_wait`` (a :class:`DLXTask` attribute) or
    Celery's ``default_retry_delay`` applies.  ``options`` mean what they mean to Celery:
    ``queue`` or ``exchange`` / ``routing_key`` pick the work queue the task comes back to (by
    default the one it came from), ``headers`` replace the delivery's own, ``expires`` is
    checked when the task arrives, never by cutting the delay short.  Options that would
    bypass the confirmed publish (``producer``, ``connection``, ``mandatory=False``) or the JSON
    body are refused with :class:`~celery_dlx.errors.ConfigurationError`.

    Use it like Celery's retry: ``raise delayed_retry(self, countdown=30, exc=exc)``.

    ``count_attempt=False`` re-publishes with the current ``retries`` count: a deferral (a rate
    limiter's or circuit breaker's "not yet") is not a failed attempt and must not use up
    ``max_retries``.

    Raises ``ValueError`` for a negative, NaN, infinite or too large delay, and
    :class:`~celery_dlx.errors.RetryPublishError` (or ``Reject(requeue=True)`` for
    ``acks_late`` tasks) when the broker does not confirm the retry.
    """
    request = task.request
    if not count_attempt:
        with uncounted(request):
            return delayed_retry(task, args, kwargs, exc, throw, eta, countdown, max_retries, wait=wait, queue=queue, **options)
    if sum(x is not None for x in (eta, countdown, wait)) > 1:
        raise ValueError("give at most one of eta, countdown and wait")
    in_worker = not (request.called_directly or request.is_eager)
    if not in_worker or _exhausted(task, max_retries):
        # Not in a worker, or out of retries: Celery's retry does the right thing without
        # publishing (raises exc / MaxRetriesExceededError, or re-runs eagerly).  Out of
        # retries in a worker, the message is parked first (``dlx_park``) instead of vanishing.
        if in_worker:
            park(task, exc or _exhaustion(task, max_retries), MAX_RETRIES)
        if eta is None and countdown is None and _wait_for(task, wait) is not None:
            countdown = _delay(task, None, None, wait, exc)
        if queue is not None:
            options["queue"] = queue
        return Task.retry(task, args, kwargs, exc, throw, eta, countdown, max_retries, **options)

    check_retry_options(task.name, options, task.serializer or task.app.conf.task_serializer)
    destination = retry_destination(task, queue, options.pop("exchange", None), options.pop("routing_key", None))
    delay = _delay(task, eta, countdown, wait, exc)
    try:
        sent = publish_delayed(
            task.app, destination, delay, delivery=task, args=args, kwargs=kwargs, exc=exc, max_retries=max_retries, **options
        )
    except PublishFailed as failed:
        _publish_failed(task, destination, failed.cause)
    assert sent.retry is not None and sent.route is not None
    ret = sent.retry
    ret.when = delay
    retry_published.send(
        sender=task, request=request, retries=request.retries + 1, delay=delay, planned=sent.route.delay, queue=destination, exc=exc
    )
    decisions.retry_published(
        task, exc, attempt=request.retries + 1, delay=delay, planned=float(sent.route.delay), queue=destination
    )
    if throw:
        raise ret
    return ret


def _retry_limit(task: Task, max_retries: int | None) -> int | None:
    return task.max_retries if max_retries is None else max_retries


def _exhausted(task: Task, max_retries: int | None) -> bool:
    limit = _retry_limit(task, max_retries)
    return limit is not None and task.request.retries + 1 > limit


def _exhaustion(task: Task, max_retries: int | None) -> MaxRetriesExceededError:
    """What a parked message records when the task retried without an exception."""
    return MaxRetriesExceededError(f"{task.name}: max retries ({_retry_limit(task, max_retries)}) exceeded")


def _wait_for(task: Task, wait: WaitStrategy | None) -> WaitStrategy | None:
    return wait if wait is not None else getattr(task, "retry_wait", None)


def _delay(
    task: Task,
    eta: datetime | None,
    countdown: float | None,
    wait: WaitStrategy | None,
    exc: BaseException | None,
) -> float:
    """Seconds to wait, from whichever of eta, countdown, wait or the task defaults applies."""
    if eta is not None:
        if not isinstance(eta, datetime):
            raise ValueError(f"eta must be a datetime, got {eta!r}")
        seconds: float = (maybe_make_aware(eta, task.app.timezone) - task.app.now()).total_seconds()
        return max(seconds, 0.0)  # an ETA in the past means "now", as in Celery
    if countdown is not None:
        return countdown
    strategy = _wait_for(task, wait)
    if strategy is not None:
        return wait_seconds(strategy, task.request.retries + 1, exc)
    return cast(float, task.default_retry_delay)


def _publish_failed(task: Task, destination: str, cause: BaseException | None) -> NoReturn:
    """Fail loudly: never let an unconfirmed retry look like a successful one.

    With ``acks_late`` a transient failure requeues the delivery (after a pause), so nothing is
    lost; otherwise, or for a failure that would repeat, the task fails with
    :class:`RetryPublishError` and the cause.
    """
    error = RetryPublishError(
        f"retry of {task.name}[{task.request.id}] to queue {destination!r} was not confirmed by the broker: {cause!r}"
    )
    decisions.retry_failed(task)
    requeue_if_transient(task, error, cause)
    logger.error("%s; the task fails", error)
    raise error from cause


class DLXTask(Task):
    """Task base class whose retries are held by the broker.

    ``self.retry(...)`` (and therefore ``autoretry_for``) and ``self.delayed_retry(...)`` both
    go through :func:`delayed_retry`.  Set ``retry_wait`` to a tenacity wait strategy to give
    the task a default backoff.
    """

    abstract = True
    #: Default backoff when a retry names no eta, countdown or wait.
    retry_wait: WaitStrategy | None = None

    def retry(
        self,
        args: Any = None,
        kwargs: Any = None,
        exc: BaseException | None = None,
        throw: bool = True,
        eta: datetime | None = None,
        countdown: float | None = None,
        max_retries: int | None = None,
        **options: Any,
    ) -> Retry:
        return delayed_retry(self, args, kwargs, exc, throw, eta, countdown, max_retries, **options)

    def delayed_retry(self, *args: Any, **kwargs: Any) -> Retry:
        """Same as :func:`celery_dlx.delayed_retry` with this task."""
        return delayed_retry(self, *args, **kwargs)

    def before_start(self, task_id: str, args: Any, kwargs: Any) -> None:
        """Show the task's code the headers Celery's own retry would show.

        A message that came through the delay topology also carries RabbitMQ's dead-letter
        history (``x-death``, ``x-first-death-*``) and celery_dlx's ``dlx_*`` headers; they
        are taken out of ``request.headers`` (Celery's view of the caller's headers) and stay
        readable as ``request.get(name)``, where celery_dlx reads them.
        """
        request = self.request
        if request.headers:
            request.headers = user_headers(request.headers) or None
        super().before_start(task_id, args, kwargs)

    def on_retry(self, exc: BaseException, task_id: str, args: Any, kwargs: Any, einfo: ExceptionInfo | None) -> None:
        """Mark the retry's ``einfo`` so billiard's frame-by-frame copy of the traceback is
        dropped once Celery has sent the ``task_retry`` signal.

        On Python 3.11+ that copy (``einfo.tb``) holds every traceback frame's full
        ``co_positions`` table: about 44 KB per retry, which Celery pickles in the pool process
        and unpickles in the worker's main process (the one that consumes) on every retry, and
        which otherwise waits for the cyclic garbage collector.  Nothing in Celery reads it
        after the signal: the ``task-retried`` event and the log carry ``einfo.traceback``, the
        string, which stays.  Receivers of ``task_retry`` (error trackers) still get the frames.
        """
        super().on_retry(exc, task_id, args, kwargs, einfo)
        if einfo is not None:  # Celery always passes one; direct callers may not
            einfo.dlx_drop_frames = True
            _drop_frames_after_task_retry()


#: Identifies celery_dlx's ``task_retry`` receiver, so it is connected once and kept last.
_DROP_FRAMES_UID = "celery_dlx.retry.drop_frames"


def _drop_frames(sender: Any = None, einfo: Any = None, **_: Any) -> None:
    """``task_retry`` receiver: drop the frame copy of an einfo :class:`DLXTask` marked."""
    if einfo is not None and getattr(einfo, "dlx_drop_frames", False):
        einfo.tb = None


def _drop_frames_after_task_retry() -> None:
    """Make :func:`_drop_frames` the last receiver of ``task_retry``, so every receiver
    connected before it (at import, at worker start, or later) still sees the frames."""
    receivers = task_retry.receivers
    if receivers and receivers[-1][0][0] == _DROP_FRAMES_UID:
        return
    task_retry.disconnect(_drop_frames, dispatch_uid=_DROP_FRAMES_UID)
    task_retry.connect(_drop_frames, weak=False, dispatch_uid=_DROP_FRAMES_UID)
