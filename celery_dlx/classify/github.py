"""GitHub REST API: ``{"message", "documentation_url"}``; rate limits are 403 *or* 429.

Sources: https://docs.github.com/en/rest/using-the-rest-api/rate-limits-for-the-rest-api
("If you exceed your primary rate limit, you will receive a 403 or 429 response, and the
``x-ratelimit-remaining`` header will be 0 … do not retry until after the time specified by
the ``x-ratelimit-reset`` header" (UTC epoch seconds); for a secondary rate limit honour
``retry-after``, else the reset when remaining is 0, "otherwise, wait for at least one
minute"), and PyGithub's ``github/Requester.py`` (primary and secondary rate-limit messages,
``Missing or invalid User Agent string``).

Telling a 403 rate limit from a 403 permission error is the main job here: the headers
decide first, the documented messages second.  The OAuth app endpoints answer errors as HTTP
200 with ``{"error": "bad_verification_code", …}``; "Requires authentication" means no token
was sent (the caller's bug), "Bad credentials" a token GitHub no longer accepts.
"""

from __future__ import annotations

from . import http, oauth
from .base import Dialect, Response, Verdict, VerdictKind, as_int, rule
from .tables import CodeTable, MessageTable, StatusTable, Table, entries

K = VerdictKind

RATES = "https://docs.github.com/en/rest/using-the-rest-api/rate-limits-for-the-rest-api"
STATUS_CODES = "https://docs.github.com/en/rest/using-the-rest-api/troubleshooting-the-rest-api"
PYGITHUB = "PyGithub/PyGithub github/Requester.py (BadCredentialsException, TwoFactorException, BadUserAgentException)"
OAUTH_ERRORS = "https://docs.github.com/en/apps/oauth-apps/maintaining-oauth-apps/troubleshooting-oauth-app-access-token-request-errors"
DEVICE_FLOW = "https://docs.github.com/en/apps/oauth-apps/building-oauth-apps/authorizing-oauth-apps#error-codes-for-the-device-flow"

#: Documented ``message`` texts (lower-case fragments) of 4xx answers.
MESSAGES = (
    *entries(
        PYGITHUB,
        [
            ("bad credentials", K.AUTH_INVALID, "Bad credentials: the token is revoked, expired or wrong", None, False, 401),
            ("must specify two-factor authentication otp code", K.AUTH_INVALID, "Must specify two-factor authentication OTP code", None, False, 401),
        ],
    ),
    *entries(
        STATUS_CODES,
        [
            ("requires authentication", K.BAD_REQUEST, "Requires authentication: no token was sent", None, None, 401),
            ("saml enforcement", K.PERMISSION, "Resource protected by organization SAML enforcement: authorize the token", None, None, 403),
            ("resource not accessible by integration", K.PERMISSION, "Resource not accessible by integration", None, None, 403),
            ("resource not accessible by personal access token", K.PERMISSION, "Resource not accessible by personal access token", None, None, 403),
            ("must have admin rights", K.PERMISSION, "Must have admin rights to Repository", None, None, 403),
            ("repository was archived", K.PERMISSION, "Repository was archived so is read-only", None, None, 403),
        ],
    ),
)

#: Errors of the OAuth app and device-flow endpoints beyond the RFC names (those are in
#: :mod:`celery_dlx.classify.oauth`); GitHub answers them as HTTP 200.
OAUTH_CODES = (
    *entries(
        OAUTH_ERRORS,
        [
            ("incorrect_client_credentials", K.AUTH_INVALID, "The client_id or client_secret is wrong", None, False),
            ("redirect_uri_mismatch", K.BAD_REQUEST, "The redirect_uri does not match the registered one"),
            ("bad_verification_code", K.AUTH_INVALID, "The verification code is wrong or expired: authorize again", None, False),
            ("unverified_user_email", K.PERMISSION, "The user must verify their primary email address"),
            ("bad_refresh_token", K.AUTH_INVALID, "The refresh token is invalid or expired: authorize again", None, False),
        ],
        status=200,
    ),
    *entries(
        DEVICE_FLOW,
        [
            ("incorrect_device_code", K.BAD_REQUEST, "The device_code is not valid"),
            ("device_flow_disabled", K.PERMISSION, "Device flow is not enabled in the app's settings"),
        ],
        status=200,
    ),
)

STATUSES = entries(STATUS_CODES, [(451, K.NOT_FOUND, "Repository access blocked (legal reasons): gone for this resource")])

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


DIALECT = Dialect(
    error=http.error,
    wait=wait,
    wait_rule="retry-after, else x-ratelimit-reset when x-ratelimit-remaining is 0, else 60 s",
)


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
    message = found.message if found else "rate limited"
    return DIALECT.verdict(response, K.RATE_LIMITED, message, found, rule="github rate limit: 403/429 by headers or text")


@rule
def user_agent(response: Response) -> Verdict | None:
    """A 403 for a missing ``User-Agent`` is the client's bug, not a missing permission."""
    found = http.error(response)
    text = (found.message if found else response.text).lower()
    if response.status != 403 or not any(name in text for name in ("user agent", "user-agent")):
        return None
    return DIALECT.verdict(
        response, K.BAD_REQUEST, "missing or invalid User-Agent header", found, rule="github user agent: 403"
    )


TABLES: tuple[Table, ...] = (
    MessageTable("github message", DIALECT, MESSAGES),
    CodeTable("github oauth error", Dialect(oauth.error, wait, DIALECT.wait_rule), OAUTH_CODES, shape='body "error" name'),
    StatusTable("github status", DIALECT, STATUSES),
)

#: GitHub's own rules; compose with ``| http.rules``.
rules = rate_limits | user_agent | TABLES[0] | TABLES[1] | TABLES[2]
