"""The headers of a message celery_dlx publishes again: without RabbitMQ's dead-letter
history (``x-death``, which makes RabbitMQ < 4.0.1 drop a second pass through the same delay
queue), without celery_dlx's own ``dlx_*`` headers of the last pass (set anew), with the
replay count carried and the argument reprs kept redacted; and :func:`uncounted`, which keeps
a deferral from counting as an attempt.  The publish itself is :mod:`celery_dlx.broker.publish`.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from celery import Task

from ..compat import repr_of_arguments
from ..redact import redact

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

#: Prefix of every header celery_dlx adds to a message (``dlx_queue``, ``dlx_due``, the parking
#: lot's ``dlx_parked_*``, ``dlx_replays``): celery_dlx's own, not the task's.
OWN_HEADER_PREFIX = "dlx_"
#: How many times ``celery dlx replay`` sent the message back to work; kept across retries.
REPLAYS_HEADER = "dlx_replays"
#: How many times a network task retried the message with a refreshed token; kept across
#: retries, so a token the API keeps calling expired cannot loop through refreshes forever.
TOKEN_REFRESHES_HEADER = "dlx_token_refreshes"
#: The rate-limit slot a deferred message was given (``"<slot_us>:<made_us>"``, see
#: :func:`celery_dlx.ratelimit.acquire_or_retry`); set on the request only for the deferral's
#: publish, which it makes exact (:func:`~.publish.publish_delayed`), and read on arrival.
RESERVATION_HEADER = "dlx_reservation"
#: celery_dlx's headers that stay with a message from one delivery to the next.
CARRIED_HEADERS = (REPLAYS_HEADER, TOKEN_REFRESHES_HEADER, RESERVATION_HEADER)


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
    and token-refresh counts, a rate-limit reservation being deferred), read from the request, where they stay visible after
    :func:`user_headers` hid them from ``request.headers``."""
    return {name: value for name in CARRIED_HEADERS if (value := request.get(name)) is not None}
