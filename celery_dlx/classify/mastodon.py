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
from .base import Dialect, Response, VerdictKind
from .tables import MessageTable, StatusTable, Table, entries

K = VerdictKind

ERROR = "https://docs.joinmastodon.org/entities/Error/"
OAUTH = "https://docs.joinmastodon.org/methods/oauth/"
STATUSES_URL = "https://docs.joinmastodon.org/methods/statuses/"
MEDIA = "https://docs.joinmastodon.org/methods/media/"

#: Documented error texts (lower case fragments), most specific first.
MESSAGES = (
    *entries(
        ERROR,
        [
            ("the access token expired", K.AUTH_INVALID, "The access token expired", None, True, 401),
            ("the access token was revoked", K.AUTH_INVALID, "The access token was revoked", None, False, 401),
            ("the access token is invalid", K.AUTH_INVALID, "The access token is invalid", None, False, 401),
            ("your login is currently disabled", K.AUTH_INVALID, "Your login is currently disabled", None, False, 403),
            ("your account is currently suspended", K.AUTH_INVALID, "Your account is currently suspended", None, False, 403),
            ("your login is missing a confirmed e-mail address", K.PERMISSION, "Your login is missing a confirmed e-mail address", None, None, 403),
            ("your login is currently pending approval", K.PERMISSION, "Your login is currently pending approval", None, None, 403),
            ("outside the authorized scopes", K.PERMISSION, "This action is outside the authorized scopes", None, None, 403),
            ("record not found", K.NOT_FOUND, "Record not found", None, None, 404),
            ("remote data could not be fetched", K.RETRY_SOON, "Remote data could not be fetched", None, None, 503),
        ],
    ),
    *entries(
        OAUTH,
        [
            ("this method requires an authenticated user", K.AUTH_INVALID, "This method requires an authenticated user (an app token was sent)", None, False, 422),
        ],
    ),
    *entries(
        STATUSES_URL,
        [
            ("have not finished processing", K.RETRY_SOON, "Cannot attach files that have not finished processing. Try again in a moment!", None, None, 422),
        ],
    ),
)

#: 206: "media is still being processed" on GET /api/v1/media/:id, come back shortly.
STATUSES = (
    *entries(MEDIA, [(206, K.RETRY_SOON, "Partial content: the media is still being processed")]),
    *entries("https://docs.joinmastodon.org/api/rate-limits/", [(429, K.RATE_LIMITED, "Too many requests")]),
)


def wait(response: Response) -> float | None:
    """``X-RateLimit-Reset`` (ISO 8601) relative to the response's ``Date``, else ``Retry-After``."""
    return http.first(
        lambda: http.until(http.iso_time(response.header("x-ratelimit-reset") or ""), response.now),
        lambda: http.retry_after(response),
    )


DIALECT = Dialect(error=http.error, wait=wait, wait_rule="X-RateLimit-Reset (ISO 8601, from the response's Date), else Retry-After")

TABLES: tuple[Table, ...] = (
    MessageTable("mastodon message", DIALECT, MESSAGES),
    StatusTable("mastodon status", DIALECT, STATUSES),
)

#: Mastodon's own rules; compose with ``| http.rules``.
rules = TABLES[0] | TABLES[1]
