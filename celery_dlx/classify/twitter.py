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

from . import http
from .base import BodyError, Dialect, Response, VerdictKind, as_int, as_text
from .tables import CodeTable, StatusTable, Table, entries

K = VerdictKind

TROUBLESHOOTING = "https://developer.x.com/en/support/x-api/error-troubleshooting"
_PROBLEM_PREFIXES = ("https://api.twitter.com/2/problems/", "https://api.x.com/2/problems/")

#: The v1.1 ``errors[].code`` table, whole.  403 is not one thing here: a rate limit (185,
#: 161, 205, 226), a suspended or locked account (64, 326), a missing permission or
#: subscription (87, 220, 261, 453) or a request to fix (186, 187).  Some 401s are not about
#: the token: 135 is the worker's clock, 215 a request sent without proper auth data, 417
#: a wrong callback; 92 is plain http.
V1 = entries(
    TROUBLESHOOTING,
    [
        (3, K.BAD_REQUEST, "Invalid coordinates", None, None, 400),
        (13, K.NOT_FOUND, "No location associated with the specified IP address", None, None, 404),
        (17, K.NOT_FOUND, "No user matches for specified terms", None, None, 404),
        (25, K.BAD_REQUEST, "Query parameters are missing", None, None, 400),
        (32, K.AUTH_INVALID, "Could not authenticate you", None, False, 401),
        (34, K.NOT_FOUND, "Sorry, that page does not exist", None, None, 404),
        (36, K.BAD_REQUEST, "You cannot report yourself for spam", None, None, 403),
        (38, K.BAD_REQUEST, "A required parameter is missing", None, None, 400),
        (44, K.BAD_REQUEST, "attachment_url parameter is invalid", None, None, 400),
        (50, K.NOT_FOUND, "User not found", None, None, 404),
        (63, K.NOT_FOUND, "User has been suspended (the user asked about)", None, None, 403),
        (64, K.AUTH_INVALID, "Your account is suspended and is not permitted to access this feature", None, False, 403),
        (68, K.BAD_REQUEST, "The Twitter REST API v1 is no longer active", None, None, 410),
        (87, K.PERMISSION, "Client is not permitted to perform this action", None, None, 403),
        (88, K.RATE_LIMITED, "Rate limit exceeded", None, None, 429),
        (89, K.AUTH_INVALID, "Invalid or expired token", None, None, 401),
        (92, K.BAD_REQUEST, "SSL is required", None, None, 403),
        (93, K.PERMISSION, "This application is not allowed to access or delete your direct messages", None, None, 403),
        (99, K.AUTH_INVALID, "Unable to verify your credentials (OAuth 2 app credentials)", None, False, 403),
        (109, K.BAD_REQUEST, "The specified user is not a subscriber of this list", None, None, 400),
        (110, K.BAD_REQUEST, "The user you are trying to remove from the list is not a member", None, None, 400),
        (120, K.BAD_REQUEST, "Account update failed: value is too long", None, None, 403),
        (130, K.OVER_CAPACITY, "Over capacity", None, None, 503),
        (131, K.RETRY_SOON, "Internal error", None, None, 500),
        (135, K.BAD_REQUEST, "Could not authenticate you: timestamp out of bounds (check the clock)", None, None, 401),
        (139, K.BAD_REQUEST, "You have already favorited this status", None, None, 403),
        (144, K.NOT_FOUND, "No status found with that ID", None, None, 404),
        (150, K.PERMISSION, "You cannot send messages to users who are not following you", None, None, 403),
        (151, K.BAD_REQUEST, "There was an error sending your message", None, None, 403),
        (160, K.BAD_REQUEST, "You've already requested to follow the user", None, None, 403),
        (161, K.RATE_LIMITED, "You are unable to follow more people at this time", None, None, 403),
        (179, K.PERMISSION, "Sorry, you are not authorized to see this status", None, None, 403),
        (185, K.RATE_LIMITED, "User is over daily status update limit", None, None, 403),
        (186, K.BAD_REQUEST, "Tweet needs to be a bit shorter", None, None, 403),
        (187, K.BAD_REQUEST, "Status is a duplicate", None, None, 403),
        (195, K.BAD_REQUEST, "Missing or invalid url parameter", None, None, 403),
        (205, K.RATE_LIMITED, "You are over the limit for spam reports", None, None, 403),
        (214, K.PERMISSION, "The owner must allow direct messages from anyone", None, None, 403),
        (215, K.BAD_REQUEST, "Bad authentication data (missing or malformed auth in the request)", None, None, 400),
        (220, K.PERMISSION, "Your credentials do not allow access to this resource", None, None, 403),
        (226, K.RATE_LIMITED, "This request looks like it might be automated: try again later", None, None, 403),
        (231, K.AUTH_INVALID, "User must verify login", None, False, 403),
        (251, K.BAD_REQUEST, "This endpoint has been retired and should not be used", None, None, 410),
        (261, K.PERMISSION, "Application cannot perform write actions", None, None, 403),
        (271, K.BAD_REQUEST, "You can't mute yourself", None, None, 403),
        (272, K.BAD_REQUEST, "You are not muting the specified user", None, None, 403),
        (323, K.BAD_REQUEST, "Animated GIFs are not allowed when uploading multiple images", None, None, 400),
        (324, K.BAD_REQUEST, "The validation of media ids failed", None, None, 400),
        (325, K.NOT_FOUND, "A media id was not found", None, None, 400),
        (326, K.AUTH_INVALID, "The account is temporarily locked: the user must log in to unlock it", None, False, 403),
        (327, K.BAD_REQUEST, "You have already retweeted this Tweet", None, None, 403),
        (349, K.PERMISSION, "You cannot send messages to this user", None, None, 403),
        (354, K.BAD_REQUEST, "The text of your direct message is over the max character limit", None, None, 403),
        (355, K.BAD_REQUEST, "Subscription already exists", None, None, 409),
        (385, K.NOT_FOUND, "You attempted to reply to a Tweet that is deleted or not visible to you", None, None, 403),
        (386, K.BAD_REQUEST, "The Tweet exceeds the number of allowed attachment types", None, None, 403),
        (407, K.BAD_REQUEST, "The given URL is invalid", None, None, 400),
        (415, K.BAD_REQUEST, "Callback URL not approved for this client application", None, None, 403),
        (416, K.AUTH_INVALID, "Invalid / suspended application", None, False, 401),
        (417, K.BAD_REQUEST, "Desktop applications only support the oauth_callback value 'oob'", None, None, 401),
        (421, K.NOT_FOUND, "This Tweet is no longer available", None, None, 404),
        (422, K.NOT_FOUND, "This Tweet is no longer available because it violated the Twitter Rules", None, None, 404),
        (433, K.PERMISSION, "The original Tweet author restricted who can reply to this Tweet", None, None, 403),
        (453, K.PERMISSION, "You currently have access to a subset of the API only: upgrade the access level", None, None, 403),
    ],
)

