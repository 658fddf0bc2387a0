"""LinkedIn: ``{"serviceErrorCode", "message", "status"}``, newer bodies add a ``code`` name.

Sources: https://learn.microsoft.com/en-us/linkedin/shared/api-guide/concepts/error-handling
(body shape, 401 token messages, 403 ``ACCESS_DENIED``) and
https://learn.microsoft.com/en-us/linkedin/shared/api-guide/concepts/rate-limits
("These limits reset at midnight UTC every day"; throttled calls get 429 and no header
saying when to come back).

So a 429 without ``Retry-After`` waits until the next midnight UTC, counted from the
response's ``Date``.  The verdict carries ``serviceErrorCode`` as the code and the ``code``
name (``REVOKED_ACCESS_TOKEN``, ``ACCESS_DENIED``…) as the subcode.  An empty token is the
caller's bug (BAD_REQUEST), an expired one refreshable, a revoked one not.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from . import http
from .base import BodyError, Dialect, Response, VerdictKind, as_int, as_text
from .tables import CodeTable, MessageTable, StatusTable, Table, entries

K = VerdictKind

ERRORS = "https://learn.microsoft.com/en-us/linkedin/shared/api-guide/concepts/error-handling"
VERSIONS = "https://learn.microsoft.com/en-us/linkedin/marketing/versioning"
LIMITS = "https://learn.microsoft.com/en-us/linkedin/shared/api-guide/concepts/rate-limits"

#: ``serviceErrorCode`` values and ``code`` names (the latter keyed as ``(None, name)``).
CODES = (
    *entries(
        ERRORS,
        [
            (65600, K.AUTH_INVALID, "Invalid access token", None, False, 401),
            (65601, K.AUTH_INVALID, "The token used in the request has been revoked by the user", None, False, 401),
            (65602, K.AUTH_INVALID, "The token used in the request has expired", None, True, 401),
            # 65603/65604: the same family in real 401 bodies, not described one by one in the docs.
            (65603, K.AUTH_INVALID, "Invalid access token (65603)", None, None, 401),
            (65604, K.AUTH_INVALID, "Invalid access token (65604)", None, None, 401),
            (100, K.PERMISSION, "Not enough permissions to access the resource", None, None, 403),
            ((None, "INVALID_ACCESS_TOKEN"), K.AUTH_INVALID, "Invalid access token", None, False, 401),
            ((None, "EXPIRED_ACCESS_TOKEN"), K.AUTH_INVALID, "The token used in the request has expired", None, True, 401),
            ((None, "REVOKED_ACCESS_TOKEN"), K.AUTH_INVALID, "The token has been revoked by the user", None, False, 401),
            ((None, "EMPTY_ACCESS_TOKEN"), K.BAD_REQUEST, "Empty access token: no token was sent", None, None, 401),
            ((None, "ACCESS_DENIED"), K.PERMISSION, "Not enough permissions to access the resource", None, None, 403),
            ((None, "RESOURCE_NOT_FOUND"), K.NOT_FOUND, "The resource does not exist", None, None, 404),
            ((None, "NOT_FOUND"), K.NOT_FOUND, "The resource does not exist", None, None, 404),
            ((None, "ILLEGAL_ARGUMENT"), K.BAD_REQUEST, "Illegal argument in the request", None, None, 400),
            ((None, "PARAM_INVALID"), K.BAD_REQUEST, "A parameter is invalid", None, None, 400),
            ((None, "FIELD_PATH_INVALID"), K.BAD_REQUEST, "A projection field path is invalid", None, None, 400),
            ((None, "UNPROCESSABLE_ENTITY"), K.BAD_REQUEST, "The entity could not be processed", None, None, 422),
            ((None, "METHOD_NOT_ALLOWED"), K.BAD_REQUEST, "The method is not allowed on this resource", None, None, 405),
            ((None, "INTERNAL_SERVER_ERROR"), K.RETRY_SOON, "Internal server error", None, None, 500),
            ((None, "GATEWAY_TIMEOUT"), K.RETRY_SOON, "Gateway timeout", None, None, 504),
        ],
    ),
    *entries(
        LIMITS,
        [
            (101, K.RATE_LIMITED, "Resource level throttle limit reached: resets at midnight UTC", None, None, 429),
            ((None, "TOO_MANY_REQUESTS"), K.RATE_LIMITED, "Too many requests: resets at midnight UTC", None, None, 429),
        ],
    ),
    *entries(
        VERSIONS,
        [
            ((None, "VERSION_MISSING"), K.BAD_REQUEST, "The Linkedin-Version header is missing", None, None, 400),
            ((None, "NONEXISTENT_VERSION"), K.BAD_REQUEST, "The requested version is not served", None, None, 426),
        ],
    ),
)

#: Texts of bodies whose ``serviceErrorCode`` is only the status.
MESSAGES = entries(
    ERRORS,
    [
        ("empty oauth2_access_token", K.BAD_REQUEST, "Empty oauth2_access_token: no token was sent"),
        ("empty oauth2 access token", K.BAD_REQUEST, "Empty OAuth2 access token: the Authorization header is missing or empty"),
        ("unknown authentication schema", K.BAD_REQUEST, "Unknown authentication schema: the header is not 'Authorization: Bearer <token>'"),
        ("the token used in the request has expired", K.AUTH_INVALID, "The token used in the request has expired", None, True),
        ("the token used in the request has been revoked", K.AUTH_INVALID, "The token was revoked", None, False),
        ("invalid access token", K.AUTH_INVALID, "Invalid access token", None, False),
    ],
    status=401,
)

#: 426: the ``Linkedin-Version`` asked for is no longer served; the request must change.
STATUSES = (
    *entries(VERSIONS, [(426, K.BAD_REQUEST, "Upgrade Required: the requested version is sunset")]),
    *entries(LIMITS, [(429, K.RATE_LIMITED, "Too Many Requests: daily limits reset at midnight UTC")]),
)


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
    """``Retry-After`` if LinkedIn sent one, else, for a throttle (429, ``serviceErrorCode``
    101, ``TOO_MANY_REQUESTS``), the daily reset at midnight UTC."""
    throttled = (
        response.status == 429
        or as_int(response.get("serviceErrorCode")) == 101
        or response.get("code") == "TOO_MANY_REQUESTS"
    )
    return http.first(
        lambda: http.retry_after(response),
        lambda: until_midnight_utc(response.now) if throttled else None,
    )


DIALECT = Dialect(error=error, wait=wait, wait_rule="Retry-After, else the next midnight UTC (daily limits)")

TABLES: tuple[Table, ...] = (
    CodeTable("linkedin code", DIALECT, CODES, shape="serviceErrorCode / code name"),
    MessageTable("linkedin message", DIALECT, MESSAGES),
    StatusTable("linkedin status", DIALECT, STATUSES),
)

#: LinkedIn's own rules; compose with ``| http.rules``.
rules = TABLES[0] | TABLES[1] | TABLES[2]
