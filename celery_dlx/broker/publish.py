"""Confirmed, mandatory publishing, and :func:`publish_delayed`: THE way celery_dlx publishes
a message for later (a retry, a deferral, ``celery dlx send --countdown``) or into the parking lot.

One connection per process and app, opened with publisher confirms, separate from Celery's
producer pool so the app's other publishes keep their own settings.  A message counts as sent
only once the broker has confirmed it *and* did not return it as unroutable; anything else
raises :class:`~celery_dlx.errors.PublishFailed`, so the caller can fail loudly instead of
letting the message vanish.

A delivery is published again with Celery's :meth:`~celery.Task.retry` as the message builder:
task id, root and parent ids, stamps, the retry count and every other header stay Celery's.
Only where the message goes and how it is published differ: persistent, mandatory, JSON,
confirmed.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from fractions import Fraction
from typing import Any

from celery import Celery, Task
from celery.exceptions import Reject, Retry
from kombu import Connection, Producer

from ..errors import CeleryDLXError, PublishFailed, RetryPublishError, TopologyMismatch
from ..settings import Settings
from .headers import RESERVATION_HEADER, argument_reprs, carried_headers, user_headers
from .plan import Route
from .topology import DESTINATION_HEADER, DUE_HEADER, Topology

logger = logging.getLogger(__name__)

#: Seconds a process trusts a TopologyMismatch it saw before declaring again: a drifted topology
#: fails every retry at once instead of re-running ~90 declarations (and as many broker channel
#: errors) per task, and a fixed one is picked up within this time.
MISMATCH_RECHECK = 30.0


class DelayProducer(Producer):
    """A kombu producer that never gives a message a per-message TTL.

    Celery turns a task's ``expires`` into the AMQP ``expiration`` property as well as the
    ``expires`` header.  In a delay queue that property would make RabbitMQ dead-letter the
    message when it expires, i.e. send it on *early*; in the parking lot it would delete it.
    The header stays, and the worker enforces it when the message arrives (the task is
    REVOKED, as with Celery), so dropping the property loses nothing of ``expires``.
    """

    def publish(self, body: Any, *args: Any, **kwargs: Any) -> Any:
        kwargs.pop("expiration", None)
        return super().publish(body, *args, **kwargs)  # type: ignore[no-untyped-call]  # kombu: unannotated


class RetryPublisher:
    """Hands out a confirming producer whose publishes are checked for returns.

    The topology is declared once per connection (when ``dlx_auto_declare`` is on), so a
    topology deleted at run time is re-created on the next connection instead of failing
    forever; :meth:`open` does it ahead of the first retry (:mod:`celery_dlx.broker.warm`).
    After any error the connection is dropped: a confirm stream that saw an error is not
    trusted for the next message.
    """

    def __init__(self, app: Celery, settings: Settings) -> None:
        self.app = app
        self.settings = settings
        self.topology = Topology(settings)
        self._lock = threading.RLock()
        self._connection: Connection | None = None
        self._producer: Producer | None = None
        self._bound: set[str] = set()
        self._returned: list[tuple[Any, ...]] = []
        self._mismatch: tuple[float, TopologyMismatch] | None = None
        self._probe: Any = None
        self._declared = False  # True only inside open(declared=True)

    @contextmanager
    def producer(self, destination: str) -> Iterator[Producer]:
        """A producer ready to publish into the delay topology for work queue ``destination``.

        Raises :class:`RetryPublishError` if the broker cannot be reached or returned the
        message as unroutable, :class:`TopologyMismatch` if the topology cannot be declared.
        Celery's ``Reject`` (its wrapping of a failed publish) passes through.
        """
        with self._lock:
            if self._mismatch is not None and time.monotonic() - self._mismatch[0] < MISMATCH_RECHECK:
                raise TopologyMismatch(self._mismatch[1].mismatches, self._mismatch[1].hints)
            try:
                producer = self._ready_producer(destination)
            except TopologyMismatch as mismatch:
                self._mismatch = (time.monotonic(), mismatch)
                self.close()
                raise
            except Exception as exc:
                self.close()
                raise RetryPublishError(f"could not prepare a confirmed connection to the broker: {exc!r}") from exc
            self._returned.clear()
            try:
                yield producer
            except Reject:
                self.close()
                raise
            if self._returned:
                self.close()
                raise RetryPublishError(f"the broker returned the retry as unroutable: {self._returned[0][0]!r}")

    def open(self, destinations: Iterable[str], *, declared: bool = False) -> None:
        """Open the confirmed connection and bind ``destinations`` now, so the first publish
        costs what any publish costs.  ``declared``: the worker's bootstep declared (or
        verified) the topology and these work queues already; the connection skips doing it."""
        with self._lock:
            self._declared = declared
            try:
                for destination in destinations:
                    with self.producer(destination) as producer:
                        # kombu opens the producer's channel (and its confirm mode) at the first
                        # publish: two more round trips that belong here, not in a retry.
                        _ = producer.channel
            finally:
                self._declared = False

    def _ready_producer(self, destination: str) -> Producer:
        if self._producer is None:
            connection = self.app.connection_for_write(
                transport_options={"confirm_publish": True}, heartbeat=0
            )
            connection.ensure_connection(max_retries=3, interval_start=0.2, interval_step=0.5, interval_max=2)
            self._connection = connection
            declare = self.settings.auto_declare and not self._declared
            if declare:
                # A lot declared before dlx_parking_max_* existed is logged, not fatal: see declare.
                self.topology.declare(connection, retention_drift="warn")
                self._mismatch = None
            how = "declared the topology" if declare else "the worker declared the topology" if self._declared else "no declare"
            logger.info("celery_dlx: process %d opened its retry connection (%s)", os.getpid(), how)
            self._producer = DelayProducer(connection, auto_declare=False, on_return=self._on_return)  # type: ignore[no-untyped-call]
        if destination not in self._bound:
            self._bind(destination)
        return self._producer

    def _bind(self, destination: str) -> None:
        assert self._connection is not None
        if self._declared:  # the worker's bootstep declared and bound every queue of the app
            pass
        elif self.settings.auto_declare:
            self.topology.declare_destinations(self._connection, [self.app.amqp.queues[destination]])
        else:
            with self._connection.channel() as channel:
                self.topology.bind_destination(channel, destination)
        self._bound.add(destination)

    def queue_depth(self, queue: str, destination: str) -> int:
        """Messages ready in ``queue``, by a passive declare on a channel of its own (a 404 closes
        only that one, never the confirming channel), on the connection readied for a publish to
        work queue ``destination``."""
        with self.producer(destination):
            assert self._connection is not None
            if self._probe is None or not self._probe.is_open:
                self._probe = self._connection.channel()
            try:
                return int(self._probe.queue_declare(queue, passive=True).message_count)
            except Exception:
                self._probe = None
                raise

    def _on_return(self, exc: Exception, exchange: str, routing_key: str, message: Any) -> None:
        self._returned.append((exc, exchange, routing_key))

    def close(self) -> None:
        """Drop the connection; the next publish opens a new one."""
        with self._lock:
            connection, self._connection, self._producer = self._connection, None, None
            self._probe = None
            self._bound.clear()
            if connection is not None:
                try:
                    connection.close()
                except Exception:
                    pass


_publishers: dict[int, tuple[int, RetryPublisher]] = {}
_publishers_lock = threading.Lock()


def publisher_for(app: Celery) -> RetryPublisher:
    """The process's publisher for ``app``.

    A fresh one after a fork (sockets are not shared between processes) and after the app's
    ``dlx_*`` settings changed (tests reconfigure one app per test).
    """
    pid, settings = os.getpid(), Settings.from_conf(app.conf)
    with _publishers_lock:
        entry = _publishers.get(id(app))
        if entry is None or entry[0] != pid or entry[1].settings != settings:
            if entry is not None and entry[0] == pid:
                entry[1].close()
            entry = (pid, RetryPublisher(app, settings))
            _publishers[id(app)] = entry
        return entry[1]


@dataclass(frozen=True)
class TaskMessage:
    """A new task message for :func:`publish_delayed` (``celery dlx send``)."""

    name: str
    args: Sequence[Any] = ()
    kwargs: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Published:
    """What :func:`publish_delayed` published, once the broker confirmed it."""

    #: Id of the task the message runs.
    task_id: str
    #: The delay asked for, in seconds (before the test-mode time scale).
    delay: float
    #: The route through the delay levels (after the time scale); ``None`` into the parking
    #: lot or, for a new message without delay, straight into the work queue.
    route: Route | None = None
    #: Celery's ``Retry`` for a published delivery (not raised).
    retry: Retry | None = None


def publish_delayed(
    app: Celery,
    destination: str,
    delay: float,
    *,
    delivery: Task | None = None,
    message: TaskMessage | None = None,
    parking: bool = False,
    dlx_headers: Mapping[str, Any] | None = None,
    args: Any = None,
    kwargs: Any = None,
    exc: BaseException | None = None,
    max_retries: int | None = None,
    **options: Any,
) -> Published:
    """Publish ``delivery`` (the task's current delivery, built again by Celery's retry) or a new
    ``message`` so that it reaches work queue ``destination`` after ``delay`` seconds.

    Plans the route through the delay levels (the delay is validated before anything is
    published and rounded up, never early), applies the test-mode time scale
    (``dlx_time_scale``), adds the ``dlx_queue`` and ``dlx_due`` headers, and publishes
    persistent, mandatory and confirmed on the process's :class:`RetryPublisher`.  With
    ``parking=True`` the message goes into the parking lot instead (``delay`` is ignored).  A new
    ``message`` with no delay goes straight to its queue.  ``dlx_headers`` are celery_dlx's own
    (``dlx_*``) headers to add; ``args``, ``kwargs``, ``exc``, ``max_retries`` and ``options``
    are Celery's retry arguments for a delivery (checked by the caller), ``apply_async``
    options for a message.  A delivery carrying a rate-limit reservation (``dlx_reservation``)
    is planned exactly, whatever ``dlx_precision``.

    Raises ``ValueError`` for a bad delay, :class:`~celery_dlx.errors.TopologyMismatch` when the
    topology cannot be declared, and :class:`~celery_dlx.errors.PublishFailed` (``cause`` says
    why) for every publish the broker did not confirm.
    """
    if (delivery is None) == (message is None):
        raise TypeError("publish_delayed needs exactly one of delivery and message")
    publisher = publisher_for(app)
    own: dict[str, Any] = dict(dlx_headers or {})
    route: Route | None = None
    if parking:
        # The fanout exchange ignores the key, but Celery sends a message with an empty key for a
        # direct-exchange queue to the default exchange, i.e. back to work.
        target: dict[str, Any] = {"exchange": publisher.topology.parking_exchange.name, "routing_key": destination}
    elif message is not None and delay == 0:
        target = {}
    else:
        levels, scale = publisher.settings.levels, publisher.settings.time_scale
        if delivery is not None and delivery.request.get(RESERVATION_HEADER) is not None:
            # A reserved rate-limit slot is only good for a moment: plan it exactly, since the
            # slack dlx_precision allows (up to 1/8 of the delay) would make it miss its slot.
            levels = replace(levels, precision=Fraction(0))
        route = levels.plan(delay)  # validates the delay as asked, before any time scaling
        if scale != 1:
            # Exact: 900 s at the scale written as 0.001 is 0.9 s, not 0.9000000000000001 (0.91 s).
            route = levels.plan(Fraction(delay) * Fraction(str(scale)))
        target = {"exchange": publisher.topology.entry_exchange(route).name, "routing_key": route.routing_key}
        # Due when the route delivers: the delay asked for, rounded up by the planner (dlx_precision).
        own = {DUE_HEADER: time.time() + route.delay, **own}
    try:
        if delivery is not None:
            retry = republish(
                delivery, publisher, destination=destination, dlx_headers=own, args=args, kwargs=kwargs, exc=exc,
                max_retries=max_retries, **target, **options,
            )  # fmt: skip
            return Published(str(delivery.request.id), delay, route, retry)
        assert message is not None
        return Published(_send(app, publisher, message, destination, own, target, options), delay, route)
    except PublishFailed:
        raise
    except Reject as rejected:  # Celery's retry turns every publish error into Reject(requeue=False)
        raise PublishFailed(f"not confirmed by the broker: {rejected.reason!r}", rejected.reason) from rejected.reason
    except RetryPublishError as error:
        raise PublishFailed(str(error), error) from error


def _send(
    app: Celery,
    publisher: RetryPublisher,
    message: TaskMessage,
    destination: str,
    own: Mapping[str, Any],
    target: Mapping[str, Any],
    options: Mapping[str, Any],
) -> str:
    """Send a new task message on the confirming publisher (never with Celery's ``countdown``,
    which a worker would hold); an error of the send itself is a :class:`PublishFailed`."""
    publish_options: dict[str, Any] = {
        "mandatory": True,
        "delivery_mode": 2,
        "confirm_timeout": publisher.settings.confirm_timeout,
        **options,
    }
    if target:
        publish_options.update(target, headers={DESTINATION_HEADER: destination, **own}, serializer="json")
    with publisher.producer(destination) as producer:
        try:
            result = app.send_task(
                message.name, list(message.args), dict(message.kwargs), queue=destination, producer=producer, **publish_options
            )
        except CeleryDLXError:
            raise
        except Exception as error:
            raise PublishFailed(f"the broker did not take the message: {error!r}", error) from error
    return str(result.id)


def republish(
    task: Task,
    publisher: RetryPublisher,
    *,
    exchange: str,
    routing_key: str,
    destination: str,
    dlx_headers: Mapping[str, Any],
    args: Any = None,
    kwargs: Any = None,
    exc: BaseException | None = None,
    max_retries: int | None = None,
    **options: Any,
) -> Retry:
    """Publish the current delivery of ``task`` to ``exchange`` for work queue ``destination``.

    The message carries ``retries + 1`` (wrap the call in :func:`~.headers.uncounted` to keep
    the count), the destination in the ``dlx_queue`` header and ``dlx_headers``.  ``options``
    are Celery's retry options, already checked (:mod:`celery_dlx.retry_options`); as in
    Celery, a ``headers`` option replaces the delivery's own headers.  Returns Celery's
    ``Retry`` (not raised).  Raises what the publisher raises (``RetryPublishError``,
    ``TopologyMismatch``) and Celery's ``Reject`` for a failed publish.
    """
    request = task.request
    own = options.pop("headers") if "headers" in options else request.headers
    all_headers = {
        **user_headers(own),
        **carried_headers(request),
        DESTINATION_HEADER: destination,
        **dlx_headers,
    }
    for checked in ("mandatory", "serializer"):  # always True and "json" here (retry_options)
        options.pop(checked, None)
    publish_options = {
        "delivery_mode": 2,
        "declare": [],  # the publisher declared and bound ``destination``; kombu need not check per message
        "confirm_timeout": publisher.settings.confirm_timeout,
        **argument_reprs(task, args, kwargs),
        **options,
    }
    with publisher.producer(destination) as producer:
        return Task.retry(
            task,
            args,
            kwargs,
            exc,
            False,
            None,
            0,
            max_retries,
            queue=destination,
            producer=producer,
            exchange=exchange,
            routing_key=routing_key,
            headers=all_headers,
            mandatory=True,
            serializer="json",
            **publish_options,
        )

