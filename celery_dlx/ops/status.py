"""What is waiting in the broker, for ``celery dlx status``: messages per delay level, parked
messages, the app's work queues with their consumers, and each circuit breaker's state.

Every count is a passive ``queue.declare``: the broker answers from the queue's own counter in
constant time, however many messages it holds, and current even for quorum queues (whose
``rabbitmqctl list_queues`` figures lag).  How many delayed messages are bound for each work
queue cannot be known without consuming the delay queues (AMQP 0-9-1 has no peek), so the
report gives the work queues' own depths beside the delay levels' totals.

The parking lot is shown against its limits (``dlx_parking_max_*``).  Its oldest message's age
is not: AMQP cannot peek, and receiving the head to read its ``dlx_parked_at`` would mark it
redelivered (a quorum queue counts that toward its ``delivery-limit``); ``dlx_parking_max_age``
bounds it anyway.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
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


@dataclass(frozen=True)
class ParkingStatus(QueueStatus):
    """The parking queue and its retention limits (None: no limit), as configured."""

    max_messages: int | None = None
    max_age: float | None = None

    @property
    def full(self) -> bool:
        """Whether the next park drops the oldest message."""
        return self.exists and self.max_messages is not None and self.messages >= self.max_messages


@dataclass
class Status:
    """The report: delay levels, parking lot, work queues, breakers."""

    prefix: str
    queue_type: str
    levels: list[LevelStatus]
    parking: ParkingStatus
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
        data["parking"]["full"] = self.parking.full
        return data

    def lines(self, all_levels: bool = False) -> Iterator[str]:
        """The report as ``celery dlx status`` prints it (empty levels only with ``all_levels``)."""
        yield f"celery_dlx {self.prefix} ({self.queue_type} delay queues)"
        yield f"  delayed: {self.pending} message(s)"
        for level in self.levels:
            queue = level.queue
            if all_levels or queue.messages or not queue.exists:
                state = f"{queue.messages:>10}" if queue.exists else "   MISSING"
                yield f"    L{level.level:02d} wait {duration(level.wait_ms / 1000):>10}  {state}  {queue.name}"
        yield self._parking_line()
        yield "  work queues:"
        for queue in self.work_queues:
            state = f"{queue.messages:>10} ready, {queue.consumers} consumer(s)" if queue.exists else "   MISSING"
            yield f"    {queue.name}: {state}"
        yield "  circuit breakers:" + ("" if self.breakers else f" {self.breakers_note}")
        for snap in self.breakers:
            extra = ""
            if snap["mode"] != "closed":
                probe = snap["probe_at"]
                extra = f", next probe in {duration(max(0.0, probe - snap['at']))}" if probe else ""
                extra += f", {snap['waiting']} waiting"
            yield f"    {snap['name']}: {snap['mode']} ({snap['failures']} recent failure(s){extra})"
        if self.missing:
            yield f"  {len(self.missing)} queue(s) missing: run `celery dlx declare`"

    def _parking_line(self) -> str:
        """``parked: 12 / 100000 max (0 %), max age 30 d  (p.parking, 0 consumer(s))``."""
        lot = self.parking
        if not lot.exists:
            return f"  parked: MISSING  ({lot.name})"
        if lot.max_messages is None:
            fullness = f"{lot.messages} (no count limit)"
        else:
            fullness = f"{lot.messages} / {lot.max_messages} max ({100 * lot.messages // lot.max_messages} %)"
            fullness += ", FULL: each new park drops the oldest" if lot.full else ""
        age = "no age limit" if lot.max_age is None else f"max age {duration(lot.max_age)}"
        return f"  parked: {fullness}, {age}  ({lot.name}, {lot.consumers} consumer(s))"


def duration(seconds: float) -> str:
    """``seconds`` in the largest unit that fits: ``30 d``, ``1.5 h``, ``320 ms``."""
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60), ("s", 1)):
        if seconds >= size:
            return f"{seconds / size:.4g} {unit}"
    return f"{seconds * 1000:.4g} ms"


def queue_status(connection: Connection, name: str) -> QueueStatus:
    """Passive declare of ``name`` on a channel of its own (a 404 closes the channel)."""
    channel = connection.connection.channel()
    try:
        ok = channel.queue_declare(name, passive=True)
    except NotFound:
        return QueueStatus(name, 0, 0, exists=False)
    channel.close()
    return QueueStatus(name, int(ok.message_count), int(ok.consumer_count))


class _Declarer:
    """Passive declares on one channel (a 404 closes it: the next declare opens another), so a
    report of ~30 queues costs ~30 round trips, not ~90 (each a channel open, declare, close)."""

    def __init__(self, connection: Connection) -> None:
        self.connection = connection
        self.channel: Any = None

    def __call__(self, name: str) -> QueueStatus:
        if self.channel is None:
            self.channel = self.connection.connection.channel()
        try:
            ok = self.channel.queue_declare(name, passive=True)
        except NotFound:
            self.channel = None
            return QueueStatus(name, 0, 0, exists=False)
        return QueueStatus(name, int(ok.message_count), int(ok.consumer_count))

    def close(self) -> None:
        if self.channel is not None:
            self.channel.close()


def broker_status(app: Celery, connection: Connection, topology: Topology, *, breakers: bool = True) -> Status:
    """The status of ``topology`` and of ``app``'s work queues on ``connection``."""
    connection.ensure_connection(max_retries=1)
    declare = _Declarer(connection)
    levels = [
        LevelStatus(k, topology.settings.levels.ttl_ms(k), declare(q.name)) for k, q in enumerate(topology.level_queues)
    ]
    status = Status(
        prefix=topology.prefix,
        queue_type=topology.settings.queue_type,
        levels=levels,
        parking=ParkingStatus(
            **asdict(declare(topology.parking_queue.name)),
            max_messages=topology.settings.parking_max_messages,
            max_age=topology.settings.parking_max_age,
        ),
        work_queues=[declare(name) for name in sorted(app.amqp.queues)],
    )
    declare.close()
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
