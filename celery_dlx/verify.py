"""A read-only check of the broker against the topology the app expects (``dlx verify``).

It runs in deploy pipelines and before workers start, against production brokers, so it never
creates, changes or deletes anything: it reports.  What it expects comes from the same
:class:`~celery_dlx.topology.Topology` objects that ``declare`` uses, plus the application's
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

import base64
import json
import re
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import quote, unquote, urlsplit, urlunsplit

from amqp.exceptions import AccessRefused, NotFound, PreconditionFailed
from kombu import Connection, Exchange, Queue
from kombu.transport.base import to_rabbitmq_queue_arguments

from .errors import CeleryDLXError
from .topology import RETENTION_ARGUMENTS, Topology, destination_binding_arguments

QUEUE_TYPE_ARG = "x-queue-type"
#: Management API ports RabbitMQ listens on by default, without and with TLS.
MANAGEMENT_PORTS = {False: 15672, True: 15671}
_NOT_LISTED = "bindings and extra entities not checked"


class ManagementUnavailable(CeleryDLXError):
    """The management HTTP API could not be read: not reachable, refused the login, or failed."""


def _canonical(value: Any) -> str:
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
        return (self.source, self.destination_type, self.destination, self.routing_key, _canonical(self.arguments))

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
    """What ``topology.declare(connection, destinations)`` makes for celery_dlx.

    The work queues' own exchanges and bindings are Celery's business and left out.
    """
    levels = topology.settings.levels
    deliver = topology.deliver_exchange
    work = list({queue.name: queue for queue in destinations}.values())
    own_exchanges = [topology.parking_exchange, deliver, *map(topology.level_exchange, range(levels.levels))]
    own_queues = [topology.parking_queue, *topology.level_queues]
    passes = [
        BindingSpec(topology.level_exchange(k).name, "exchange", topology.next_exchange(k).name, levels.pass_pattern(k))
        for k in range(levels.levels)
    ]
    deliveries = [BindingSpec(deliver.name, "queue", q.name, "", destination_binding_arguments(q.name)) for q in work]
    return Expected(
        exchanges=tuple(map(_exchange_spec, own_exchanges)),
        queues=tuple(map(_queue_spec, [*own_queues, *work])),
        bindings=(*map(_queue_binding, own_queues), *passes, *deliveries),
    )


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


@dataclass(frozen=True, order=True)
class Entity:
    kind: str  # "exchange", "queue" or "binding"
    name: str

    def __str__(self) -> str:
        return f"{self.kind} {self.name}"


@dataclass(frozen=True)
class Difference:
    """A property or argument of an existing entity with another value than expected (None: absent)."""

    entity: Entity
    what: str
    expected: Any
    actual: Any


def _show(value: Any) -> str:
    return "absent" if value is None else repr(value)


@dataclass
class Report:
    """The diff between the expected topology and the broker."""

    method: str  # "management" or "amqp"
    checked: int
    missing: list[Entity] = field(default_factory=list)
    extra: list[Entity] = field(default_factory=list)
    different: list[Difference] = field(default_factory=list)
    unchecked: list[str] = field(default_factory=list)
    #: How to fix findings whose generic fix (delete and re-declare) would lose messages.
    fixes: list[str] = field(default_factory=list)

    @property
    def drift(self) -> bool:
        return bool(self.missing or self.extra or self.different)

    def lines(self) -> list[str]:
        """A readable diff, one line per finding, notes on what was not checked, and a summary."""
        return [
            *(f"- missing {entity}" for entity in self.missing),
            *(f"+ extra {entity}" for entity in self.extra),
            *(f"~ {d.entity}: {d.what} expected {_show(d.expected)}, found {_show(d.actual)}" for d in self.different),
            *(f"? {note}" for note in self.unchecked),
            *(f"! fix: {fix}" for fix in self.fixes),
            self._summary(),
        ]

    def _summary(self) -> str:
        if self.method == "management":
            checked = f"{self.checked} expected exchanges, queues and bindings (management API)"
        else:
            checked = f"{self.checked} expected exchanges and queues (AMQP)"
        if not self.drift:
            caveat = "; parts not checked, see the ? lines" if self.unchecked else ""
            return f"no drift: {checked} match{caveat}"
        return f"drift: {len(self.missing)} missing, {len(self.extra)} extra, {len(self.different)} different; {checked}"

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form, for ``--json``."""
        return {
            "method": self.method,
            "drift": self.drift,
            "checked": self.checked,
            "missing": [{"kind": e.kind, "name": e.name} for e in self.missing],
            "extra": [{"kind": e.kind, "name": e.name} for e in self.extra],
            "different": [
                {"kind": d.entity.kind, "name": d.entity.name, "what": d.what, "expected": d.expected, "actual": d.actual}
                for d in self.different
            ],
            "unchecked": list(self.unchecked),
            "fixes": list(self.fixes),
        }


Spec = TypeVar("Spec", ExchangeSpec, QueueSpec)


