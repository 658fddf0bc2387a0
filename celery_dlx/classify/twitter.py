"""Twitter / X: v1.1 ``{"errors": [{"code", "message"}]}`` and v2 problem details
(``{"type": "https://api.twitter.com/2/problems/…", "title", "detail"}``).

Sources: https://developer.x.com/en/support/x-api/error-troubleshooting (v1.1 codes and v2
problem types), https://developer.x.com/en/docs/x-api/rate-limits (``x-rate-limit-*``
headers, UNIX-time resets, and the 24-hour ``x-user-limit-24hour-*`` /
``x-app-limit-24hour-*`` windows of posting endpoints), and tweepy's ``tweepy/client.py``,
which sleeps until ``x-rate-limit-reset`` on 429.

v2 answers 200 with an ``errors`` list when *some* requested objects failed; that is a
success as long as there is ``data``, and the object is missing when there is none.
"""

from __future__ import annotations

from typing import Any

from . import http
from .base import BodyError, CodeTable, Dialect, Response, StatusTable, VerdictKind, as_int, as_text

K = VerdictKind

_PROBLEM_PREFIXES = ("https://api.twitter.com/2/problems/", "https://api.x.com/2/problems/")

KINDS: dict[Any, VerdictKind] = {
    32: K.AUTH_INVALID,  # could not authenticate you
    89: K.AUTH_INVALID,  # invalid or expired token
    99: K.AUTH_INVALID,  # unable to verify credentials
    215: K.AUTH_INVALID,  # bad authentication data
    326: K.AUTH_INVALID,  # account temporarily locked: the user must log in to unlock it
    64: K.PERMISSION,  # your account is suspended
    87: K.PERMISSION,  # client is not permitted to perform this action
    179: K.PERMISSION,  # not authorized to see this status
    220: K.PERMISSION,  # credentials do not allow access to this resource
    261: K.PERMISSION,  # application cannot perform write actions
    88: K.RATE_LIMITED,  # rate limit exceeded
    185: K.RATE_LIMITED,  # user is over the daily status update limit
    130: K.OVER_CAPACITY,  # over capacity
    131: K.RETRY_SOON,  # internal error
    17: K.NOT_FOUND,  # no user matches the specified terms
    34: K.NOT_FOUND,  # page does not exist
    50: K.NOT_FOUND,  # user not found
    63: K.NOT_FOUND,  # user has been suspended
    144: K.NOT_FOUND,  # no status found with that ID
    186: K.BAD_REQUEST,  # status is too long
    187: K.BAD_REQUEST,  # status is a duplicate
    "usage-capped": K.RATE_LIMITED,
    "streaming-connection": K.RATE_LIMITED,  # too many connections
    "operational-disconnect": K.RETRY_SOON,
    "client-disconnected": K.RETRY_SOON,
    "invalid-request": K.BAD_REQUEST,
    "invalid-rules": K.BAD_REQUEST,
    "duplicate-rules": K.BAD_REQUEST,
    "rule-cap": K.BAD_REQUEST,
    "conflict": K.BAD_REQUEST,
    "resource-not-found": K.NOT_FOUND,
    "resource-unavailable": K.NOT_FOUND,  # e.g. a suspended user
    "not-authorized-for-resource": K.PERMISSION,
    "not-authorized-for-field": K.PERMISSION,
    "client-forbidden": K.PERMISSION,
    "disallowed-resource": K.PERMISSION,
    "unsupported-authentication": K.PERMISSION,  # wrong kind of token for this endpoint
}

#: 420 "Enhance Your Calm" is v1's old rate-limit status; 503 means "up but overloaded".
STATUS_KINDS = {420: K.RATE_LIMITED, 429: K.RATE_LIMITED, 503: K.OVER_CAPACITY}


def _problem(value: object) -> str | None:
    """The short name of a v2 problem type URI (``usage-capped``)."""
    if isinstance(value, str):
        for prefix in _PROBLEM_PREFIXES:
            if value.startswith(prefix) and len(value) > len(prefix):
                return value[len(prefix) :]
    return None


def error(response: Response) -> BodyError | None:
    """A v1.1 error code, else the v2 problem of the whole response, else the v2 problem of
    its first ``errors`` entry when no ``data`` came back, else just a message."""
    first = response.get("errors", 0)
    first = first if isinstance(first, dict) else {}
    code = as_int(first.get("code"))
    if code is not None:
        return BodyError(code, None, as_text(first.get("message")))
    problem = _problem(response.get("type"))
    if problem is not None:
        return BodyError(problem, None, as_text(response.get("detail")) or as_text(response.get("title")))
    problem = _problem(first.get("type"))
    if problem is not None and response.get("data") is None:
        return BodyError(problem, None, as_text(first.get("detail")) or as_text(first.get("title")))
    return http.error(response)


_WINDOWS = (
    ("x-user-limit-24hour-remaining", "x-user-limit-24hour-reset"),
    ("x-app-limit-24hour-remaining", "x-app-limit-24hour-reset"),
    ("x-rate-limit-remaining", "x-rate-limit-reset"),
)


def _reset(response: Response, header: str) -> float | None:
    return http.until(http.epoch(response.header(header)), response.now)


def wait(response: Response) -> float | None:
    """The reset of the exhausted window (the latest, if several are), else the 15-minute
    window's reset, else ``Retry-After``."""
    exhausted = [_reset(response, reset) for left, reset in _WINDOWS if as_int(response.header(left)) == 0]
    return http.first(
        lambda: http.longest(exhausted),
        lambda: _reset(response, "x-rate-limit-reset"),
        lambda: http.retry_after(response),
    )


DIALECT = Dialect(error=error, wait=wait)

#: Twitter's own rules; compose with ``| http.rules``.
rules = CodeTable(DIALECT, KINDS) | StatusTable(DIALECT, STATUS_KINDS)
