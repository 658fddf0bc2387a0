"""Mastodon: ``{"error": "…", "error_description": "…"}`` with meaningful statuses, and
``X-RateLimit-Reset`` as an ISO 8601 timestamp.

Sources: https://docs.joinmastodon.org/api/rate-limits/ (``X-RateLimit-Limit``,
``-Remaining``, ``-Reset`` "timestamp when the request quota will be reset"),
https://docs.joinmastodon.org/entities/Error/ (body shape),
https://docs.joinmastodon.org/methods/media/ (206 while an upload is still processed), and
Mastodon.py's ``mastodon/internals.py``, which also measures the reset against the server's
``Date`` to survive clock skew.

Mastodon has no error codes, so its rules match the documented error texts.
"""

from __future__ import annotations

from . import http
from .base import Dialect, Response, StatusTable, Verdict, VerdictKind, rule

K = VerdictKind

#: Error texts (lower case) that mean the token can no longer act for its user.
AUTH_MESSAGES = (
    "the access token is invalid",
    "the access token was revoked",
    "the access token expired",
    "this method requires an authenticated user",  # 422 for an app-only token
    "your login is currently disabled",
    "your account is currently suspended",
)

#: 206: "media is still being processed" on GET /api/v1/media/:id, come back shortly.
STATUS_KINDS = {206: K.RETRY_SOON, 429: K.RATE_LIMITED}


def wait(response: Response) -> float | None:
    """``X-RateLimit-Reset`` (ISO 8601) relative to the response's ``Date``, else ``Retry-After``."""
    return http.first(
        lambda: http.until(http.iso_time(response.header("x-ratelimit-reset") or ""), response.now),
        lambda: http.retry_after(response),
    )


DIALECT = Dialect(error=http.error, wait=wait)


@rule
def auth_messages(response: Response) -> Verdict | None:
    """Errors whose text says the token or its account is unusable, whatever the status."""
    found = http.error(response)
    text = found.message.lower() if found else ""
    if response.status is None or response.status < 400 or not any(m in text for m in AUTH_MESSAGES):
        return None
    return DIALECT.verdict(response, K.AUTH_INVALID, found.message, found)  # type: ignore[union-attr]


#: Mastodon's own rules; compose with ``| http.rules``.
rules = auth_messages | StatusTable(DIALECT, STATUS_KINDS)
