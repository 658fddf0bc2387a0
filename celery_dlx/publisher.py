"""Confirmed, mandatory publishing of delayed retries.

One connection per process and app, opened with publisher confirms, separate from Celery's
producer pool so the app's other publishes keep their own settings.  A retry counts as sent
only once the broker has confirmed it *and* did not return it as unroutable; anything else
raises, so the caller can fail loudly instead of letting the message vanish.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from celery import Celery
from celery.exceptions import Reject
from kombu import Connection, Producer

from .errors import RetryPublishError, TopologyMismatch
from .settings import Settings
from .topology import Topology

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
        return super().publish(body, *args, **kwargs)


class RetryPublisher:
    """Hands out a confirming producer whose publishes are checked for returns.

    The topology is declared once per connection (when ``dlx_auto_declare`` is on), so a
    topology deleted at run time is re-created on the next connection instead of failing
    forever.  After any error the connection is dropped: a confirm stream that saw an error is
    not trusted for the next message.
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

    def _ready_producer(self, destination: str) -> Producer:
        if self._producer is None:
            connection = self.app.connection_for_write(
                transport_options={"confirm_publish": True}, heartbeat=0
            )
            connection.ensure_connection(max_retries=3, interval_start=0.2, interval_step=0.5, interval_max=2)
            self._connection = connection
            if self.settings.auto_declare:
                # A lot declared before dlx_parking_max_* existed is logged, not fatal: see declare.
                self.topology.declare(connection, retention_drift="warn")
                self._mismatch = None
            self._producer = DelayProducer(connection, auto_declare=False, on_return=self._on_return)
        if destination not in self._bound:
            self._bind(destination)
        return self._producer

    def _bind(self, destination: str) -> None:
        assert self._connection is not None
        if self.settings.auto_declare:
            self.topology.declare_destinations(self._connection, [self.app.amqp.queues[destination]])
        else:
            with self._connection.channel() as channel:
                self.topology.bind_destination(channel, destination)
        self._bound.add(destination)

    def queue_depth(self, queue: str, destination: str) -> int:
        """Messages ready in ``queue``, by a passive declare on this publisher's connection.

        ``destination`` is the work queue a publish is being prepared for (the connection is
        readied, and the topology declared, as for that publish).  The declare goes on a
        channel of its own, kept for the next call: a missing queue (404) closes only that
        channel, never the confirming one, and the next call opens a fresh one.
        """
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
                except Exception:  # noqa: BLE001, S110 - the connection is being thrown away anyway
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
