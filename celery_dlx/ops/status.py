"""What is waiting in the broker, for ``celery dlx status``: messages per delay level, parked
messages, the app's work queues with their consumers, and each circuit breaker's state.

Every count is a passive ``queue.declare``: the broker answers from the queue's own counter in
constant time, however many messages it holds, and current even for quorum queues (whose
``rabbitmqctl list_queues`` figures lag).  How many delayed messages are bound for each work
queue cannot be known without consuming the delay queues (AMQP 0-9-1 has no peek), so the
report gives the work queues' own depths beside the delay levels' totals.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

from amqp.exceptions import NotFound
from celery import Celery
from kombu import Connection

from ..breaker import BreakerUnavailable
from ..breaker.tasks import breaker_for
from ..broker.topology import Topology


@dataclass(frozen=True)
class QueueStatus:
    """One queue: ready messages and consumers; ``exists`` False if the broker has no such queue."""

    name: str
    messages: int
    consumers: int
    exists: bool = True


@dataclass(frozen=True)
class LevelStatus:
    """One delay level: its queue and how long a message waits there."""

    level: int
    wait_ms: int
    queue: QueueStatus


@dataclass
class Status:
    """The report: delay levels, parking lot, work queues, breakers."""

    prefix: str
    queue_type: str
    levels: list[LevelStatus]
    parking: QueueStatus
    work_queues: list[QueueStatus]
    breakers: list[dict[str, Any]] = field(default_factory=list)
    #: Why breakers are missing from the report (no Redis configured, Redis unreachable).
    breakers_note: str = ""

    @property
    def pending(self) -> int:
        """Messages waiting in the delay levels."""
        return sum(level.queue.messages for level in self.levels)

    @property
    def missing(self) -> list[str]:
        """Queues of the topology that do not exist (``celery dlx declare`` creates them)."""
        queues = [level.queue for level in self.levels] + [self.parking]
        return [q.name for q in queues if not q.exists]

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data.update(pending=self.pending, missing=self.missing)
        return data


def queue_status(connection: Connection, name: str) -> QueueStatus:
    """Passive declare of ``name`` on a channel of its own (a 404 closes the channel)."""
    channel = connection.connection.channel()
    try:
        ok = channel.queue_declare(name, passive=True)
    except NotFound:
        return QueueStatus(name, 0, 0, exists=False)
    channel.close()
    return QueueStatus(name, int(ok.message_count), int(ok.consumer_count))


def broker_status(app: Celery, connection: Connection, topology: Topology, *, breakers: bool = True) -> Status:
    """The status of ``topology`` and of ``app``'s work queues on ``connection``."""
    connection.ensure_connection(max_retries=1)
    levels = [
        LevelStatus(k, topology.settings.levels.ttl_ms(k), queue_status(connection, q.name))
        for k, q in enumerate(topology.level_queues)
    ]
    status = Status(
        prefix=topology.prefix,
        queue_type=topology.settings.queue_type,
        levels=levels,
        parking=queue_status(connection, topology.parking_queue.name),
        work_queues=[queue_status(connection, name) for name in sorted(app.amqp.queues)],
    )
    if breakers:
        status.breakers, status.breakers_note = breaker_states(app)
    return status


def breaker_names(app: Celery) -> list[str]:
    """Every breaker the app's tasks use: each network task's network (or ``network:endpoint``),
    and every name with a policy of its own in ``dlx_breaker_policies``."""
    names: set[str] = set(app.conf.get("dlx_breaker_policies") or {})
    for task in app.tasks.values():
        network = getattr(task, "network", None)
        if not isinstance(network, str) or getattr(task, "breaker", None) is False:
            continue
        endpoint = getattr(task, "breaker_endpoint", None)
        names.add(f"{network}:{endpoint}" if endpoint else network)
    return sorted(names)


def breaker_states(app: Celery, names: Iterable[str] | None = None) -> tuple[list[dict[str, Any]], str]:
    """Each breaker's snapshot as a dict, and a note when none can be shown."""
    breaker = breaker_for(app)
    if breaker is None:
        return [], "no circuit breaker: the app has no Redis (dlx_breaker_url or a redis:// result backend)"
    wanted = breaker_names(app) if names is None else list(names)
    if not wanted:
        return [], "no network tasks registered (import the task modules, e.g. with include=)"
    try:
        return [snapshot._asdict() for snapshot in breaker.snapshot(wanted)], ""
    except BreakerUnavailable as exc:
        return [], f"circuit breakers unknown: Redis did not answer ({exc})"
