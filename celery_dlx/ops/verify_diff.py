"""The diff between the expected topology and a broker's listing: missing, extra, different."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from .topology_spec import BrokerState, ExchangeSpec, Expected, QueueSpec, canonical


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
    #: Bindings of queues outside this app to its ``deliver`` exchange: another app sharing the
    #: broker and the prefix.  Not drift (unless ``strict``): this app cannot own them.
    foreign: list[Entity] = field(default_factory=list)
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
            *(f"= foreign {entity} (a queue this app does not list; not drift, --strict counts it)" for entity in self.foreign),
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
            foreign = f"; {len(self.foreign)} foreign binding(s)" if self.foreign else ""
            return f"no drift: {checked} match{foreign}{caveat}"
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
            "foreign": [{"kind": e.kind, "name": e.name} for e in self.foreign],
            "unchecked": list(self.unchecked),
            "fixes": list(self.fixes),
        }


Spec = TypeVar("Spec", ExchangeSpec, QueueSpec)


def diff(wanted: Expected, state: BrokerState, owns: Callable[[str], bool], *, strict: bool = False) -> Report:
    """Compare ``wanted`` with a management API listing; ``owns`` says which names may be extra.

    An unexpected binding into a queue that is neither celery_dlx's nor one of the app's is
    foreign (another app bound its work queue to the shared prefix's ``deliver``), not extra,
    unless ``strict``.
    """
    report = Report("management", checked=len(wanted.exchanges) + len(wanted.queues) + len(wanted.bindings))
    _compare("exchange", wanted.exchanges, state.exchanges, ExchangeSpec.view, owns, report)
    _compare("queue", wanted.queues, state.queues, lambda q: q.view(state.default_queue_type), owns, report)
    wanted_keys = {b.key for b in wanted.bindings}
    found_keys = {b.key for b in state.bindings}
    ours = {b.destination for b in wanted.bindings}
    report.missing += [Entity("binding", b.name) for b in wanted.bindings if b.key not in found_keys]
    for b in sorted(state.bindings, key=lambda b: b.name):
        if not (owns(b.source) or owns(b.destination)) or b.key in wanted_keys:
            continue
        foreign = not strict and not owns(b.destination) and b.destination not in ours
        (report.foreign if foreign else report.extra).append(Entity("binding", b.name))
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
        if canonical(wanted.get(key)) != canonical(found.get(key))
    ]