#: v2 problem types (``type`` URIs, named by their last segment).
V2 = entries(
    TROUBLESHOOTING,
    [
        ("usage-capped", K.RATE_LIMITED, "Usage cap exceeded", None, None, 429),
        ("streaming-connection", K.RATE_LIMITED, "Too many connections", None, None, 429),
        ("operational-disconnect", K.RETRY_SOON, "Operational disconnect: reconnect", None, None, 200),
        ("client-disconnected", K.RETRY_SOON, "The client disconnected: reconnect", None, None, 200),
        ("invalid-request", K.BAD_REQUEST, "Invalid request", None, None, 400),
        ("invalid-rules", K.BAD_REQUEST, "Invalid stream rules", None, None, 400),
        ("duplicate-rules", K.BAD_REQUEST, "Duplicate stream rules", None, None, 400),
        ("noncompliant-rules", K.BAD_REQUEST, "Rules not allowed for this product", None, None, 400),
        ("rule-cap", K.BAD_REQUEST, "Rule cap exceeded", None, None, 400),
        ("conflict", K.BAD_REQUEST, "Conflict", None, None, 409),
        ("resource-not-found", K.NOT_FOUND, "Resource not found", None, None, 200),
        ("resource-unavailable", K.NOT_FOUND, "Resource unavailable (e.g. a suspended user)", None, None, 200),
        ("not-authorized-for-resource", K.PERMISSION, "Not authorized for this resource", None, None, 200),
        ("not-authorized-for-field", K.PERMISSION, "Not authorized for this field", None, None, 200),
        ("client-forbidden", K.PERMISSION, "The client is forbidden (e.g. not enrolled in a project)", None, None, 403),
        ("disallowed-resource", K.PERMISSION, "Disallowed resource", None, None, 403),
        ("unsupported-authentication", K.PERMISSION, "Wrong kind of token for this endpoint", None, None, 403),
    ],
)

#: 420 "Enhance Your Calm" is v1's old rate-limit status; 503 means "up but overloaded".
STATUSES = entries(
    TROUBLESHOOTING,
    [
        (420, K.RATE_LIMITED, "Enhance Your Calm: rate limited (v1 streaming)"),
        (429, K.RATE_LIMITED, "Too Many Requests"),
        (503, K.OVER_CAPACITY, "Service Unavailable: up but overloaded"),
    ],
)


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


DIALECT = Dialect(
    error=error,
    wait=wait,
    wait_rule="reset of the exhausted window (x-user/app-limit-24hour, x-rate-limit), else x-rate-limit-reset, else Retry-After",
)

TABLES: tuple[Table, ...] = (
    CodeTable("twitter v1.1 code", DIALECT, V1, shape="errors[0].code"),
    CodeTable("twitter v2 problem", DIALECT, V2, shape="problem type"),
    StatusTable("twitter status", DIALECT, STATUSES),
)

#: Twitter's own rules; compose with ``| http.rules``.
rules = TABLES[0] | TABLES[1] | TABLES[2]
