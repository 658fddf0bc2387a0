"""The broker entities behind delayed retries, as kombu objects, and their declaration.

Layout for ``prefix`` ``p``, unit ``u`` and levels ``0..N-1`` (see :mod:`celery_dlx.broker.plan`)::

    publish (key "1.0.1") -> exchange p.delay.<u>ms.L02 (topic; the route's highest level)
        "*.*.1.#" -> queue p.delay.<u>ms.L02 (TTL u*4) --expires--> exchange p.delay.<u>ms.L01
        "*.*.0.#" -> exchange p.delay.<u>ms.L01
    exchange p.delay.<u>ms.L01: "*.1.#" -> its queue, "*.0.#" -> exchange ...L00
    exchange p.delay.<u>ms.L00: "1.#" -> its queue, "0.#" -> exchange p.deliver
    p.deliver (headers, alternate-exchange p.parking) --dlx_queue=<name>--> work queue <name>
    p.parking (fanout) --> queue p.parking (x-max-length + drop-head, x-message-ttl: the retention)

Every level exchange also has ``p.parking`` as its alternate exchange, so a message whose key is
no route (a foreign message put into a delay queue by name) is parked, not dropped.

:meth:`Topology.graph` is the one description of all of it, in declaration order: ``declare``,
``delete``, ``dlx verify`` (:mod:`celery_dlx.ops.verify`) and ``dlx status`` read it.

The unit is part of the level names: changing it builds a new ladder next to the old one, which
drains into the same ``deliver`` exchange, instead of mixing TTLs under one name.
The last hop names the destination *queue* in the ``dlx_queue`` header, so it never depends on
routing-key suffix matches; a message whose queue has no binding goes to the parking queue
through the alternate exchange instead of being dropped.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from amqp.exceptions import PreconditionFailed
from kombu import Connection, Exchange, Queue

from ..errors import TopologyMismatch
from ..settings import Settings
from .plan import Route

#: Message header naming the work queue a delayed message goes back to.
DESTINATION_HEADER = "dlx_queue"
#: Message header with the due time (UNIX seconds) of a delayed message.
DUE_HEADER = "dlx_due"
#: Queue arguments that carry the parking lot's retention (``dlx_parking_max_*``).
RETENTION_ARGUMENTS = ("x-max-length", "x-overflow", "x-message-ttl")
_RETENTION_REFUSAL = re.compile(r"inequivalent arg '(?:x-max-length|x-overflow|x-message-ttl)'")

logger = logging.getLogger(__name__)


def destination_binding_arguments(queue_name: str) -> dict[str, str]:
    """Arguments of the ``deliver`` -> ``queue_name`` headers binding.

    The header name has no ``x-`` prefix: RabbitMQ's headers exchange ignores ``x-`` headers
    when matching with ``x-match: all``.
    """
    return {"x-match": "all", DESTINATION_HEADER: queue_name}


@dataclass(frozen=True)
class Binding:
    """A binding of the graph besides a queue's own (kombu declares that one with the queue):
    level exchange -> the exchange below, and ``deliver`` -> a work queue."""

    source: str
    destination_type: str  # "exchange" or "queue"
    destination: str
    routing_key: str
    arguments: Mapping[str, Any] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return f"binding {self.source} -> {self.destination}"

    def declare(self, channel: Any) -> None:
        if self.destination_type == "exchange":
            channel.exchange_bind(destination=self.destination, source=self.source, routing_key=self.routing_key)
        else:
            channel.queue_bind(
                queue=self.destination, exchange=self.source, routing_key=self.routing_key, arguments=dict(self.arguments)
            )


#: One node of the topology graph: an exchange, a queue (with its own binding), or a binding.
Node = Exchange | Queue | Binding


@dataclass(frozen=True)
class Topology:
    """Every exchange, queue and binding celery_dlx needs, derived from :class:`Settings`."""

    settings: Settings

    @property
    def prefix(self) -> str:
        return self.settings.prefix

    def level_exchange(self, level: int) -> Exchange:
        """Topic exchange that decides, for ``level``, whether a message waits or passes on."""
        self.settings.levels.ttl_ms(level)
        # A key that is no route (a foreign message dead-lettered from a delay queue with the
        # queue's name as its key) matches neither binding: park it instead of dropping it.
        return Exchange(
            self._level_name(level),
            type="topic",
            durable=True,
            auto_delete=False,
            arguments={"alternate-exchange": self.parking_exchange.name},
        )

    def _level_name(self, level: int) -> str:
        return f"{self.prefix}.delay.{self.settings.levels.unit_ms}ms.L{level:02d}"

    def entry_exchange(self, route: Route) -> Exchange:
        """Where a message on ``route`` is published: its highest level, or ``deliver`` for no delay."""
        return self.deliver_exchange if route.top is None else self.level_exchange(route.top)

    def next_exchange(self, level: int) -> Exchange:
        """Where ``level`` sends what leaves it: the level below, or ``deliver`` after level 0."""
        return self.level_exchange(level - 1) if level > 0 else self.deliver_exchange

    def level_queue_arguments(self, level: int) -> dict[str, Any]:
        args: dict[str, Any] = {
            "x-message-ttl": self.settings.levels.ttl_ms(level),
            "x-dead-letter-exchange": self.next_exchange(level).name,
        }
        return {**args, **self._queue_type_arguments(dead_letters=True)}

    def level_queue(self, level: int) -> Queue:
        """The TTL queue of ``level``; a message waits here ``unit_ms * 2**level`` ms."""
        return Queue(
            self._level_name(level),
            exchange=self.level_exchange(level),
            routing_key=self.settings.levels.wait_pattern(level),
            queue_arguments=self.level_queue_arguments(level),
            durable=True,
            auto_delete=False,
        )

    @property
    def level_queues(self) -> list[Queue]:
        return [self.level_queue(k) for k in range(self.settings.levels.levels)]

    @property
    def parking_exchange(self) -> Exchange:
        return Exchange(f"{self.prefix}.parking", type="fanout", durable=True, auto_delete=False)

    @property
    def parking_queue(self) -> Queue:
        """Where parked messages are kept, up to the retention limits (see :meth:`parking_arguments`)."""
        return Queue(
            f"{self.prefix}.parking",
            exchange=self.parking_exchange,
            routing_key="",
            queue_arguments=self.parking_arguments() or None,
            durable=True,
            auto_delete=False,
        )

    def parking_arguments(self) -> dict[str, Any]:
        """The parking queue's arguments: its type, and the retention of ``dlx_parking_max_*``.

        ``x-overflow: drop-head`` makes a full lot drop its oldest message, keeping the newest
        failures (the ones an operator is about to look at); ``reject-publish`` would instead
        refuse the new park, and the task would fail unparked.  Both limits work alike on
        classic and quorum queues from RabbitMQ 3.10 on (quorum queues gained message TTL in
        3.10); unacknowledged deliveries (a replay in progress) do not count toward the length.
        A limit that is off adds no argument, so "keep everything" declares the lot exactly as
        celery_dlx did before retention existed.
        """
        args = self._queue_type_arguments(dead_letters=False)
        if self.settings.parking_max_messages is not None:
            args.update({"x-max-length": self.settings.parking_max_messages, "x-overflow": "drop-head"})
        if self.settings.parking_max_age_ms is not None:
            args["x-message-ttl"] = self.settings.parking_max_age_ms
        return args

    def parking_retention_fix(self) -> str:
        """What to do about a parking queue the broker has with other retention arguments.

        Deleting it, the generic fix of a mismatch, would throw away every parked message.
        """
        limits = (
            f"dlx_parking_max_messages={self.settings.parking_max_messages!r}, "
            f"dlx_parking_max_age={self.settings.parking_max_age!r}"
        )
        return (
            f"the parking queue {self.parking_queue.name} was declared with other retention limits than "
            f"{limits} (or before they existed). Do not delete it: it holds parked messages. Run "
            "`celery -A <app> dlx migrate-parking`, which moves them, loss-free, into the lot re-declared with "
            "these limits; or set dlx_parking_max_messages / dlx_parking_max_age to what the queue has "
            "(None for a limit it lacks)."
        )

    @property
    def deliver_exchange(self) -> Exchange:
        """Headers exchange of the final hop; unmatched messages go to the parking exchange."""
        return Exchange(
            f"{self.prefix}.deliver",
            type="headers",
            durable=True,
            auto_delete=False,
            arguments={"alternate-exchange": self.parking_exchange.name},
        )

    def _queue_type_arguments(self, dead_letters: bool) -> dict[str, Any]:
        if self.settings.queue_type != "quorum":
            return {}
        args: dict[str, Any] = {"x-queue-type": "quorum"}
        if dead_letters:
            # At-least-once dead-lettering needs reject-publish overflow (RabbitMQ >= 3.10).
            args.update({"x-dead-letter-strategy": "at-least-once", "x-overflow": "reject-publish"})
        return args

    def graph(self) -> list[Node]:
        """celery_dlx's own exchanges, queues and bindings, in declaration order: the parking lot,
        ``deliver``, then each level's exchange, TTL queue and pass binding to the level below."""
        nodes: list[Node] = [self.parking_exchange, self.parking_queue, self.deliver_exchange]
        for level in range(self.settings.levels.levels):
            exchange, below = self.level_exchange(level), self.next_exchange(level)
            pattern = self.settings.levels.pass_pattern(level)
            nodes += [exchange, self.level_queue(level), Binding(exchange.name, "exchange", below.name, pattern)]
        return nodes

    def destination_graph(self, destinations: Iterable[Queue]) -> list[Node]:
        """The work queues ``destinations`` (once each) and their ``deliver`` bindings."""
        nodes: list[Node] = []
        for queue in {queue.name: queue for queue in destinations}.values():
            nodes += [queue, self.destination_binding(queue.name)]
        return nodes

    def destination_binding(self, queue_name: str) -> Binding:
        """``deliver`` -> work queue ``queue_name``, matched on the ``dlx_queue`` header."""
        return Binding(self.deliver_exchange.name, "queue", queue_name, "", destination_binding_arguments(queue_name))

    def declare(self, connection: Connection, destinations: Iterable[Queue] = (), *, retention_drift: str = "raise") -> None:
        """Declare the whole topology and bind ``destinations`` (work queues) to ``deliver``.

        Idempotent.  Every entity is tried; the ones the broker already has with other
        arguments are reported together in one :class:`TopologyMismatch`.

        ``retention_drift="warn"`` logs, instead of raising, a parking queue that differs only
        in its retention (a lot declared before ``dlx_parking_max_*`` existed): parking into it
        still works, under its old limits.  Workers declare this way, so upgrading celery_dlx
        does not turn every retry into a mismatch; ``celery dlx declare`` and ``verify`` keep
        reporting it, with :meth:`parking_retention_fix`, until the lot is migrated.
        """
        lot = f"queue {self.parking_queue.name}"
        declarer = _Declarer(connection)
        declarer.declare_all([*self.graph(), *self.destination_graph(destinations)])
        if retention_drift == "warn" and declarer.take(lot, _RETENTION_REFUSAL.search):
            logger.warning("celery_dlx: %s; parking goes on into the existing lot meanwhile", self.parking_retention_fix())
        retention = any(entity == lot and _RETENTION_REFUSAL.search(reply) for entity, reply in declarer.mismatches)
        declarer.finish([self.parking_retention_fix()] if retention else [])

    def declare_destinations(self, connection: Connection, destinations: Iterable[Queue]) -> None:
        """Declare work queues and bind them to ``deliver`` (the rest of the topology exists)."""
        _declare(connection, self.destination_graph(destinations))

    def delete(self, connection: Connection) -> None:
        """Delete every entity of this topology, messages included (tests, demos, teardown).

        Work queues are the application's and stay; entities already gone are skipped.
        """
        nodes = self.graph()
        with connection.channel() as channel:
            for queue in (node for node in nodes if isinstance(node, Queue)):
                channel.queue_delete(queue.name)
            for exchange in (node for node in nodes if isinstance(node, Exchange)):
                channel.exchange_delete(exchange.name)

    def owns(self, name: str) -> bool:
        """Whether an exchange or queue called ``name`` is in this prefix's celery_dlx namespace.

        That is every ladder (any unit, any level), ``deliver`` and ``parking``, but not the
        application's work queues, even when they share the prefix: ``dlx verify`` reports what it
        finds here and does not expect (an old ladder, levels beyond ``dlx_levels``) as extra.
        """
        return name.startswith(f"{self.prefix}.delay.") or name in (self.deliver_exchange.name, self.parking_exchange.name)

    def bind_destination(self, channel: Any, queue_name: str) -> None:
        """Bind work queue ``queue_name`` to ``deliver`` so delayed messages for it arrive."""
        self.destination_binding(queue_name).declare(channel)


