"""Work queues for "whales & spikes": per-network queues, a whale queue, a trickle queue, and
Celery routers that pick among them from data the task already has.

One queue per network keeps an outage or a throttle at one network from filling the workers
with tasks that cannot run; a *whale* queue keeps the few accounts with huge networks (hours
of paging) from starving everyone else; a *trickle* queue is drained at a fixed rate for
updates that cannot be streamed::

    from celery_dlx.queues import network_queues, route_by_network, route_by_size, trickle_limit, work_queue

    app.conf.task_queues = [
        *network_queues(["facebook", "twitter"], prefix="social.", max_priority=5),
        work_queue("social.whales"),
        work_queue("social.trickle"),
    ]
    app.conf.task_routes = [
        route_by_size("followers", 100_000, "social.whales"),  # first match wins
        route_by_network(prefix="social."),
    ]
    limiter = Limiter(storage, [trickle_limit("social.trickle", "5/second")])

Then run a worker per kind (``-Q social.whales -c 1``, ``-Q social.facebook,social.twitter``) and
call :func:`celery_dlx.ratelimit.acquire_or_retry` in the trickle tasks.  Retries come back to
the queue the task came from, so a whale stays on the whale queue through all its retries.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from kombu import Exchange, Queue

from .ratelimit import Limit, Rate

#: A Celery router: ``(name, args, kwargs, options, task=None)`` -> route options or None.
Router = Callable[..., "dict[str, Any] | None"]
QUEUE_TYPES = ("classic", "quorum")


def work_queue(name: str, *, max_priority: int | None = None, queue_type: str = "classic") -> Queue:
    """A durable work queue on a direct exchange of the same name, as Celery declares by default.

    ``max_priority`` (1-255) makes a priority queue: tasks sent with ``priority=`` jump ahead
    (RabbitMQ's priority queues are classic only; quorum queues refuse the argument).
    """
    if not name or not isinstance(name, str):
        raise ValueError(f"a queue name must be a non-empty string, got {name!r}")
    if queue_type not in QUEUE_TYPES:
        raise ValueError(f"queue_type must be one of {QUEUE_TYPES}, got {queue_type!r}")
    arguments: dict[str, Any] = {}
    if max_priority is not None:
        if isinstance(max_priority, bool) or not isinstance(max_priority, int) or not 1 <= max_priority <= 255:
            raise ValueError(f"max_priority must be an integer from 1 to 255, got {max_priority!r}")
        if queue_type == "quorum":
            raise ValueError(f"queue {name}: RabbitMQ quorum queues have no x-max-priority; use a classic queue")
        arguments["x-max-priority"] = max_priority
    if queue_type == "quorum":
        arguments["x-queue-type"] = "quorum"
    return Queue(name, Exchange(name, type="direct"), routing_key=name, queue_arguments=arguments or None)


def network_queues(
    networks: Iterable[str], *, prefix: str = "", max_priority: int | None = None, queue_type: str = "classic"
) -> list[Queue]:
    """One :func:`work_queue` per network, named ``prefix + network``."""
    names = [f"{prefix}{network}" for network in networks]
    if len(set(names)) != len(names):
        raise ValueError(f"network names repeat: {sorted(networks)}")
    return [work_queue(name, max_priority=max_priority, queue_type=queue_type) for name in names]


def route_by_network(prefix: str = "") -> Router:
    """Router sending a task whose class names a ``network`` (the network Task base classes do)
    to queue ``prefix + network``; other tasks are left to the next router."""

    def route(name: str, args: Any, kwargs: Any, options: Any, task: Any = None, **_: Any) -> dict[str, Any] | None:
        network = getattr(task, "network", None)
        if not isinstance(network, str) or not network:
            return None
        return {"queue": f"{prefix}{network}"}

    return route


def route_by_size(
    field: str | Callable[[Sequence[Any], Mapping[str, Any]], Any],
    threshold: float,
    queue: str,
    *,
    tasks: Iterable[str] | None = None,
) -> Router:
    """Router sending a task to ``queue`` (the whale queue) when its size reaches ``threshold``.

    ``field`` names the keyword argument holding the size (``"followers"``), or is a function
    ``(args, kwargs) -> size`` for sizes found elsewhere.  A call without a size (missing,
    ``None`` or not a number) is left to the next router: an unknown account is not a whale.
    ``tasks`` limits the router to those task names.
    """
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)):
        raise ValueError(f"threshold must be a number, got {threshold!r}")
    names = frozenset(tasks) if tasks is not None else None
    size_of = field if callable(field) else (lambda args, kwargs: kwargs.get(field))

    def route(name: str, args: Any, kwargs: Any, options: Any, task: Any = None, **_: Any) -> dict[str, Any] | None:
        if names is not None and name not in names:
            return None
        size = size_of(tuple(args or ()), dict(kwargs or {}))
        if isinstance(size, bool) or not isinstance(size, (int, float)) or size < threshold:
            return None
        return {"queue": queue}

    return route


def trickle_limit(queue: str, rate: Rate | str) -> Limit:
    """The rate limit that makes ``queue`` a trickle queue: every task that came from it and
    asks the limiter (:func:`~celery_dlx.ratelimit.acquire_or_retry`) shares ``rate``,
    however many workers consume it."""
    name = "trickle." + "".join(c if c.isalnum() or c in "_.-" else "_" for c in queue)
    return Limit(name[:100], rate, by=("queue",), where={"queue": queue})
