"""Rules as data: each documented error of a network is one :class:`Entry` of a table.

Pure: no Celery, no kombu, no HTTP library.  An entry says what it matches (a code, a
``(code, subcode)`` pair, an HTTP status or a fragment of the error text), the verdict kind,
the documented wait when the documentation gives one in prose, whether a token refresh can fix
it, and the page or client-library file that documents it.  The tables are classifiers, so
they compose with ``|`` like any rule, and they are also what ``docs/classify.md`` is generated
from (:mod:`celery_dlx.classify.doc_table`), so the docs cannot drift from the behaviour.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field

from .base import BodyError, Classifier, Code, Dialect, Fallback, Response, Verdict, VerdictKind, status_line

#: A code table key: ``code``, ``(code, subcode)``, or ``(None, subcode)`` for any code.
TableKey = int | str | tuple[Code, Code]


@dataclass(frozen=True)
class Entry:
    """One documented error: what it matches, what it means, and where that is written.

    ``after`` is a wait in seconds that the documentation gives in prose ("try again in the
    next 30 seconds to 2 minutes" is 30 s), used when the response itself names none.
    ``refreshable`` says for AUTH_INVALID whether a token refresh can fix it (``None``: the
    error text decides, see :func:`~celery_dlx.classify.base.expired_text`).  ``status`` is the
    HTTP status the documentation pairs it with (for the docs and the fixtures).
    """

    key: TableKey
    kind: VerdictKind
    text: str
    source: str
    after: float | None = None
    refreshable: bool | None = None
    status: int | None = None


def entries(source: str, rows: Iterable[tuple[object, ...]], status: int | None = None) -> tuple[Entry, ...]:
    """Entries from compact ``(key, kind, text[, after[, refreshable[, status]]])`` rows that
    share one ``source``: how the network modules write their tables."""
    built = []
    for row in rows:
        key, kind, text, *rest = row
        after, refreshable, row_status = (*rest, None, None, None)[:3]
        built.append(
            Entry(key, kind, text, source, after, refreshable, row_status or status)  # type: ignore[arg-type]
        )
    return tuple(built)


@dataclass(frozen=True)
class Table(Classifier):
    """Base of the rule tables: a name for the docs and lookups by key."""

    name: str
    dialect: Dialect
    rows: tuple[Entry, ...]
    #: What the keys are matched against, in words, for the docs.
    shape: str = "code"
    _index: dict[TableKey, Entry] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_index", {entry.key: entry for entry in self.rows})

    def lookup(self, key: TableKey) -> Entry | None:
        """The entry for exactly ``key``, if the table has one."""
        return self._index.get(key)

    def rule_id(self, entry: Entry) -> str:
        """The id a verdict of ``entry`` carries (``Verdict.rule``)."""
        return f"{self.name}: {entry.key!r}"

    def decide(self, response: Response, entry: Entry, error: BodyError | None, fallback: str = "") -> Verdict:
        """The verdict of ``entry`` on ``response``; the reason is the response's own error
        message, else ``fallback``, else the documented text."""
        reason = (error.message if error and error.message else "") or fallback or entry.text
        return self.dialect.verdict(
            response,
            entry.kind,
            reason,
            error,
            after=entry.after,
            refreshable=entry.refreshable,
            rule=self.rule_id(entry),
        )


@dataclass(frozen=True)
class CodeTable(Table):
    """A network's error codes; the most specific key wins.

    Lookup order: ``(code, subcode)``, then ``(None, subcode)``, then ``code``.
    """

    def __call__(self, response: Response) -> Verdict | None:
        error = self.dialect.error(response)
        if error is None:
            return None
        index = self._index
        for key in ((error.code, error.subcode), (None, error.subcode), error.code):
            entry = index.get(key) if key is not None else None
            if entry is not None:
                return self.decide(response, entry, error)
        return None


@dataclass(frozen=True)
class StatusTable(Table):
    """HTTP statuses whose meaning this network documents, with its retry timing."""

    shape: str = "HTTP status"

    def __call__(self, response: Response) -> Verdict | None:
        status = response.status
        entry = self._index.get(status) if status is not None else None
        if entry is None:
            return None
        return self.decide(response, entry, self.dialect.error(response), status_line(status))  # type: ignore[arg-type]


@dataclass(frozen=True)
class MessageTable(Table):
    """Documented error texts (lower-case fragments) for errors that have no code, read from
    the error message (else a text body) of error statuses (4xx/5xx) only; the first entry
    whose fragment occurs wins, so specific fragments come before general ones."""

    shape: str = "message text"

    def __call__(self, response: Response) -> Verdict | None:
        if response.status is None or response.status < 400:
            return None
        error = self.dialect.error(response)
        plain = response.text[:2000] if isinstance(response.body, str) else ""  # JSON is read by ``error``
        text = (error.message if error and error.message else plain).lower()
        if not text:
            return None
        for entry in self.rows:
            if entry.key in text:  # type: ignore[operator]
                return self.decide(response, entry, error)
        return None


def code_table(name: str, dialect: Dialect, kinds: Mapping[TableKey, VerdictKind], source: str = "") -> CodeTable:
    """A code table from a plain ``{key: kind}`` mapping (what :meth:`Registry.override` adds)."""
    return CodeTable(name, dialect, tuple(Entry(key, VerdictKind(kind), "", source) for key, kind in kinds.items()))


def tables_of(classifier: Classifier) -> Iterator[Table]:
    """Every table in a composed classifier, in the order they are asked."""
    if isinstance(classifier, Table):
        yield classifier
    elif isinstance(classifier, Fallback):
        for part in classifier.parts:
            yield from tables_of(part)
