"""LinkedIn: ``{"serviceErrorCode", "message", "status"}``, newer bodies add a ``code`` name.

Sources: https://learn.microsoft.com/en-us/linkedin/shared/api-guide/concepts/error-handling
(body shape, 401 token messages, 403 ``ACCESS_DENIED``) and
https://learn.microsoft.com/en-us/linkedin/shared/api-guide/concepts/rate-limits
("These limits reset at midnight UTC every day"; throttled calls get 429 and no header
saying when to come back).

So a 429 without ``Retry-After`` waits until the next midnight UTC, counted from the
response's ``Date``.  The verdict carries ``serviceErrorCode`` as the code and the ``code``
name (``REVOKED_ACCESS_TOKEN``, ``ACCESS_DENIED``…) as the subcode.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

from . import http
from .base import BodyError, CodeTable, Dialect, Response, StatusTable, VerdictKind, as_int, as_text

K = VerdictKind

KINDS: dict[Any, VerdictKind] = {
    **dict.fromkeys((65600, 65601, 65602, 65603, 65604), K.AUTH_INVALID),  # token invalid/revoked/expired
    100: K.PERMISSION,  # not enough permissions to access the resource
    101: K.RATE_LIMITED,  # resource level throttle limit reached
    (None, "INVALID_ACCESS_TOKEN"): K.AUTH_INVALID,
    (None, "EXPIRED_ACCESS_TOKEN"): K.AUTH_INVALID,
    (None, "REVOKED_ACCESS_TOKEN"): K.AUTH_INVALID,
    (None, "EMPTY_ACCESS_TOKEN"): K.AUTH_INVALID,
    (None, "ACCESS_DENIED"): K.PERMISSION,
    (None, "RESOURCE_NOT_FOUND"): K.NOT_FOUND,
    (None, "NOT_FOUND"): K.NOT_FOUND,
    (None, "TOO_MANY_REQUESTS"): K.RATE_LIMITED,
    (None, "VERSION_MISSING"): K.BAD_REQUEST,
    (None, "NONEXISTENT_VERSION"): K.BAD_REQUEST,
}

#: 426: the ``Linkedin-Version`` asked for is no longer served; the request must change.
STATUS_KINDS = {429: K.RATE_LIMITED, 426: K.BAD_REQUEST}


def error(response: Response) -> BodyError | None:
    """``serviceErrorCode`` and the ``code`` name of a LinkedIn error body (else its message)."""
    code = as_int(response.get("serviceErrorCode"))
    name = as_text(response.get("code"))[:100] or None
    if code is None and name is None:
        return http.error(response)
    return BodyError(code, name, as_text(response.get("message")))


def until_midnight_utc(now: float) -> float | None:
    """Seconds from ``now`` to the next midnight UTC, when LinkedIn's daily limits reset
    (``None`` for a ``now`` outside the calendar, from a nonsense ``Date``)."""
    try:
        moment = datetime.fromtimestamp(now, tz=timezone.utc)
        midnight = (moment + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    except (OverflowError, OSError, ValueError):
        return None
    return (midnight - moment).total_seconds()


def wait(response: Response) -> float | None:
    """``Retry-After`` if LinkedIn sent one, else the daily reset at midnight UTC."""
    return http.first(lambda: http.retry_after(response), lambda: until_midnight_utc(response.now))


DIALECT = Dialect(error=error, wait=wait)

#: LinkedIn's own rules; compose with ``| http.rules``.
rules = CodeTable(DIALECT, KINDS) | StatusTable(DIALECT, STATUS_KINDS)
