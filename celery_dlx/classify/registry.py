"""Networks by name: each one's classifier, already composed with its fallbacks, and dialect."""

from __future__ import annotations

from dataclasses import dataclass, replace

from .base import Classifier, Code, Dialect, Response, Verdict, VerdictKind
from .tables import TableKey, code_table


@dataclass
class _Entry:
    classifier: Classifier
    dialect: Dialect | None


class Registry:
    """Networks by name: their classifier (already composed with its fallbacks) and dialect."""

    def __init__(self) -> None:
        self._entries: dict[str, _Entry] = {}

    def register(self, name: str, classifier: Classifier, dialect: Dialect | None = None) -> None:
        """Add or replace network ``name``.  ``classifier`` must answer every response (end
        it with ``| http.rules``); ``dialect`` enables :meth:`override` for it."""
        if not isinstance(name, str) or not name:
            raise ValueError(f"a network name must be a non-empty string, got {name!r}")
        self._entries[name] = _Entry(classifier, dialect)

    def override(self, name: str, code: Code, kind: VerdictKind, subcode: Code = None) -> None:
        """Classify ``code`` (with ``subcode``, if given) of network ``name`` as ``kind``."""
        entry = self._entry(name)
        if entry.dialect is None:
            raise ValueError(f"network {name!r} was registered without a dialect; compose a rule in front instead")
        key: TableKey = (code, subcode) if subcode is not None else code  # type: ignore[assignment]
        entry.classifier = code_table(f"{name} override", entry.dialect, {key: VerdictKind(kind)}) | entry.classifier

    def classifier(self, name: str) -> Classifier:
        """The full classifier of network ``name``."""
        return self._entry(name).classifier

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self._entries)

    def classify(
        self, network: str, status: object, headers: object, body: object, *, now: float | None = None
    ) -> Verdict:
        """Classify one response with network ``network``'s rules."""
        entry = self._entry(network)
        response = Response.of(status, headers, body, now)
        verdict = entry.classifier(response)
        if verdict is None:
            raise LookupError(
                f"the classifier of {network!r} gave no verdict; end it with a catch-all such as http.rules"
            )
        if verdict.code is None and verdict.subcode is None and entry.dialect is not None:
            # A generic fallback decided; the network's own codes still belong in the verdict.
            found = entry.dialect.error(response)
            if found is not None:
                return replace(verdict, code=found.code, subcode=found.subcode, network=network)
        return replace(verdict, network=network)

    def _entry(self, name: str) -> _Entry:
        try:
            return self._entries[name]
        except (KeyError, TypeError):
            raise ValueError(f"unknown network {name!r}; known: {', '.join(sorted(self._entries))}") from None
