"""Verdicts, the response view every classifier reads, and how classifiers compose.

Pure: no Celery, no kombu, no HTTP library.  A classifier is a small callable object that
looks at a :class:`Response` and either returns a :class:`Verdict` or ``None`` ("no opinion").
``a | b`` asks ``a`` first and falls back to ``b`` (tenacity style), so a network's own rules
sit in front of the generic HTTP ones: ``facebook.rules | http.rules``.

The input is normalised once, here, into :class:`Response`: header names lower-cased, the
body decoded and parsed when it is JSON, the reference time taken from the response's own
``Date`` header.  Rules can then stay small and never have to guard against the odd shapes
(bytes, HTML error pages, wrong types) that real servers and proxies send.
"""

from __future__ import annotations

import json
import math
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import timezone
from email.utils import parsedate_to_datetime
from enum import Enum
from http import HTTPStatus
from typing import Any

from ..redact import redact

#: Bodies longer than this are not parsed: error bodies are small, and a huge success body
#: must not cost a JSON parse just to learn that the status was 200.
MAX_BODY = 1 << 20
#: Header values are cut to this length before anything parses them.
MAX_HEADER = 16 << 10
#: The longest reason a verdict carries (reasons end up in logs and result backends).
MAX_REASON = 300


class VerdictKind(str, Enum):
    """What to do about a response.  A ``str`` enum, so it serialises as its name."""

    OK = "OK"
    RETRY_SOON = "RETRY_SOON"
    RATE_LIMITED = "RATE_LIMITED"
    OVER_CAPACITY = "OVER_CAPACITY"
    AUTH_INVALID = "AUTH_INVALID"
    PERMISSION = "PERMISSION"
    NOT_FOUND = "NOT_FOUND"
    BAD_REQUEST = "BAD_REQUEST"

    @property
    def retryable(self) -> bool:
        """True for the kinds where trying again later can succeed."""
        return self in _RETRYABLE


_RETRYABLE = frozenset({VerdictKind.RETRY_SOON, VerdictKind.RATE_LIMITED, VerdictKind.OVER_CAPACITY})

Code = int | str | None


@dataclass(frozen=True)
class Verdict:
    """The classification of one response.

    ``retry_after`` is in seconds, measured from the response's ``Date`` (else from when it
    was classified), and only set when the response itself says when to come back.
    ``code``/``subcode`` are the network's own error identifiers, ``status`` the HTTP status.
    """

    kind: VerdictKind
    reason: str = ""
    retry_after: float | None = None
    code: Code = None
    subcode: Code = None
    status: int | None = None
    network: str = "http"
    #: For AUTH_INVALID: True when a new access token from the app's refresh flow can fix it
    #: (an expired access token or session), False when the user must act (revoked, password
    #: changed, app removed, account suspended or locked).  Always False for other kinds.
    refreshable: bool = False
    #: Which documented rule decided (``"facebook code: (190, 463)"``): for logs, docs and tests.
    rule: str = ""

    def as_dict(self) -> dict[str, Any]:
        """A JSON-serialisable copy, for task results, logs and exception arguments."""
        return {
            "kind": self.kind.value,
            "reason": self.reason,
            "retry_after": self.retry_after,
            "code": self.code,
            "subcode": self.subcode,
            "status": self.status,
            "network": self.network,
            "refreshable": self.refreshable,
            "rule": self.rule,
        }


@dataclass(frozen=True)
class BodyError:
    """A network's error identifiers as found in a response body: what code tables look up."""

    code: Code = None
    subcode: Code = None
    message: str = ""


@dataclass(frozen=True)
class Response:
    """One HTTP response as classifiers see it; build it with :meth:`of`.

    ``headers`` has lower-case names and string values; ``body`` is parsed JSON when the
    payload was JSON, else the text (or ``None``); ``now`` is the instant relative times are
    measured from: the response's ``Date`` header when it has a valid one.
    """

    status: int | None
    headers: Mapping[str, str] = field(default_factory=dict)
    body: Any = None
    text: str = ""
    now: float = 0.0

    @classmethod
    def of(cls, status: object, headers: object, body: object, now: float | None = None) -> Response:
        """Normalise whatever a caller or an HTTP library hands over; never raises."""
        header_map = _headers(headers)
        parsed, text = _body(body)
        clock = time.time() if now is None else now
        return cls(_status(status), header_map, parsed, text, _date(header_map.get("date"), clock))

    def header(self, name: str) -> str | None:
        """A header value by case-insensitive name, stripped; ``None`` when absent or empty."""
        value = self.headers.get(name.lower(), "").strip()
        return value or None

    def get(self, *path: str | int) -> Any:
        """The value at ``path`` in a JSON body (``get("error", "code")``), else ``None``."""
        node = self.body
        for key in path:
            if isinstance(key, int) and isinstance(node, list) and -len(node) <= key < len(node):
                node = node[key]
            elif isinstance(key, str) and isinstance(node, Mapping):
                node = node.get(key)
            else:
                return None
        return node


def as_int(value: object) -> int | None:
    """An error code as an int: ints and digit strings count, bools and the rest do not."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and len(value) < 20:
        try:
            return int(value)
        except ValueError:
            return None
    return None


def as_text(value: object) -> str:
    """A message as a short string; anything that is not a string reads as empty."""
    return value[:MAX_REASON] if isinstance(value, str) else ""


def as_seconds(value: object) -> float | None:
    """A finite, non-negative number of seconds, or ``None``."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    seconds = float(value)
    return max(seconds, 0.0) if math.isfinite(seconds) else None


