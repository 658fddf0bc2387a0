"""OAuth 2.0 and bearer-token errors, the same on every network, and the caller bugs that
look like auth errors but must not mark an account's token dead.

Pure: no Celery, no kombu, no HTTP library.  Every network's OAuth endpoints answer with the
RFC 6749 body ``{"error": "invalid_grant", "error_description": …}``, often as HTTP 400, and
protected resources with ``WWW-Authenticate: Bearer error="invalid_token"`` (RFC 6750 §3.1);
these say AUTH_INVALID or PERMISSION, not BAD_REQUEST.  ``rules`` goes in front of each
network's own rules; ``caller_bugs`` after them, in front of the generic status rules, so a
401 that only says the request had no token, a stale timestamp or plain ``http`` is read as
the caller's bug (BAD_REQUEST: parked, replayable after the fix) and the token stays trusted.
"""

from __future__ import annotations

import re

from . import http
from .base import BodyError, Dialect, Response, VerdictKind, as_text
from .tables import CodeTable, MessageTable, Table, entries

K = VerdictKind

RFC6749_TOKEN = "https://www.rfc-editor.org/rfc/rfc6749#section-5.2"
RFC6749_AUTHZ = "https://www.rfc-editor.org/rfc/rfc6749#section-4.1.2.1"
RFC6750 = "https://www.rfc-editor.org/rfc/rfc6750#section-3.1"
RFC8628 = "https://www.rfc-editor.org/rfc/rfc8628#section-3.5"

#: Token endpoint (RFC 6749 §5.2), authorization endpoint (§4.1.2.1), protected resource
#: (RFC 6750 §3.1) and device flow (RFC 8628 §3.5) error names; bodies carry them as ``error``.
ERRORS = (
    *entries(
        RFC6749_TOKEN,
        [
            ("invalid_request", K.BAD_REQUEST, "the request is missing a parameter or is malformed", None, None, 400),
            ("invalid_client", K.AUTH_INVALID, "client authentication failed (unknown client, wrong secret)", None, False, 401),
            ("invalid_grant", K.AUTH_INVALID, "the grant or refresh token is invalid, expired or revoked", None, False, 400),
            ("unauthorized_client", K.PERMISSION, "the client may not use this grant type", None, None, 400),
            ("unsupported_grant_type", K.BAD_REQUEST, "the grant type is not supported", None, None, 400),
            ("invalid_scope", K.PERMISSION, "the requested scope is invalid or exceeds the granted one", None, None, 400),
        ],
    ),
    *entries(
        RFC6749_AUTHZ,
        [
            ("access_denied", K.PERMISSION, "the resource owner or server denied the request", None, None, 403),
            ("unsupported_response_type", K.BAD_REQUEST, "the response type is not supported", None, None, 400),
            ("server_error", K.RETRY_SOON, "the authorization server met an unexpected condition", None, None, 500),
            ("temporarily_unavailable", K.RETRY_SOON, "the authorization server is overloaded or in maintenance", None, None, 503),
        ],
    ),
    *entries(
        RFC6750,
        [
            ("invalid_token", K.AUTH_INVALID, "the access token is expired, revoked, malformed or invalid", None, None, 401),
            ("insufficient_scope", K.PERMISSION, "the request needs more privileges than the token has", None, None, 403),
        ],
    ),
    *entries(
        RFC8628,
        [
            ("authorization_pending", K.RETRY_SOON, "the user has not yet approved the device: poll again", 5.0, None, 400),
            ("slow_down", K.RATE_LIMITED, "polling too fast: add 5 seconds to the interval", 10.0, None, 400),
            ("expired_token", K.AUTH_INVALID, "the device code expired: start the flow again", None, False, 400),
        ],
    ),
)

