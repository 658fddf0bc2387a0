"""Reddit: HTTP errors as ``{"message", "error": <status>, "reason"}``, OAuth errors as
``{"error": "invalid_grant"}``, and action errors inside a 200 as
``{"json": {"errors": [[NAME, message, field]]}}``.

Sources: prawcore's ``prawcore/sessions.py`` and ``prawcore/exceptions.py`` (status to
exception mapping, the redirect to ``/subreddits/search`` for a missing subreddit),
``prawcore/rate_limit.py`` (``x-ratelimit-remaining``/``-used``/``-reset``, the reset being
*seconds until* the window ends, not a UNIX time), ``prawcore/util.py`` (the
``WWW-Authenticate`` error names), and praw's ``praw/reddit.py`` (``RATELIMIT`` messages
such as "try again in 6 minutes", parsed for the wait).
"""

from __future__ import annotations

import re
from typing import Any

from . import http
from .base import (
    BodyError,
    CodeTable,
    Dialect,
    Response,
    StatusTable,
    Verdict,
    VerdictKind,
    as_int,
    as_text,
    rule,
)

K = VerdictKind

KINDS: dict[Any, VerdictKind] = {
    "RATELIMIT": K.RATE_LIMITED,
    "USER_REQUIRED": K.AUTH_INVALID,
    "invalid_grant": K.AUTH_INVALID,
    "SUBREDDIT_NOEXIST": K.NOT_FOUND,
    "USER_DOESNT_EXIST": K.NOT_FOUND,
    "THREAD_LOCKED": K.PERMISSION,
    "TOO_OLD": K.PERMISSION,  # archived: replies and votes are closed
    "SUBREDDIT_NOTALLOWED": K.PERMISSION,
    "NOT_AUTHOR": K.PERMISSION,
    (None, "private"): K.PERMISSION,
    (None, "quarantined"): K.PERMISSION,
    (None, "gated"): K.PERMISSION,
    (None, "banned"): K.NOT_FOUND,
}

STATUS_KINDS = {429: K.RATE_LIMITED}

_WAIT_RE = re.compile(r"(\d{1,6})\s*(millisecond|second|minute|hour)s?", re.IGNORECASE)
_UNIT_SECONDS = {"millisecond": 0.001, "second": 1.0, "minute": 60.0, "hour": 3600.0}


def error(response: Response) -> BodyError | None:
    """The first action error of a ``json.errors`` list, an OAuth error name, or the
    status and ``reason`` of an HTTP error body."""
    action = response.get("json", "errors", 0)
    if isinstance(action, list) and action and isinstance(action[0], str):
        return BodyError(action[0][:100], None, as_text(action[1]) if len(action) > 1 else "")
    name = response.get("error")
    reason = as_text(response.get("reason"))[:100] or None
    if isinstance(name, str) and name:
        return BodyError(name[:100], reason, as_text(response.get("error_description")) or name)
    code = as_int(name)
    if code is None and reason is None:
        return None
    return BodyError(code, reason, as_text(response.get("message")) or as_text(response.get("explanation")))


def message_wait(text: str) -> float | None:
    """The wait in a ``RATELIMIT`` message: "try again in 6 minutes", "take a break for
    3 seconds"."""
    match = _WAIT_RE.search(text)
    if match is None:
        return None
    return int(match.group(1)) * _UNIT_SECONDS[match.group(2).lower()]


def wait(response: Response) -> float | None:
    """The wait named in an action error, else ``Retry-After``, else ``x-ratelimit-reset``
    (seconds until the window resets)."""
    found = error(response)
    return http.first(
        lambda: message_wait(found.message) if found else None,
        lambda: http.retry_after(response),
        lambda: http.delay_or_date(response.header("x-ratelimit-reset"), response.now),
    )


DIALECT = Dialect(error=error, wait=wait)


@rule
def action_errors(response: Response) -> Verdict | None:
    """Any other action error: the request was refused as invalid, even under a 200."""
    found = error(response)
    if found is None or not isinstance(response.get("json", "errors", 0), list):
        return None
    return DIALECT.verdict(response, K.BAD_REQUEST, found.message or str(found.code), found)


@rule
def missing_subreddit(response: Response) -> Verdict | None:
    """Reddit redirects requests for a subreddit that does not exist to its search page."""
    location = response.header("location") or ""
    if response.status is None or not 300 <= response.status < 400 or "/subreddits/search" not in location:
        return None
    return DIALECT.verdict(response, K.NOT_FOUND, "redirected to /subreddits/search: no such subreddit")


@rule
def servers_busy(response: Response) -> Verdict | None:
    """Reddit's 503 page, "all of our servers are busy right now", is overload."""
    if response.status != 503 or "servers are busy" not in response.text.lower():
        return None
    return DIALECT.verdict(response, K.OVER_CAPACITY, "all of reddit's servers are busy")


#: Reddit's own rules; compose with ``| http.rules``.
rules = (
    CodeTable(DIALECT, KINDS) | action_errors | StatusTable(DIALECT, STATUS_KINDS) | missing_subreddit | servers_busy
)
