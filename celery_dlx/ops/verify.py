"""A read-only check of the broker against the topology the app expects (``dlx verify``).

It runs in deploy pipelines and before workers start, against production brokers, so it never
creates, changes or deletes anything: it reports.  What it expects comes from the same
:class:`~celery_dlx.broker.topology.Topology` objects that ``declare`` uses, plus the application's
work queues (each bound to ``deliver``).

Two ways to read the broker:

- The management HTTP API lists every exchange, queue and binding of the vhost, so the report is
  complete: what is missing; what is extra in celery_dlx's namespace (:meth:`Topology.owns`: an
  old ladder with another unit, levels beyond ``dlx_levels``, a ``deliver`` binding of a queue
  the app does not list); and every differing type, durability, auto-delete flag and argument.
- AMQP 0-9-1 cannot list anything.  Each expected exchange and queue gets a passive declare
  (NOT_FOUND: missing); one that exists then gets a declare with the expected properties, which
  RabbitMQ accepts without change or refuses with PRECONDITION_FAILED naming the first
  inequivalent property.  Only the arguments RabbitMQ's equivalence check covers are compared,
  bindings and extra entities not at all, and the report says so.  Race: an entity deleted
  between its two declares is re-created by the second.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from amqp.exceptions import AccessRefused, NotFound, PreconditionFailed
from kombu import Connection, Queue

from ..broker.topology import RETENTION_ARGUMENTS, Topology
from .broker_info import broker_version
from .management_api import ManagementAPI, ManagementMismatch, ManagementUnavailable
from .topology_spec import BrokerState, ExchangeSpec, Expected, QueueSpec, expected
from .verify_diff import Difference, Entity, Report, diff

__all__ = [
    "BrokerState",
    "Difference",
    "Entity",
    "ExchangeSpec",
    "Expected",
    "ManagementAPI",
    "ManagementMismatch",
    "ManagementUnavailable",
    "QueueSpec",
    "Report",
    "diff",
    "expected",
    "verify",
]

_NOT_LISTED = "bindings and extra entities not checked"


def verify(
    connection: Connection,
    topology: Topology,
    destinations: Iterable[Queue] = (),
    *,
    management_url: str | None = None,
    use_management: bool | None = None,
    timeout: float = 10.0,
    strict: bool = False,
) -> Report:
    """Compare the broker behind ``connection`` with ``topology`` and the work queues ``destinations``.

    ``use_management``: None tries the management API and falls back to AMQP (noting why);
    True requires the API (:class:`ManagementUnavailable` otherwise); False uses AMQP only.
    ``destinations`` should be every queue the app retries into (``app.amqp.queues.values()``):
    a ``deliver`` binding of any other queue is reported as foreign (as extra if ``strict``).
    An API that belongs to another broker than a connected ``connection`` is refused
    (:class:`ManagementMismatch`): its listing would show drift that is not there.
    """
    wanted = expected(topology, destinations)
    if use_management is False:
        report = _verify_over_amqp(connection, wanted, f"{_NOT_LISTED}: the management API was not used")
    else:
        api = ManagementAPI.for_connection(connection, management_url, timeout)
        try:
            if connection.connected:  # the CLI always is; an idle Connection announced nothing yet
                broker = broker_version(connection)
                api.check_same_broker(broker.cluster_name, broker.version if broker.numbers else None)
            report = diff(wanted, api.read(connection.info()["virtual_host"]), topology.owns, strict=strict)
        except ManagementUnavailable as exc:
            if use_management:
                raise
            report = _verify_over_amqp(connection, wanted, f"{_NOT_LISTED}: {exc}")
    return with_fixes(report, topology)


def with_fixes(report: Report, topology: Topology) -> Report:
    """Add the parking lot's own fix when its retention arguments differ: deleting the queue,
    the fix of every other mismatch, would throw its parked messages away."""
    lot = Entity("queue", topology.parking_queue.name)
    if any(d.entity == lot and d.what in RETENTION_ARGUMENTS for d in report.different):
        report.fixes.append(topology.parking_retention_fix())
    return report


_INEQUIVALENT = re.compile(r"inequivalent arg '(?P<what>[^']+)' for .*: received .+ but current is (?P<current>.+)$")
_VALUE = re.compile(r"(?:the value )?'(?P<text>.*?)'(?: of type '(?P<type>[^']*)')?")
_INTEGER_TYPES = {"byte", "short", "signedint", "long", "unsignedbyte", "unsignedshort", "unsignedint"}


def _reported_value(text: str, like: Any) -> Any:
    """A value from a PRECONDITION_FAILED text (``none``: absent, ``'10'``, ``the value '10' of
    type 'signedint'``), typed by the AMQP type it names, or else like the expected value."""
    match = _VALUE.fullmatch(text)
    if match is None:
        return None
    value, amqp_type = match["text"], match["type"]
    if amqp_type == "bool" or (amqp_type is None and isinstance(like, bool)):
        return {"true": True, "false": False}.get(value, value)
    if amqp_type in _INTEGER_TYPES or (amqp_type is None and isinstance(like, int)):
        return int(value) if re.fullmatch(r"-?\d+", value) else value
    return value


def _refusal(entity: Entity, wanted: Mapping[str, Any], reply: str) -> Difference:
    match = _INEQUIVALENT.search(reply)
    if match is None:
        return Difference(entity, "declaration", "accepted", reply)
    what = match["what"]
    return Difference(entity, what, wanted.get(what), _reported_value(match["current"], wanted.get(what)))


Declare = Callable[[Any, bool], object]


def _declare_exchange(spec: ExchangeSpec) -> Declare:
    return lambda channel, passive: channel.exchange_declare(
        exchange=spec.name, type=spec.type, passive=passive, durable=spec.durable,
        auto_delete=spec.auto_delete, arguments=dict(spec.arguments),
    )  # fmt: skip


def _declare_queue(spec: QueueSpec) -> Declare:
    return lambda channel, passive: channel.queue_declare(
        queue=spec.name, passive=passive, durable=spec.durable, exclusive=False,
        auto_delete=spec.auto_delete, arguments=dict(spec.arguments),
    )  # fmt: skip


class _AmqpCheck:
    """Declarations on one channel at a time: RabbitMQ closes it after each refusal."""

    def __init__(self, connection: Connection, report: Report) -> None:
        self._connection = connection
        self._channel = connection.channel()
        self._report = report
        self._may_configure = True

    def entity(self, entity: Entity, view: Mapping[str, Any], declare: Declare) -> None:
        """Passive declare first, so nothing missing is created; then let RabbitMQ compare.

        Comparing needs configure permission; without it the rest is only checked for existence.
        """
        if not self._exists(declare):
            self._report.missing.append(entity)
            return
        if not self._may_configure:
            return
        refused = self._refused(declare)
        if isinstance(refused, AccessRefused):
            self._may_configure = False
            self._report.unchecked.append(f"properties and arguments not checked over AMQP: {refused.reply_text}")
        elif refused is not None:
            self._report.different.append(_refusal(entity, view, str(refused.reply_text)))

    def _exists(self, declare: Declare) -> bool:
        try:
            declare(self._channel, True)
        except NotFound:
            self._channel = self._connection.channel()
            return False
        return True

    def _refused(self, declare: Declare) -> PreconditionFailed | AccessRefused | None:
        try:
            declare(self._channel, False)
        except (PreconditionFailed, AccessRefused) as exc:
            self._channel = self._connection.channel()
            return exc
        return None

    def close(self) -> None:
        self._channel.close()


def _verify_over_amqp(connection: Connection, wanted: Expected, note: str) -> Report:
    report = Report("amqp", checked=len(wanted.exchanges) + len(wanted.queues), unchecked=[note])
    check = _AmqpCheck(connection, report)
    try:
        for spec in wanted.exchanges:
            check.entity(Entity("exchange", spec.name), spec.view(), _declare_exchange(spec))
        for queue in wanted.queues:
            check.entity(Entity("queue", queue.name), queue.view(None), _declare_queue(queue))
    finally:
        check.close()
    return report
