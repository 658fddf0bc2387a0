"""The topology the app expects and the one a broker has, as plain data to compare.

:func:`expected` turns the topology's graph (:meth:`~celery_dlx.broker.topology.Topology.graph`,
the same one ``declare`` uses) and the app's work queues into specs; :class:`BrokerState` parses
what the management API lists.  :mod:`.verify_diff` compares the two.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from kombu import Exchange, Queue
from kombu.transport.base import to_rabbitmq_queue_arguments

from ..broker.topology import Binding, Topology

QUEUE_TYPE_ARG = "x-queue-type"


def canonical(value: Any) -> str:
    """One spelling per value, as RabbitMQ compares them: an int equals a long, True is not 1."""
    return json.dumps(value, sort_keys=True, default=str)


def _queue_type(name: str | None) -> str | None:
    """``quorum`` for ``quorum`` and for the module name ``rabbit_quorum_queue`` some places use."""
    return name and name.removeprefix("rabbit_").removesuffix("_queue")


@dataclass(frozen=True)
class ExchangeSpec:
    name: str
    type: str
    durable: bool
    auto_delete: bool
    arguments: Mapping[str, Any] = field(default_factory=dict)

    def view(self) -> dict[str, Any]:
        """Every compared property and argument, in one mapping."""
        return {"type": self.type, "durable": self.durable, "auto_delete": self.auto_delete, **self.arguments}


@dataclass(frozen=True)
class QueueSpec:
    name: str
    durable: bool
    auto_delete: bool
    arguments: Mapping[str, Any] = field(default_factory=dict)

    def view(self, default_type: str | None) -> dict[str, Any]:
        """Every compared property and argument, with the queue type as ``x-queue-type``.

        A queue declared without ``x-queue-type`` gets the vhost's default type, and RabbitMQ
        treats a redeclaration without it as equivalent; 3.13+ lists the argument for every
        queue.  So absent means ``default_type`` on both sides.
        """
        arguments = dict(self.arguments)
        queue_type = _queue_type(arguments.pop(QUEUE_TYPE_ARG, None)) or default_type
        return {"durable": self.durable, "auto_delete": self.auto_delete, QUEUE_TYPE_ARG: queue_type, **arguments}


@dataclass(frozen=True)
class BindingSpec:
    source: str
    destination_type: str  # "queue" or "exchange"
    destination: str
    routing_key: str
    arguments: Mapping[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> tuple[str, str, str, str, str]:
        """Identity of a binding: RabbitMQ keeps one per source, destination, key and arguments."""
        return (self.source, self.destination_type, self.destination, self.routing_key, canonical(self.arguments))

    @property
    def name(self) -> str:
        arguments = f" arguments {dict(sorted(self.arguments.items()))}" if self.arguments else ""
        return f"{self.source} -> {self.destination_type} {self.destination} key {self.routing_key!r}{arguments}"


@dataclass(frozen=True)
class Expected:
    """The entities and bindings the app expects, as plain data."""

    exchanges: tuple[ExchangeSpec, ...]
    queues: tuple[QueueSpec, ...]
    bindings: tuple[BindingSpec, ...]


def expected(topology: Topology, destinations: Iterable[Queue] = ()) -> Expected:
    """What ``topology.declare(connection, destinations)`` makes for celery_dlx: its graph
    (:meth:`~celery_dlx.broker.topology.Topology.graph`) as plain data.

    The work queues' own exchanges and bindings are Celery's business and left out.
    """
    own, work = topology.graph(), topology.destination_graph(destinations)
    own_queues = [node for node in own if isinstance(node, Queue)]
    return Expected(
        exchanges=tuple(_exchange_spec(node) for node in own if isinstance(node, Exchange)),
        queues=tuple(map(_queue_spec, [*own_queues, *(node for node in work if isinstance(node, Queue))])),
        bindings=(
            *map(_queue_binding, own_queues),
            *(_binding_spec(node) for node in [*own, *work] if isinstance(node, Binding)),
        ),
    )


def _binding_spec(binding: Binding) -> BindingSpec:
    return BindingSpec(binding.source, binding.destination_type, binding.destination, binding.routing_key, binding.arguments)


def _exchange_spec(exchange: Exchange) -> ExchangeSpec:
    arguments = exchange.arguments or {}
    return ExchangeSpec(exchange.name, exchange.type, bool(exchange.durable), bool(exchange.auto_delete), arguments)


def _queue_spec(queue: Queue) -> QueueSpec:
    """The queue as kombu declares it: ``message_ttl`` and friends become ``x-`` arguments."""
    arguments = to_rabbitmq_queue_arguments(
        queue.queue_arguments or {},
        expires=queue.expires,
        message_ttl=queue.message_ttl,
        max_length=queue.max_length,
        max_length_bytes=queue.max_length_bytes,
        max_priority=queue.max_priority,
    )
    return QueueSpec(queue.name, bool(queue.durable), bool(queue.auto_delete), arguments)


def _queue_binding(queue: Queue) -> BindingSpec:
    return BindingSpec(queue.exchange.name, "queue", queue.name, queue.routing_key or "", queue.binding_arguments or {})


@dataclass(frozen=True)
class BrokerState:
    """One vhost as the management API lists it."""

    exchanges: Mapping[str, ExchangeSpec]
    queues: Mapping[str, QueueSpec]
    bindings: tuple[BindingSpec, ...]
    default_queue_type: str

    @classmethod
    def from_api(
        cls, exchanges: Sequence[Mapping[str, Any]], queues: Sequence[Mapping[str, Any]],
        bindings: Sequence[Mapping[str, Any]], vhost: Mapping[str, Any],
    ) -> BrokerState:  # fmt: skip
        """Parse ``/api/exchanges``, ``/api/queues``, ``/api/bindings`` and ``/api/vhosts`` answers.

        Bindings of the default exchange (every queue has one, implicitly) are left out.
        """
        return cls(
            exchanges={e["name"]: _listed_exchange(e) for e in exchanges},
            queues={q["name"]: _listed_queue(q) for q in queues},
            bindings=tuple(_listed_binding(b) for b in bindings if b["source"]),
            default_queue_type=_default_queue_type(vhost),
        )


def _default_queue_type(vhost: Mapping[str, Any]) -> str:
    """The type a queue declared without ``x-queue-type`` gets in ``vhost``.

    3.10-3.12 list ``"undefined"`` for a vhost without one (classic); 4.x list the effective
    default, the node-wide one included.
    """
    listed = vhost.get("default_queue_type")
    return "classic" if listed in (None, "", "undefined") else str(_queue_type(listed))


def _listed_exchange(item: Mapping[str, Any]) -> ExchangeSpec:
    return ExchangeSpec(item["name"], item["type"], item["durable"], item["auto_delete"], item.get("arguments") or {})


def _listed_queue(item: Mapping[str, Any]) -> QueueSpec:
    """The listed ``type`` is the real queue type, whatever the arguments say (or omit)."""
    arguments = dict(item.get("arguments") or {})
    arguments[QUEUE_TYPE_ARG] = item.get("type") or arguments.get(QUEUE_TYPE_ARG) or "classic"
    return QueueSpec(item["name"], item["durable"], item["auto_delete"], arguments)


def _listed_binding(item: Mapping[str, Any]) -> BindingSpec:
    arguments = item.get("arguments") or {}
    return BindingSpec(item["source"], item["destination_type"], item["destination"], item["routing_key"], arguments)
