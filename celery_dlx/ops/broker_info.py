"""Which broker a connection reached, and the known issues that apply to this deployment on it
(:mod:`celery_dlx.broker.caveats`), for ``declare``, ``verify`` and ``status``."""

from __future__ import annotations

from collections.abc import Iterable

from kombu import Connection, Queue

from ..broker.caveats import BrokerVersion, caveats
from ..broker.topology import Topology
from .topology_spec import expected


def broker_version(connection: Connection) -> BrokerVersion:
    """From the AMQP server properties of ``connection`` (connecting if it has not yet)."""
    return BrokerVersion.from_server_properties(connection.connection.server_properties or {})


def deployment_caveats(connection: Connection, topology: Topology, queues: Iterable[Queue]) -> tuple[BrokerVersion, list[str]]:
    """The broker, and the known issues that apply to ``topology`` and the work ``queues`` on it."""
    broker = broker_version(connection)
    queues = list(queues)
    names = {queue.name for queue in queues}
    work = {spec.name: dict(spec.arguments) for spec in expected(topology, queues).queues if spec.name in names}
    return broker, caveats(broker, topology.settings.queue_type, work, topology.parking_exchange.name)


def broker_lines(connection: Connection, topology: Topology, queues: Iterable[Queue]) -> list[str]:
    """``broker: RabbitMQ 4.0.5, cluster …`` and a ``! known issue:`` line per caveat."""
    broker, found = deployment_caveats(connection, topology, queues)
    return [f"broker: {broker}", *(f"! known issue: {text}" for text in found)]
