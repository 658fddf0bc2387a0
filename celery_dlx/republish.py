"""Publish the current delivery of a task again, as Celery's own retry builds it, into an
exchange of celery_dlx (a delay level, or the parking lot).

Celery's :meth:`~celery.Task.retry` is used as the message builder: task id, root and parent
ids, stamps, the retry count and every other header stay Celery's.  Only where the message goes
and how it is published differ: persistent, mandatory, JSON, confirmed by the broker on the
process's :class:`~celery_dlx.publisher.RetryPublisher` connection.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from amqp.exceptions import AMQPError, MessageNacked
from celery import Task
from celery.exceptions import Reject, Retry
from kombu.exceptions import OperationalError

from .compat import repr_of_arguments
from .errors import RetryPublishError
from .publisher import RetryPublisher
from .redact import redact
from .topology import DESTINATION_HEADER

logger = logging.getLogger(__name__)

#: Dead-letter history RabbitMQ adds; carrying it into a new publish makes RabbitMQ < 4.0.1 see
#: a cycle and drop the message (celery#9867), so a republished message never passes it on.
X_DEATH_HEADERS = frozenset(
    {
        "x-death",
        "x-first-death-exchange",
        "x-first-death-queue",
        "x-first-death-reason",
        "x-last-death-exchange",
        "x-last-death-queue",
        "x-last-death-reason",
    }
)

#: Publish failures that may pass (broker down, refused or unconfirmed message, topology being
#: re-created): worth requeueing the delivery for.  Anything else (a message that cannot be
#: serialized, a bad option) would fail again on every redelivery.
TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    OperationalError,
    AMQPError,
    MessageNacked,
    OSError,
    RetryPublishError,
)

#: Pause before requeueing a delivery whose message could not be published, so a broker that
#: keeps refusing does not turn into a hot redelivery loop.
REQUEUE_PAUSE = 1.0


#: Prefix of every header celery_dlx adds to a message (``dlx_queue``, ``dlx_due``, the parking
#: lot's ``dlx_parked_*``, ``dlx_replays``): celery_dlx's own, not the task's.
OWN_HEADER_PREFIX = "dlx_"
#: How many times ``celery dlx replay`` sent the message back to work; kept across retries.
REPLAYS_HEADER = "dlx_replays"


def republish(
    task: Task,
    publisher: RetryPublisher,
    *,
    exchange: str,
    routing_key: str,
    destination: str,
    dlx_headers: Mapping[str, Any],
    args: Any = None,
    kwargs: Any = None,
    exc: BaseException | None = None,
    max_retries: int | None = None,
    **options: Any,
) -> Retry:
    """Publish the current delivery of ``task`` to ``exchange`` for work queue ``destination``.

    The message carries ``retries + 1`` (wrap the call in :func:`uncounted` to keep the
    count), the destination in the ``dlx_queue`` header and ``dlx_headers``.  ``options`` are
    Celery's retry options, already checked (:mod:`celery_dlx.retry_options`); as in Celery, a
    ``headers`` option replaces the delivery's own headers.  Returns Celery's ``Retry`` (not
    raised).  Raises what the publisher raises (``RetryPublishError``, ``TopologyMismatch``)
    and Celery's ``Reject`` for a failed publish.
    """
    request = task.request
    own = options.pop("headers") if "headers" in options else request.headers
    all_headers = {
        **user_headers(own),
        **carried_headers(request),
        DESTINATION_HEADER: destination,
        **dlx_headers,
    }
    for checked in ("mandatory", "serializer"):  # always True and "json" here (retry_options)
        options.pop(checked, None)
    publish_options = {
        "delivery_mode": 2,
        "declare": [],  # the publisher declared and bound ``destination``; kombu need not check per message
        "confirm_timeout": publisher.settings.confirm_timeout,
        **argument_reprs(task, args, kwargs),
        **options,
    }
    with publisher.producer(destination) as producer:
        return Task.retry(
            task,
            args,
            kwargs,
            exc,
            False,
            None,
            0,
            max_retries,
            queue=destination,
            producer=producer,
            exchange=exchange,
            routing_key=routing_key,
            headers=all_headers,
            mandatory=True,
            serializer="json",
            **publish_options,
        )


@contextmanager
def uncounted(request: Any) -> Iterator[None]:
    """Celery's retry publishes ``request.retries + 1``; lower the count for this call only.

    Not when called directly or eagerly: there Celery re-runs the task at once and only the
    count stops a deferral that keeps repeating.
    """
    if request.called_directly or request.is_eager:
        yield
        return
    request.retries -= 1
    try:
        yield
    finally:
        request.retries += 1


def argument_reprs(task: Task, args: Any, kwargs: Any) -> dict[str, str]:
    """``argsrepr``/``kwargsrepr`` headers of the republished message, redacted.

    Celery recomputes them from the arguments on every publish, which would put back a secret
    the caller hid (``apply_async(kwargsrepr=…)``) or passed as an argument; keep the delivery's
    own while the arguments are unchanged.
    """
    request = task.request
    amqp = task.app.amqp
    argsrepr = request.get("argsrepr") if args is None else None
    kwargsrepr = request.get("kwargsrepr") if kwargs is None else None
    if argsrepr is None:
        argsrepr = repr_of_arguments(task.app, args if args is not None else request.args, amqp.argsrepr_maxsize)
    if kwargsrepr is None:
        kwargsrepr = repr_of_arguments(task.app, kwargs if kwargs is not None else request.kwargs, amqp.kwargsrepr_maxsize)
    return {"argsrepr": redact(str(argsrepr)), "kwargsrepr": redact(str(kwargsrepr))}


def without_death(headers: Mapping[str, Any] | None) -> dict[str, Any]:
    """``headers`` without RabbitMQ's dead-letter history."""
    return {k: v for k, v in (headers or {}).items() if k not in X_DEATH_HEADERS}


def user_headers(headers: Mapping[str, Any] | None) -> dict[str, Any]:
    """``headers`` as the task's code gave them: without RabbitMQ's dead-letter history and
    without celery_dlx's own ``dlx_*`` headers, which the next publish sets anew."""
    return {k: v for k, v in without_death(headers).items() if not (isinstance(k, str) and k.startswith(OWN_HEADER_PREFIX))}


def carried_headers(request: Any) -> dict[str, Any]:
    """celery_dlx's headers that a message keeps from one delivery to the next (the replay
    count), read from the request, where they stay visible after :func:`user_headers` hid
    them from ``request.headers``."""
    replays = request.get(REPLAYS_HEADER)
    return {} if replays is None else {REPLAYS_HEADER: replays}


def requeue_if_transient(task: Task, error: BaseException, cause: BaseException | None) -> None:
    """For an ``acks_late`` task whose publish failed for a reason that may pass, give the
    delivery back to the broker (``Reject(requeue=True)`` after :data:`REQUEUE_PAUSE`) so
    nothing is lost; otherwise return and let the caller fail."""
    if task.acks_late and isinstance(cause, TRANSIENT_ERRORS):
        logger.error("%s; the delivery is requeued", error)
        time.sleep(REQUEUE_PAUSE)
        raise Reject(error, requeue=True) from cause
