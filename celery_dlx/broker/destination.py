"""Which work queue a retry comes back to.

The delay topology's last hop names one work *queue* (the ``dlx_queue`` header), never an
exchange and routing key, so whatever a caller says about where the retry goes — Celery's
``queue``, ``exchange`` and ``routing_key`` options, or nothing — is turned into one queue name
here, the way the broker would have routed it.  Where the broker would have put the message into
several of the app's queues, or none, the caller is told to name the queue instead of the retry
going somewhere else silently.
"""

from __future__ import annotations

from typing import Any

from celery import Task
from kombu import Exchange, Queue

from ..errors import ConfigurationError
from .topology import DESTINATION_HEADER


def origin_queue(task: Task) -> str:
    """The work queue the current delivery of ``task`` came from.

    Celery does not record the queue of a delivery, so it is found from, in order: the
    celery_dlx header of a message that already came through the delay topology; the routing
    key of a message sent to the default exchange; the one declared queue bound to the
    delivery's exchange and routing key; the queue the task's routes pick.
    """
    request = task.request
    header = request.get(DESTINATION_HEADER)
    if isinstance(header, str) and header:
        return header
    info = request.delivery_info or {}
    exchange, routing_key = info.get("exchange"), info.get("routing_key")
    if exchange == "" and routing_key:
        return str(routing_key)
    matches = bound_queues(task, exchange, routing_key)
    if len(matches) == 1:
        return matches[0]
    route = task.app.amqp.router.route({}, task.name, request.args, request.kwargs, task)
    return str(route["queue"].name)


def retry_destination(task: Task, queue: Any = None, exchange: Any = None, routing_key: Any = None) -> str:
    """The work queue a retry goes back to, from Celery's ``queue`` / ``exchange`` /
    ``routing_key`` retry options (each may be absent).

    As in Celery, ``queue`` wins; an ``exchange`` or ``routing_key`` given alone is completed
    from the current delivery.  Raises :class:`ConfigurationError` when the exchange and key
    match none or several of the app's queues.
    """
    if queue is not None:
        return queue.name if isinstance(queue, Queue) else str(queue)
    if exchange is None and routing_key is None:
        return origin_queue(task)
    info = task.request.delivery_info or {}
    exchange_name = _exchange_name(exchange if exchange is not None else info.get("exchange"))
    key = routing_key if routing_key is not None else info.get("routing_key")
    if exchange_name == "" and key:
        return str(key)
    matches = bound_queues(task, exchange_name, key)
    if len(matches) != 1:
        raise ConfigurationError(
            f"retry(exchange={exchange_name!r}, routing_key={key!r}) routes to {len(matches)} of the app's "
            f"queues {sorted(matches)}; celery_dlx brings a retry back to exactly one work queue: pass queue= instead"
        )
    return matches[0]


def bound_queues(task: Task, exchange: Any, routing_key: Any) -> list[str]:
    """Names of the app's declared queues that ``exchange`` routes ``routing_key`` to."""
    name = _exchange_name(exchange)
    found = []
    for queue_name, queue in task.app.amqp.queues.items():
        ex = queue.exchange
        if ex is not None and ex.name == name and key_matches(ex.type or "direct", queue.routing_key, routing_key):
            found.append(queue_name)
    return found


def key_matches(exchange_type: str, binding_key: str | None, routing_key: Any) -> bool:
    """Whether a binding with ``binding_key`` on an exchange of ``exchange_type`` takes a
    message published with ``routing_key``, as RabbitMQ decides it (headers exchanges are
    matched on headers, which a retry option does not name: never)."""
    if exchange_type == "fanout":
        return True
    if exchange_type == "topic":
        return _topic_matches((binding_key or "").split("."), str(routing_key or "").split("."))
    if exchange_type == "direct":
        return (binding_key or "") == str(routing_key or "")
    return False


def _topic_matches(pattern: list[str], words: list[str]) -> bool:
    """AMQP topic matching: ``*`` is exactly one word, ``#`` zero or more."""
    if not pattern:
        return not words
    head, rest = pattern[0], pattern[1:]
    if head == "#":
        return any(_topic_matches(rest, words[i:]) for i in range(len(words) + 1))
    return bool(words) and head in ("*", words[0]) and _topic_matches(rest, words[1:])


def _exchange_name(exchange: Any) -> str | None:
    if isinstance(exchange, Exchange):
        return str(exchange.name)
    return None if exchange is None else str(exchange)
