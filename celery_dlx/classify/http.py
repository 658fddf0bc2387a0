"""The generic HTTP rules, and the header and time parsing every network shares.

Pure: no Celery, no kombu, no HTTP library.  ``rules`` answers every response, so it is the
last fallback of each network: 5xx and 408 retry soon, 429 is rate limited, 401 means the
credentials are bad, 403 a missing permission, 404/410 a missing resource, other 4xx a bad
request, 451 a resource gone for legal reasons, and 1xx-3xx are fine.  OAuth and bearer
errors (:mod:`celery_dlx.classify.oauth`) are read in front of these, since they name the
problem more precisely than the status.

Every time a response gives is turned into seconds relative to :attr:`Response.now` (the
response's own ``Date``), so a worker whose clock is off still waits as long as the server
meant.  A time already past means "now" (0 s); nonsense (NaN, infinity, garbage) means "not
said" (``None``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime

from .base import BodyError, Dialect, Response, Verdict, VerdictKind, as_seconds, as_text, rule, status_line
from .tables import Entry, StatusTable

#: Epoch values from this size on are milliseconds, not seconds (year 33658 in seconds).
_EPOCH_MS = 1e12
#: Reset values from this size on are UNIX times, smaller ones are seconds to wait (2001-09-09).
_EPOCH_S = 1e9

_RFC9110 = "https://www.rfc-editor.org/rfc/rfc9110#section-"

#: Statuses whose meaning is more precise than their class (4xx: bad request, 5xx: retry).
STATUSES = (
    Entry(401, VerdictKind.AUTH_INVALID, "Unauthorized: the credentials are missing or bad", _RFC9110 + "15.5.2"),
    Entry(403, VerdictKind.PERMISSION, "Forbidden: understood but refused", _RFC9110 + "15.5.4"),
    Entry(404, VerdictKind.NOT_FOUND, "Not Found", _RFC9110 + "15.5.5"),
    # The server timed out waiting for the request; the client may repeat it.
    Entry(408, VerdictKind.RETRY_SOON, "Request Timeout: the client may repeat the request", _RFC9110 + "15.5.9"),
    Entry(410, VerdictKind.NOT_FOUND, "Gone, likely for good", _RFC9110 + "15.5.11"),
    Entry(429, VerdictKind.RATE_LIMITED, "Too Many Requests", "https://www.rfc-editor.org/rfc/rfc6585#section-4"),
    # Unavailable for legal reasons: gone for this resource, no retry or fix brings it back.
    Entry(451, VerdictKind.NOT_FOUND, "Unavailable For Legal Reasons", "https://www.rfc-editor.org/rfc/rfc7725#section-3"),
)


def first(*candidates: Callable[[], float | None]) -> float | None:
    """The first time that is known, trying ``candidates`` lazily in order."""
    for candidate in candidates:
        seconds = candidate()
        if seconds is not None:
            return seconds
    return None


def longest(values: Iterable[float | None]) -> float | None:
    """The longest of the known times: waiting for it is never too early for any of them."""
    known = [value for value in values if value is not None]
    return max(known) if known else None


def _number(value: str) -> float | None:
    try:
        return float(value)
    except ValueError:
        return None


def delay_or_date(value: str | None, now: float) -> float | None:
    """A ``Retry-After`` value: delay-seconds or an HTTP-date (RFC 9110 §10.2.3)."""
    if value is None:
        return None
    number = _number(value)
    return as_seconds(number) if number is not None else until(http_date(value), now)


def until(moment: float | None, now: float) -> float | None:
    """Seconds from ``now`` to the UNIX time ``moment`` (0 when it is already past)."""
    return as_seconds(moment - now) if moment is not None else None


def http_date(value: str) -> float | None:
    """An IMF-fixdate / RFC 850 / asctime date as a UNIX time."""
    try:
        moment = parsedate_to_datetime(value)
        return (moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)).timestamp()
    except (TypeError, ValueError, IndexError, OverflowError, OSError):
        return None


def iso_time(value: str) -> float | None:
    """An ISO 8601 timestamp (``2017-04-27T19:30:00.000Z``) as a UNIX time; naive means UTC."""
    text = value.strip()
    if text.endswith(("Z", "z")):  # Python 3.10's fromisoformat does not take "Z"
        text = text[:-1] + "+00:00"
    try:
        moment = datetime.fromisoformat(text)
        return (moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)).timestamp()
    except (ValueError, OverflowError, OSError):
        return None


def epoch(value: str | None) -> float | None:
    """A UNIX time in seconds (or milliseconds, told apart by size), as seconds."""
    number = _number(value) if value is not None else None
    if number is None or as_seconds(number) is None:
        return None
    return number / 1000 if number >= _EPOCH_MS else number


def until_reset(value: str | None, now: float) -> float | None:
    """A rate-limit reset in whichever form a server chose: a UNIX time in seconds or
    milliseconds, seconds to wait, an ISO 8601 timestamp or an HTTP-date."""
    if value is None:
        return None
    number = _number(value)
    if number is None:
        return until(first(lambda: iso_time(value), lambda: http_date(value)), now)
    if number >= _EPOCH_S:
        return until(epoch(value), now)
    return as_seconds(number)


def retry_after(response: Response) -> float | None:
    """The ``Retry-After`` header in seconds."""
    return delay_or_date(response.header("retry-after"), response.now)


def wait(response: Response) -> float | None:
    """When a response says to come back: ``Retry-After``, else a rate-limit reset header."""
    return first(
        lambda: retry_after(response),
        lambda: until_reset(response.header("ratelimit-reset"), response.now),
        lambda: until_reset(response.header("x-ratelimit-reset"), response.now),
    )


def message(response: Response) -> str:
    """The error text of the common body shapes: ``message``, ``error_description``,
    problem details (``detail``/``title``, RFC 9457), ``error`` as text or object."""
    for path in (("message",), ("error_description",), ("detail",), ("error", "message"), ("error",), ("title",)):
        text = as_text(response.get(*path))
        if text:
            return text
    return ""


def error(response: Response) -> BodyError | None:
    """A generic body has a message but no codes of its own."""
    text = message(response)
    return BodyError(message=text) if text else None


DIALECT = Dialect(error=error, wait=wait, wait_rule="Retry-After, else RateLimit-Reset / X-RateLimit-Reset")

#: The named statuses, as a table (for the docs and the verdict's ``rule``).
statuses = StatusTable("http status", DIALECT, STATUSES)


@rule
def by_status(response: Response) -> Verdict:
    """The catch-all: a verdict from the status alone; never ``None``."""
    status = response.status
    if status is None:
        return DIALECT.verdict(response, VerdictKind.RETRY_SOON, "no valid HTTP status", rule="http status: none")
    entry = statuses.lookup(status)
    kind = entry.kind if entry else _kind_of_class(status)
    text = message(response) if kind is not VerdictKind.OK else ""
    reason = f"{status_line(status)}: {text}" if text else status_line(status)
    rule_id = statuses.rule_id(entry) if entry else f"http status class: {status // 100}xx"
    return DIALECT.verdict(response, kind, reason, rule=rule_id)


def _kind_of_class(status: int) -> VerdictKind:
    if status < 400:
        return VerdictKind.OK
    return VerdictKind.BAD_REQUEST if status < 500 else VerdictKind.RETRY_SOON


#: The generic rules: every network's last fallback; answers every response.
rules = by_status
