"""Re-declare the parking lot with the configured arguments without losing what it holds.

RabbitMQ cannot change a queue's arguments: a lot declared before ``dlx_parking_max_*`` existed
(or with other limits, or another ``dlx_queue_type``) must be deleted and declared again, and
deleting it throws its parked messages away.  ``celery dlx migrate-parking`` moves them aside
first, into the holding queue ``<prefix>.parking.migrating`` (same queue type, no limits):

1. move the lot's messages to the hold (the loss-free sweep of :mod:`celery_dlx.parking.lot`:
   each copy confirmed before the original is acknowledged);
2. bind the hold to the parking exchange, then unbind the lot: new parks now land in the hold,
   behind the moved messages, so the order stays oldest first;
3. move what was parked during step 1, then delete the lot only if it is empty (RabbitMQ's
   ``if-empty``: a message arriving meanwhile makes the delete fail, nothing is lost);
4. declare the lot with the configured arguments, unbound, and do 1-3 the other way round (hold
   to lot, bind the lot, unbind and delete the hold).

Between the two bindings of a step 2 (a few milliseconds) a park reaches both queues: a
duplicate, never a loss, and a park never finds no queue.  Every step can be repeated, so an
interrupted migration is finished by running the command again.  Moving restarts each
message's age (``x-message-ttl`` counts from when a message entered the queue), and a lot
holding more than ``dlx_parking_max_messages`` keeps the newest that many.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from amqp.exceptions import NotFound, PreconditionFailed
from kombu import Connection

from ..broker.topology import RETENTION_ARGUMENTS, Topology
from ..errors import CeleryDLXError
from .lot import ParkingLot, Progress

#: Times a queue is emptied and its ``if-empty`` delete tried before giving up (new parks keep
#: arriving only until the binding moved, so the second try normally succeeds).
DELETE_TRIES = 3


class MigrationError(CeleryDLXError):
    """The migration stopped; every message is in the lot or the holding queue (run it again)."""


@dataclass
class MigrationResult:
    """What one ``migrate-parking`` did."""

    migrated: bool = False
    moved_aside: int = 0
    moved_back: int = 0
    #: Messages in the lot afterwards (fewer than moved back when the new length limit dropped some).
    parked: int = 0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def holding_queue(topology: Topology) -> str:
    """Name of the queue that holds the parked messages while the lot is re-declared."""
    return f"{topology.parking_queue.name}.migrating"


def migrate_parking(connection: Connection, topology: Topology, progress: Progress | None = None) -> MigrationResult:
    """Make the parking queue the one ``topology`` declares, moving its messages loss-free.

    A lot that already matches (or is missing), with no holding queue left by an interrupted
    run, is only declared (``migrated`` False).
    """
    broker = _Broker(connection)
    lot, hold = topology.parking_queue.name, holding_queue(topology)
    arguments = topology.parking_arguments()
    result = MigrationResult()
    lot_matches, hold_exists = broker.declares(lot, arguments), broker.exists(hold)
    if lot_matches is not False and not hold_exists:  # nothing to move: declare and bind it
        broker.declare(lot, arguments)
        broker.run(lambda ch: ch.queue_bind(queue=lot, exchange=topology.parking_exchange.name, routing_key=""))
        result.parked = broker.depth(lot)
        return result
    result.migrated = True
    if lot_matches is False:
        broker.declare(hold, {k: v for k, v in arguments.items() if k not in RETENTION_ARGUMENTS})
        result.moved_aside = _transfer(broker, topology, lot, hold, progress)
    if lot_matches is not True:  # deleted above, or by an interrupted run
        broker.declare(lot, arguments)
    result.moved_back = _transfer(broker, topology, hold, lot, progress)
    result.parked = broker.depth(lot)
    return result


def _transfer(broker: _Broker, topology: Topology, source: str, target: str, progress: Progress | None) -> int:
    """Move every message of ``source`` to ``target``, hand ``target`` the parking exchange's
    binding, and delete ``source`` once empty; returns how many messages moved."""
    exchange = topology.parking_exchange.name
    move = ParkingLot(broker.connection, topology, queue=source).move_to
    moved = move(target, progress).moved
    broker.run(lambda ch: ch.queue_bind(queue=target, exchange=exchange, routing_key=""))
    broker.run(lambda ch: ch.queue_unbind(queue=source, exchange=exchange, routing_key=""))
    for _ in range(DELETE_TRIES):
        moved += move(target, progress).moved
        if broker.delete_if_empty(source):
            return moved
    raise MigrationError(
        f"{source} kept receiving messages and was not deleted; nothing is lost (they are in {source} "
        f"and {target}): run `celery dlx migrate-parking` again"
    )


class _Broker:
    """The few AMQP operations of a migration, each on a fresh channel (a refusal closes it),
    on an established ``connection`` (the CLI's, already connected)."""

    def __init__(self, connection: Connection) -> None:
        self.connection = connection

    def run(self, action: Callable[[Any], Any]) -> Any:
        channel = self.connection.connection.channel()
        try:
            return action(channel)
        finally:
            if channel.is_open:
                channel.close()

    def exists(self, queue: str) -> bool:
        try:
            self.run(lambda ch: ch.queue_declare(queue, passive=True))
        except NotFound:
            return False
        return True

    def depth(self, queue: str) -> int:
        return int(self.run(lambda ch: ch.queue_declare(queue, passive=True)).message_count)

    def declare(self, queue: str, arguments: dict[str, Any]) -> None:
        """Declare ``queue`` durable with ``arguments``, bound to nothing."""
        self.run(lambda ch: ch.queue_declare(queue, durable=True, auto_delete=False, arguments=arguments))

    def declares(self, queue: str, arguments: dict[str, Any]) -> bool | None:
        """Whether ``queue`` exists with ``arguments`` (True), with others (False), or not at all (None)."""
        if not self.exists(queue):
            return None
        try:
            self.declare(queue, arguments)
        except PreconditionFailed:
            return False
        return True

    def delete_if_empty(self, queue: str) -> bool:
        try:
            self.run(lambda ch: ch.queue_delete(queue, if_empty=True))
        except PreconditionFailed:
            return False
        return True