def status_line(status: int) -> str:
    """``HTTP 429 Too Many Requests``; just the number for statuses without a name."""
    try:
        return f"HTTP {status} {HTTPStatus(status).phrase}"
    except ValueError:
        return f"HTTP {status}"


def _status(value: object) -> int | None:
    status = as_int(value)
    return status if status is not None and 100 <= status <= 999 else None


def _headers(raw: object) -> dict[str, str]:
    """Lower-cased ``{name: value}`` from a mapping, a multi-dict or a list of pairs."""
    try:
        items = raw.items() if callable(getattr(raw, "items", None)) else raw  # type: ignore[attr-defined]
        pairs = list(items) if isinstance(items, Iterable) and not isinstance(items, (str, bytes)) else []
    except (TypeError, ValueError, AttributeError):
        return {}
    headers: dict[str, str] = {}
    for pair in pairs:
        if not isinstance(pair, (tuple, list)) or len(pair) != 2:
            continue
        name, value = (_header_text(part) for part in pair)
        if name is not None and value is not None:
            key = name.strip().lower()
            headers[key] = f"{headers[key]}, {value}" if key in headers else value
    return headers


def _header_text(value: object) -> str | None:
    if isinstance(value, (bytes, bytearray)):
        return bytes(value[:MAX_HEADER]).decode("latin-1")
    if isinstance(value, str):
        return value[:MAX_HEADER]
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    return None


def _body(raw: object) -> tuple[Any, str]:
    """``(parsed, text)``: JSON bodies parsed, text kept for message matching."""
    if isinstance(raw, (bytes, bytearray, memoryview)):
        raw = bytes(raw[: MAX_BODY + 1]).decode("utf-8", errors="replace")
    if not isinstance(raw, str):
        return raw, ""
    text = raw[:MAX_BODY]
    if len(raw) > MAX_BODY or text.lstrip()[:1] not in ("{", "["):
        return (text or None), text
    try:
        return json.loads(text), text
    except (ValueError, RecursionError):
        return text, text


def _date(value: str | None, fallback: float) -> float:
    """The ``Date`` header as a UNIX time, or ``fallback`` when it is missing or invalid."""
    if not value:
        return fallback
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return fallback
    if moment.tzinfo is None:  # "-0000": UTC, with no claim about the sender's zone
        moment = moment.replace(tzinfo=timezone.utc)
    try:
        return moment.timestamp()
    except (OverflowError, OSError, ValueError):
        return fallback


class Classifier(ABC):
    """Base of every classifier: call it on a :class:`Response`; ``a | b`` falls back to ``b``."""

    @abstractmethod
    def __call__(self, response: Response) -> Verdict | None:
        """The verdict on ``response``, or None when this classifier has no opinion."""

    def __or__(self, other: Classifier) -> Classifier:
        return Fallback((self, other))


@dataclass(frozen=True)
class Fallback(Classifier):
    """The first opinion of its parts, in order."""

    parts: tuple[Classifier, ...]

    def __call__(self, response: Response) -> Verdict | None:
        for part in self.parts:
            verdict = part(response)
            if verdict is not None:
                return verdict
        return None

    def __or__(self, other: Classifier) -> Classifier:
        return Fallback((*self.parts, other))


@dataclass(frozen=True)
class Rule(Classifier):
    """A classifier made from a plain function; use :func:`rule` as a decorator."""

    function: Callable[[Response], Verdict | None]

    def __call__(self, response: Response) -> Verdict | None:
        return self.function(response)


def rule(function: Callable[[Response], Verdict | None]) -> Rule:
    """Turn ``function(response) -> Verdict | None`` into a composable classifier."""
    return Rule(function)


@dataclass(frozen=True)
class Dialect:
    """How one network speaks: where its error codes live and how it says when to come back.

    Code tables and :meth:`Registry.override` use it, so an override of one code gets the
    same parsing and the same retry timing as the network's built-in rules.
    """

    error: Callable[[Response], BodyError | None]
    wait: Callable[[Response], float | None]
    #: How ``wait`` reads a response, in words: the "retry_after rule" column of docs/classify.md.
    wait_rule: str = "Retry-After, else a rate-limit reset header"

    def verdict(
        self,
        response: Response,
        kind: VerdictKind,
        reason: str,
        error: BodyError | None = None,
        *,
        after: float | None = None,
        refreshable: bool | None = None,
        rule: str = "",
    ) -> Verdict:
        """A verdict of ``kind`` with this network's retry time (for retryable kinds).

        ``after`` is a wait the documentation gives in prose, used when the response names
        none.  ``refreshable`` (AUTH_INVALID only) is what the rule knows; ``None`` reads the
        message.  The reason is redacted here, once, so a verdict is always safe to log or store.
        """
        wait = self.wait(response) if kind.retryable else None
        auth = kind is VerdictKind.AUTH_INVALID
        return Verdict(
            kind=kind,
            reason=redact(reason[:MAX_REASON]),
            retry_after=after if wait is None and kind.retryable else wait,
            code=error.code if error else None,
            subcode=error.subcode if error else None,
            status=response.status,
            refreshable=auth and (expired_text(reason) if refreshable is None else refreshable),
            rule=rule,
        )


#: Words that say an access token or session only ran out of time (a refresh can fix it)…
_EXPIRED = ("expired", "has expired", "expiry", "past its lifetime", "session has timed out")
#: …unless the same text says it was ended on purpose (then the user must act).
_ENDED = ("revoked", "password", "invalidated", "logged out", "deauthori", "removed", "suspended", "changed")


def expired_text(text: str) -> bool:
    """True when an auth error's text says only that the token or session expired."""
    lowered = text.lower()
    return any(word in lowered for word in _EXPIRED) and not any(word in lowered for word in _ENDED)