#: RFC 6750 §3.1 error codes of a ``WWW-Authenticate: Bearer`` challenge.
CHALLENGES = entries(
    RFC6750,
    [
        ("invalid_request", K.BAD_REQUEST, "the request is missing a parameter or is malformed", None, None, 400),
        ("invalid_token", K.AUTH_INVALID, "the access token is expired, revoked, malformed or invalid", None, None, 401),
        ("insufficient_scope", K.PERMISSION, "the request needs more privileges than the token has", None, None, 403),
    ],
)

#: Texts of 4xx answers that blame the request, not the token: no token sent (RFC 6750 §3.1:
#: "the resource server SHOULD NOT include an error code"), a timestamp outside the server's
#: window (the worker's clock; RFC 5849 §3.3), a token sent over plain http (RFC 6750 §5.3).
CALLER_BUGS = (
    *entries(
        RFC6750,
        [
            ("access token is required", K.BAD_REQUEST, "no access token was sent"),
            ("an active access token must be used", K.BAD_REQUEST, "no access token was sent"),
            ("missing access token", K.BAD_REQUEST, "no access token was sent"),
            ("access token is missing", K.BAD_REQUEST, "no access token was sent"),
            ("empty access token", K.BAD_REQUEST, "an empty access token was sent"),
            ("no access token", K.BAD_REQUEST, "no access token was sent"),
            ("missing authorization header", K.BAD_REQUEST, "no Authorization header was sent"),
        ],
        status=401,
    ),
    *entries(
        "https://www.rfc-editor.org/rfc/rfc5849#section-3.3",
        [
            ("timestamp out of bounds", K.BAD_REQUEST, "the request's timestamp is outside the server's window"),
            ("timestamp is too far", K.BAD_REQUEST, "the request's timestamp is outside the server's window"),
            ("clock skew", K.BAD_REQUEST, "the worker's clock is off"),
            ("token used before issued", K.BAD_REQUEST, "the worker's clock is behind the issuer's"),
        ],
        status=401,
    ),
    *entries(
        "https://www.rfc-editor.org/rfc/rfc6750#section-5.3",
        [
            ("ssl is required", K.BAD_REQUEST, "the request was sent over plain http"),
            ("https is required", K.BAD_REQUEST, "the request was sent over plain http"),
            ("https required", K.BAD_REQUEST, "the request was sent over plain http"),
            ("must use https", K.BAD_REQUEST, "the request was sent over plain http"),
        ],
        status=403,
    ),
)

_CHALLENGE_RE = re.compile(r'\berror\s*=\s*"?([A-Za-z_]+)')


def error(response: Response) -> BodyError | None:
    """``{"error": "<name>", "error_description": …}``: an RFC 6749 / 6750 error body."""
    name = response.get("error")
    if not isinstance(name, str) or not name or len(name) > 64:
        return None
    return BodyError(name, None, as_text(response.get("error_description")) or name)


def challenge(response: Response) -> BodyError | None:
    """The error code of a ``WWW-Authenticate: Bearer`` challenge."""
    header = response.header("www-authenticate")
    match = _CHALLENGE_RE.search(header) if header and "bearer" in header.lower() else None
    if match is None:
        return None
    description = re.search(r'error_description\s*=\s*"([^"]*)"', header)  # type: ignore[arg-type]
    name = match.group(1)
    return BodyError(name, None, f"WWW-Authenticate: {name}" + (f": {description.group(1)}" if description else ""))


_BODY = Dialect(error=error, wait=http.wait, wait_rule="Retry-After, else the documented polling interval")
_HEADER = Dialect(error=challenge, wait=http.wait)
_TEXT = Dialect(error=http.error, wait=http.wait)

#: Shared by every network, so ``docs/classify.md`` lists them once.
TABLES: tuple[Table, ...] = (
    CodeTable("oauth www-authenticate", _HEADER, CHALLENGES, shape="WWW-Authenticate: Bearer error="),
    CodeTable("oauth error", _BODY, ERRORS, shape='body "error" name'),
)

#: In front of every network's own rules.
rules = TABLES[0] | TABLES[1]
#: After a network's own rules, in front of the generic status rules.
caller_bugs = MessageTable("caller bug", _TEXT, CALLER_BUGS)