def _declare(connection: Connection, nodes: Iterable[Node]) -> None:
    declarer = _Declarer(connection)
    declarer.declare_all(nodes)
    declarer.finish()


class _Declarer:
    """Runs declarations on a channel, collecting PRECONDITION_FAILED answers.

    RabbitMQ closes the channel on a failed precondition, so a fresh one is opened afterwards.
    """

    def __init__(self, connection: Connection) -> None:
        self._connection = connection
        self._channel = connection.channel()
        self.mismatches: list[tuple[str, str]] = []

    def run(self, entity: str, action: Callable[..., object]) -> None:
        try:
            action(self._channel)
        except PreconditionFailed as exc:
            self.mismatches.append((entity, str(exc.reply_text)))
            self._channel = self._connection.channel()

    def declare_all(self, nodes: Iterable[Node]) -> None:
        """Declare every exchange, queue and binding of ``nodes``, in order."""
        for node in nodes:
            if isinstance(node, Binding):
                self.run(node.label, node.declare)
            else:
                kind = "exchange" if isinstance(node, Exchange) else "queue"
                self.run(f"{kind} {node.name}", lambda ch, entity=node: entity.declare(channel=ch))

    def take(self, entity: str, matches: Callable[[str], object]) -> bool:
        """Drop the mismatches of ``entity`` whose reply ``matches``; whether there were any."""
        kept = [(e, reply) for e, reply in self.mismatches if e != entity or not matches(reply)]
        taken, self.mismatches = len(kept) < len(self.mismatches), kept
        return taken

    def finish(self, hints: list[str] | None = None) -> None:
        self._channel.close()
        if self.mismatches:
            raise TopologyMismatch(self.mismatches, hints)
