"""GitHub REST API: ``{"message", "documentation_url"}``; rate limits are 403 *or* 429.

Sources: https://docs.github.com/en/rest/using-the-rest-api/rate-limits-for-the-rest-api
("If you exceed your primary rate limit, you will receive a 403 or 429 response, and the
``x-ratelimit-remaining`` header will be 0 … do not retry until after the time specified by
the ``x-ratelimit-reset`` header" (UTC epoch seconds); for a secondary rate limit honour
``retry-after``, else the reset when remaining is 0, "otherwise, wait for at least one
minute"), and PyGithub's ``github/Requester.py`` (primary and secondary rate-limit messages,
``Missing or invalid User Agent string``).

Telling a 403 rate limit from a 403 permission error is the whole job here: the headers
decide first, the documented messages second.
"""

from __future__ import annotations

from . import http
from .base import Dialect, Response, Verdict, VerdictKind, as_int, rule

K = VerdictKind

#: "wait for at least one minute before retrying" when nothing else says how long.
SECONDARY_WAIT = 60.0

#: Lower-case message fragments of primary and secondary rate limits.
RATE_LIMIT_MESSAGES = ("rate limit", "abuse detection", "please wait a few minutes", "retry your request again later")


def wait(response: Response) -> float | None:
    """``retry-after``, else ``x-ratelimit-reset`` once the quota is used up, else a minute."""
    return http.first(
        lambda: http.retry_after(response),
        lambda: _primary_reset(response),
        lambda: SECONDARY_WAIT,
    )


def _primary_reset(response: Response) -> float | None:
    if as_int(response.header("x-ratelimit-remaining")) != 0:
        return None
    return http.until(http.epoch(response.header("x-ratelimit-reset")), response.now)


DIALECT = Dialect(error=http.error, wait=wait)


@rule
def rate_limits(response: Response) -> Verdict | None:
    """A 403 or 429 that is a rate limit: by its headers, else by its documented message."""
    if response.status not in (403, 429):
        return None
    found = http.error(response)
    text = found.message.lower() if found else ""
    limited = (
        response.status == 429
        or response.header("retry-after") is not None
        or as_int(response.header("x-ratelimit-remaining")) == 0
        or any(fragment in text for fragment in RATE_LIMIT_MESSAGES)
    )
    if not limited:
        return None
    return DIALECT.verdict(response, K.RATE_LIMITED, found.message if found else "rate limited", found)


@rule
def user_agent(response: Response) -> Verdict | None:
    """A 403 for a missing ``User-Agent`` is the client's bug, not a missing permission."""
    found = http.error(response)
    text = (found.message if found else response.text).lower()
    if response.status != 403 or not any(name in text for name in ("user agent", "user-agent")):
        return None
    return DIALECT.verdict(response, K.BAD_REQUEST, "missing or invalid User-Agent header", found)


#: GitHub's own rules; compose with ``| http.rules``.
rules = rate_limits | user_agent