def diff(wanted: Expected, state: BrokerState, owns: Callable[[str], bool]) -> Report:
    """Compare ``wanted`` with a management API listing; ``owns`` says which names may be extra."""
    report = Report("management", checked=len(wanted.exchanges) + len(wanted.queues) + len(wanted.bindings))
    _compare("exchange", wanted.exchanges, state.exchanges, ExchangeSpec.view, owns, report)
    _compare("queue", wanted.queues, state.queues, lambda q: q.view(state.default_queue_type), owns, report)
    wanted_keys = {b.key for b in wanted.bindings}
    found_keys = {b.key for b in state.bindings}
    report.missing += [Entity("binding", b.name) for b in wanted.bindings if b.key not in found_keys]
    report.extra += sorted(
        Entity("binding", b.name)
        for b in state.bindings
        if (owns(b.source) or owns(b.destination)) and b.key not in wanted_keys
    )
    return report


def _compare(
    kind: str, wanted: Sequence[Spec], found: Mapping[str, Spec], view: Callable[[Spec], dict[str, Any]],
    owns: Callable[[str], bool], report: Report,
) -> None:  # fmt: skip
    for spec in wanted:
        actual = found.get(spec.name)
        if actual is None:
            report.missing.append(Entity(kind, spec.name))
        else:
            report.different += _differences(Entity(kind, spec.name), view(spec), view(actual))
    names = {spec.name for spec in wanted}
    report.extra += [Entity(kind, name) for name in sorted(found) if owns(name) and name not in names]


def _differences(entity: Entity, wanted: Mapping[str, Any], found: Mapping[str, Any]) -> list[Difference]:
    keys = [*wanted, *sorted(k for k in found if k not in wanted)]
    return [
        Difference(entity, key, wanted.get(key), found.get(key))
        for key in keys
        if _canonical(wanted.get(key)) != _canonical(found.get(key))
    ]


@dataclass(frozen=True)
class ManagementAPI:
    """Where and as whom the management HTTP API is read."""

    base_url: str
    username: str
    password: str
    timeout: float = 10.0

    @classmethod
    def for_connection(cls, connection: Connection, url: str | None = None, timeout: float = 10.0) -> ManagementAPI:
        """``url`` (credentials in it win), or ``http://<broker host>:15672`` (15671 with TLS);
        the login is the broker connection's unless ``url`` has one."""
        info = connection.info()
        if url is None:
            host = f"[{info['hostname']}]" if ":" in info["hostname"] else info["hostname"]
            scheme = "https" if info["ssl"] else "http"
            url = f"{scheme}://{host}:{MANAGEMENT_PORTS[bool(info['ssl'])]}"
        parts = urlsplit(url)
        netloc = parts.netloc.rpartition("@")[2]
        base = urlunsplit((parts.scheme, netloc, parts.path.rstrip("/"), "", ""))
        if parts.username is not None:
            return cls(base, unquote(parts.username), unquote(parts.password or ""), timeout)
        return cls(base, info["userid"], info["password"], timeout)

    def get(self, path: str) -> Any:
        """GET ``path`` (below the base URL) and decode its JSON."""
        login = base64.b64encode(f"{self.username}:{self.password}".encode()).decode("ascii")
        what = f"GET {path.partition('?')[0]}"
        request = urllib.request.Request(
            self.base_url + path, headers={"Authorization": f"Basic {login}", "Accept": "application/json"}
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                body = response.read()
        except urllib.error.HTTPError as exc:
            answer = f"{exc.code} {exc.reason}"
            raise ManagementUnavailable(f"management API at {self.base_url} answered {answer} to {what}") from exc
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise ManagementUnavailable(f"management API not reachable at {self.base_url} ({reason})") from exc
        try:
            return json.loads(body)
        except ValueError as exc:
            raise ManagementUnavailable(f"{self.base_url} answered {what} with something other than JSON") from exc

    def read(self, vhost: str) -> BrokerState:
        """List ``vhost`` (``/`` is the default one; kombu's URL form ``//`` is already decoded)."""
        path = quote(vhost, safe="")
        return BrokerState.from_api(
            exchanges=self.get(f"/api/exchanges/{path}?columns=name,type,durable,auto_delete,arguments"),
            queues=self.get(f"/api/queues/{path}?columns=name,type,durable,auto_delete,arguments"),
            bindings=self.get(f"/api/bindings/{path}?columns=source,destination,destination_type,routing_key,arguments"),
            vhost=self.get(f"/api/vhosts/{path}"),
        )


def verify(
    connection: Connection,
    topology: Topology,
    destinations: Iterable[Queue] = (),
    *,
    management_url: str | None = None,
    use_management: bool | None = None,
    timeout: float = 10.0,
) -> Report:
    """Compare the broker behind ``connection`` with ``topology`` and the work queues ``destinations``.

    ``use_management``: None tries the management API and falls back to AMQP (noting why);
    True requires the API (:class:`ManagementUnavailable` otherwise); False uses AMQP only.
    ``destinations`` should be every queue the app retries into (``app.amqp.queues.values()``):
    a ``deliver`` binding of any other queue is reported as extra.
    """
    wanted = expected(topology, destinations)
    if use_management is False:
        report = _verify_over_amqp(connection, wanted, f"{_NOT_LISTED}: the management API was not used")
    else:
        api = ManagementAPI.for_connection(connection, management_url, timeout)
        try:
            report = diff(wanted, api.read(connection.info()["virtual_host"]), topology.owns)
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
