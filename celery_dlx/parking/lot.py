"""Operations on the parking queue: count, browse, replay to work, purge.

Every operation that removes a message from the lot does it the loss-free way: the message is
first published where it goes (confirmed by the broker, ``mandatory`` so an unroutable one comes
back) and only then acknowledged in the lot.  Interrupted at any moment (Ctrl-C, a lost
connection, a killed process), the broker requeues every unacknowledged delivery: a message is
never lost; at worst a message whose new copy was confirmed just before the interruption is
both replayed and still parked (at-least-once, like every AMQP consumer).

A filtered operation (``task=…``, or a :class:`~.park.ParkedFilter`) moves the messages that match and republishes the others to
the end of the lot, confirmed and acknowledged the same way, so a sweep never holds thousands of
deliveries (which RabbitMQ's ``consumer_timeout`` would cut off) and needs no memory per
message.  It looks at as many messages as the lot held when it started: messages parked while
it runs, and the rotated ones, are left for the next sweep.

Publishing is pipelined: a batch of messages is published, then all its confirms are awaited at
once, then the batch is acknowledged; one round trip per batch instead of per message.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from amqp import Channel, Message
from amqp.exceptions import NotFound
from kombu import Connection

from ..broker.topology import DESTINATION_HEADER, Topology
from ..errors import CeleryDLXError
from ..ops.status import queue_status
from .park import ParkedFilter, ParkedMessage, header_text, replayed_headers

#: Deliveries published per confirm round trip.
BATCH = 1000
#: Seconds a sweep waits for the broker's confirms before giving up.
WAIT = 30.0
#: Seconds without a delivery after which a sweep takes the lot as emptied by someone else.
IDLE = 2.0

Progress = Callable[[int, int], None]


class MissingParkingQueue(CeleryDLXError):
    """The broker has no parking queue for this topology (it was never declared)."""


class ReplayError(CeleryDLXError):
    """A replay or purge stopped before the end; nothing was lost (see ``done``)."""

    def __init__(self, message: str, done: SweepResult) -> None:
        super().__init__(message)
        self.done = done


@dataclass
class SweepResult:
    """What one replay or purge did."""

    examined: int = 0
    moved: int = 0
    kept: int = 0
    #: Messages kept because they name no work queue and no ``to`` was given.
    no_destination: int = 0
    #: Messages kept because the queue they name does not exist (per queue).
    missing_queues: dict[str, int] = field(default_factory=dict)
    to_queues: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class ParkingLot:
    """The parking queue of one topology, on one broker connection (kombu's ``pyamqp``).

    ``queue`` names another queue to work on the same way (``migrate-parking``'s holding queue).
    """

    def __init__(self, connection: Connection, topology: Topology, queue: str | None = None) -> None:
        self.connection = connection
        self.topology = topology
        self.queue = queue or topology.parking_queue.name

    def _channel(self) -> Channel:
        self.connection.ensure_connection(max_retries=1)
        return self.connection.connection.channel()

    def exists(self, queue: str) -> bool:
        """Whether ``queue`` exists on the broker (a passive declare)."""
        self.connection.ensure_connection(max_retries=1)
        return queue_status(self.connection, queue).exists

    def depth(self, channel: Channel) -> int:
        """Messages in the lot, asked on ``channel``; :class:`MissingParkingQueue` if there is none."""
        try:
            return int(channel.queue_declare(self.queue, passive=True).message_count)
        except NotFound:
            raise MissingParkingQueue(f"the parking queue {self.queue!r} does not exist: run `celery dlx declare`") from None

    def count(self) -> int:
        """Messages in the lot now (a passive declare: current even for quorum queues)."""
        channel = self._channel()
        try:
            return self.depth(channel)
        finally:
            channel.close()

    def browse(self, limit: int) -> list[ParkedMessage]:
        """The first ``limit`` parked messages, left in the lot (see :meth:`browse_messages`)."""
        return [parked_message(message) for message in self.browse_messages(limit)]

    def browse_messages(self, limit: int) -> list[Message]:
        """The first ``limit`` parked messages as received, body included, left in the lot.

        AMQP 0-9-1 cannot peek: the messages are received unacknowledged and given back when
        the channel closes, so they keep their place.  They come back marked redelivered, and a
        quorum queue counts the delivery (RabbitMQ 4.x applies its ``delivery-limit`` to it).
        """
        if limit < 1:
            raise ValueError(f"limit must be at least 1, got {limit}")
        channel = self._channel()
        seen: list[Message] = []
        try:
            available = self.depth(channel)
            want = min(limit, available)
            if want == 0:
                return []
            channel.basic_qos(0, want, False)
            tag = channel.basic_consume(self.queue, callback=seen.append)
            while len(seen) < want:
                try:
                    self.connection.connection.drain_events(timeout=IDLE)
                except TimeoutError:
                    break  # someone else took messages from the lot meanwhile
            channel.basic_cancel(tag)
        finally:
            channel.close()  # every delivery goes back to the lot
        return seen[:limit]

    def replay(
        self,
        *,
        task: str | None = None,
        where: ParkedFilter | None = None,
        limit: int | None = None,
        to: str | None = None,
        reset_retries: bool = False,
        progress: Progress | None = None,
    ) -> SweepResult:
        """Send parked messages back to work: to ``to``, else the queue each came from.

        ``task`` selects messages by task name, ``where`` by any field (both: each must match);
        ``limit`` stops after that many.
        ``reset_retries`` starts each task's retry count again at 0; otherwise a replayed task
        has one more attempt before it is parked again.  Messages whose queue does not exist,
        or that name none (with no ``to``), stay parked and are counted in the result.  Raises
        ``ValueError`` if ``to`` does not exist.
        """
        if to is not None and not self.exists(to):
            raise ValueError(f"queue {to!r} does not exist on the broker")

        def target(message: Message) -> str | None:
            return to or _header(message, DESTINATION_HEADER)

        def prepare(message: Message) -> None:
            message.properties["application_headers"] = replayed_headers(
                message.properties.get("application_headers"), reset_retries=reset_retries
            )

        return _Sweep(self, _selection(task, where), limit, target, prepare, progress).run()

    def move_to(self, queue: str, progress: Progress | None = None) -> SweepResult:
        """Move every message, unchanged, to ``queue``: loss-free like a replay, without
        touching headers (``migrate-parking`` moves the lot aside and back with it)."""
        return _Sweep(self, ParkedFilter(), None, lambda message: queue, None, progress).run()

    def purge(
        self,
        *,
        task: str | None = None,
        where: ParkedFilter | None = None,
        limit: int | None = None,
        progress: Progress | None = None,
    ) -> SweepResult:
        """Delete parked messages (all, or those ``task`` and ``where`` select, at most ``limit``)."""
        selection = _selection(task, where)
        if selection.everything and limit is None:
            channel = self._channel()
            try:
                self.depth(channel)  # a clear error if the lot does not exist
                count = int(channel.queue_purge(self.queue) or 0)
            finally:
                channel.close()
            return SweepResult(examined=count, moved=count)
        return _Sweep(self, selection, limit, None, None, progress).run()


def _selection(task: str | None, where: ParkedFilter | None) -> ParkedFilter:
    """``where`` narrowed to ``task`` (a task name given both ways must agree)."""
    where = where or ParkedFilter()
    if task is None:
        return where
    if where.task is not None and where.task != task:
        raise ValueError(f"task {task!r} and filter task {where.task!r} differ")
    return ParkedFilter(task=task, reason=where.reason, queue=where.queue, task_id=where.task_id)


def parked_message(message: Message) -> ParkedMessage:
    """What a received message of the lot tells about itself (its headers, redacted)."""
    return ParkedMessage.from_headers(message.properties.get("application_headers"), message.properties.get("correlation_id"))


def _header(message: Message, name: str) -> str | None:
    """Header ``name`` of ``message`` as text, None when absent or empty."""
    return header_text((message.properties.get("application_headers") or {}).get(name)) or None


class _Sweep:
    """One pass over the lot: each examined message is moved (published to its target queue,
    or dropped when ``target`` is None) or kept (republished to the lot's end)."""

    def __init__(
        self,
        lot: ParkingLot,
        selection: ParkedFilter,
        limit: int | None,
        target: Callable[[Message], str | None] | None,
        prepare: Callable[[Message], None] | None,
        progress: Progress | None,
    ) -> None:
        if limit is not None and limit < 1:
            raise ValueError(f"limit must be at least 1, got {limit}")
        self.lot, self.selection, self.limit = lot, selection, limit
        self.target, self.prepare, self.progress = target, prepare, progress
        self.result = SweepResult()
        self.buffer: list[Message] = []
        self.sequence = 0
        self.unconfirmed: set[int] = set()
        self.failures: list[str] = []
        self.queue_exists: dict[str, bool] = {}

    def run(self) -> SweepResult:
        channel = self.lot._channel()
        try:
            total = self.lot.depth(channel)
            channel.confirm_select()
            channel.events["basic_ack"].add(self._on_ack)
            channel.events["basic_nack"].add(self._on_nack)
            channel.events["basic_return"].add(self._on_return)
            # Twice the batch: the next batch arrives while this one's confirms are awaited.
            channel.basic_qos(0, 2 * BATCH, False)
            tag = channel.basic_consume(self.lot.queue, callback=self.buffer.append)
            while self.result.examined < total and not self._limit_reached():
                if not self._fill(min(BATCH, total - self.result.examined)):
                    break  # the lot emptied under us (another consumer, a concurrent purge)
                batch = self.buffer[: min(BATCH, total - self.result.examined)]
                self._process(channel, batch)
                del self.buffer[: len(batch)]
                if self.progress:
                    self.progress(self.result.examined, total)
            channel.basic_cancel(tag)  # no more deliveries; the prefetched ones go back on close
        finally:
            if channel.is_open:
                channel.close()  # unacknowledged deliveries go back to the lot
        return self.result

    def _limit_reached(self) -> bool:
        return self.limit is not None and self.result.moved >= self.limit

    def _fill(self, want: int) -> bool:
        """Receive deliveries until ``want`` are buffered or none came for a while."""
        connection = self.lot.connection.connection
        while len(self.buffer) < want:
            try:
                connection.drain_events(timeout=IDLE)
            except TimeoutError:
                break
        return bool(self.buffer)

    def _process(self, channel: Channel, batch: list[Message]) -> None:
        """Publish what each message of ``batch`` becomes, await every confirm, then ack."""
        handled = 0
        for message in batch:
            if self._limit_reached():
                break  # the rest of the batch is still unacknowledged: it goes back on close
            self._handle(channel, message)
            handled += 1
        connection = self.lot.connection.connection
        while self.unconfirmed and not self.failures:
            connection.drain_events(timeout=WAIT)
        if self.failures:
            raise ReplayError(
                f"the broker did not accept {len(self.failures)} message(s): {self.failures[0]}; "
                "the batch stays parked",
                self.result,
            )
        if handled:
            channel.basic_ack(batch[handled - 1].delivery_tag, multiple=True)

    def _handle(self, channel: Channel, message: Message) -> None:
        self.result.examined += 1
        properties = message.properties
        if not self.selection.matches(properties.get("application_headers"), properties.get("correlation_id")):
            self._keep(channel, message)
            return
        if self.target is None:  # a purge: the acknowledgement alone drops it
            self.result.moved += 1
            return
        queue = self.target(message)
        if queue is None:
            self.result.no_destination += 1
            self._keep(channel, message)
            return
        if not self._exists(queue):
            self.result.missing_queues[queue] = self.result.missing_queues.get(queue, 0) + 1
            self._keep(channel, message)
            return
        if self.prepare:
            self.prepare(message)
        self.result.moved += 1
        self.result.to_queues[queue] = self.result.to_queues.get(queue, 0) + 1
        self._publish(channel, message, "", queue)

    def _keep(self, channel: Channel, message: Message) -> None:
        self.result.kept += 1
        self._publish(channel, message, self.lot.topology.parking_exchange.name, "")

    def _exists(self, queue: str) -> bool:
        """Whether work queue ``queue`` exists (asked once per sweep, on a channel of its own:
        a failed passive declare closes the channel it was asked on)."""
        if queue not in self.queue_exists:
            self.queue_exists[queue] = self.lot.exists(queue)
        return self.queue_exists[queue]

    def _publish(self, channel: Channel, message: Message, exchange: str, routing_key: str) -> None:
        channel.basic_publish(Message(message.body, **message.properties), exchange, routing_key, mandatory=True)
        self.sequence += 1  # the broker numbers confirms 1, 2, … per channel
        self.unconfirmed.add(self.sequence)

    def _on_ack(self, delivery_tag: int, multiple: bool) -> None:
        if multiple:
            self.unconfirmed = {tag for tag in self.unconfirmed if tag > delivery_tag}
        else:
            self.unconfirmed.discard(delivery_tag)

    def _on_nack(self, delivery_tag: int, multiple: bool) -> None:
        self.failures.append(f"publish {delivery_tag} was nacked")

    def _on_return(self, exc: Exception, exchange: str, routing_key: str, message: Message) -> None:
        self.failures.append(f"returned as unroutable from exchange {exchange!r} with key {routing_key!r}: {exc}")
