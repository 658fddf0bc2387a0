"""Reddit: HTTP errors as ``{"message", "error": <status>, "reason"}``, OAuth errors as
``{"error": "invalid_grant"}``, and action errors inside a 200 as
``{"json": {"errors": [[NAME, message, field]]}}``.

Sources: prawcore's ``prawcore/sessions.py`` and ``prawcore/exceptions.py`` (status to
exception mapping, the redirect to ``/subreddits/search`` for a missing subreddit),
``prawcore/rate_limit.py`` (``x-ratelimit-remaining``/``-used``/``-reset``, the reset being
*seconds until* the window ends, not a UNIX time), ``prawcore/util.py`` (the
``WWW-Authenticate`` error names), and praw's ``praw/reddit.py`` (``RATELIMIT`` messages
such as "try again in 6 minutes", parsed for the wait), and the list of API error names in
reddit's own source, ``reddit-archive/reddit r2/r2/lib/errors.py``: the names whose meaning is
not "fix the request" are table entries, every other action error is BAD_REQUEST.
"""

from __future__ import annotations

import re

from . import http
from .base import BodyError, Dialect, Response, Verdict, VerdictKind, as_int, as_text, rule
from .tables import CodeTable, MessageTable, StatusTable, Table, entries

K = VerdictKind

R2 = "reddit-archive/reddit r2/r2/lib/errors.py (error_list)"
PRAWCORE = "praw-dev/prawcore prawcore/exceptions.py and prawcore/sessions.py (status and reason to exception)"

#: Action error names (``json.errors[0][0]``) whose meaning is not "fix the request", and
#: the ``reason`` of 403/404 bodies (keyed ``(None, reason)``).
CODES = (
    *entries(
        R2,
        [
            ("RATELIMIT", K.RATE_LIMITED, "you are doing that too much. try again in %(time)s."),
            ("SUBREDDIT_RATELIMIT", K.RATE_LIMITED, "you are doing that too much. try again later."),
            ("USER_REQUIRED", K.AUTH_INVALID, "Please log in to do that.", None, False),
            ("EXPIRED", K.AUTH_INVALID, "your session has expired", None, True),
            ("IN_TIMEOUT", K.AUTH_INVALID, "You can't do that while suspended.", None, False),
            ("HTTPS_REQUIRED", K.BAD_REQUEST, "this page must be accessed using https"),
            ("MOD_REQUIRED", K.PERMISSION, "You must be a moderator to do that."),
            ("ADMIN_REQUIRED", K.PERMISSION, "you must be in admin mode for this"),
            ("VERIFIED_USER_REQUIRED", K.PERMISSION, "you need to set a valid email address to do that."),
            ("NOT_AUTHOR", K.PERMISSION, "you can't do that"),
            ("NOT_USER", K.PERMISSION, "You are not logged in as that user."),
            ("NO_API", K.PERMISSION, "cannot perform this action via the API"),
            ("GOLD_REQUIRED", K.PERMISSION, "you must have an active reddit gold subscription to do that"),
            ("CANT_CREATE_SR", K.PERMISSION, "your account is too new or you do not have enough karma"),
            ("SUBREDDIT_NOTALLOWED", K.PERMISSION, "you aren't allowed to post there."),
            ("SUBREDDIT_NO_ACCESS", K.PERMISSION, "you aren't allowed access to this subreddit"),
            ("BANNED_FROM_SUBREDDIT", K.PERMISSION, "that user is banned from the subreddit"),
            ("USER_MUTED", K.PERMISSION, "You have been muted from this subreddit."),
            ("USER_BLOCKED", K.PERMISSION, "you can't send to a user that you have blocked"),
            ("USER_BLOCKED_MESSAGE", K.PERMISSION, "can't send message to that user"),
            ("BANNED_IP", K.PERMISSION, "IP banned"),
            ("THREAD_LOCKED", K.PERMISSION, "Comments are locked."),
            ("TOO_OLD", K.PERMISSION, "that's a piece of history now; it's too late to reply to it"),
            ("SUBREDDIT_NOEXIST", K.NOT_FOUND, "that subreddit doesn't exist"),
            ("USER_DOESNT_EXIST", K.NOT_FOUND, "that user doesn't exist"),
            ("DELETED_COMMENT", K.NOT_FOUND, "that comment has been deleted"),
            ("DELETED_THING", K.NOT_FOUND, "that element has been deleted"),
            ("COLLECTION_NOEXIST", K.NOT_FOUND, "that collection doesn't exist"),
            ("MULTI_NOT_FOUND", K.NOT_FOUND, "that multireddit doesn't exist"),
            ("COMMENT_NOT_ACCESSIBLE", K.NOT_FOUND, "Cannot access this comment."),
            ("POST_NOT_ACCESSIBLE", K.NOT_FOUND, "Cannot access this post."),
            ("CONFLICT", K.RETRY_SOON, "conflict error while saving"),
            ("OAUTH2_INVALID_CLIENT", K.AUTH_INVALID, "invalid client id", None, False),
            ("OAUTH2_INVALID_REFRESH_TOKEN", K.AUTH_INVALID, "invalid refresh token", None, False),
            ("OAUTH2_INVALID_SCOPE", K.PERMISSION, "invalid scope requested"),
            ("OAUTH2_ACCESS_DENIED", K.PERMISSION, "access denied by the user"),
        ],
        status=200,
    ),
    *entries(
        PRAWCORE,
        [
            ((None, "private"), K.PERMISSION, "private subreddit", None, None, 403),
            ((None, "quarantined"), K.PERMISSION, "quarantined subreddit: opt in first", None, None, 403),
            ((None, "gated"), K.PERMISSION, "gated subreddit: opt in first", None, None, 403),
            ((None, "banned"), K.NOT_FOUND, "banned subreddit", None, None, 404),
        ],
    ),
)

STATUSES = entries(
    PRAWCORE,
    [
        (429, K.RATE_LIMITED, "TooManyRequests"),
        (451, K.NOT_FOUND, "UnavailableForLegalReasons: gone for this resource"),
    ],
)

#: Reddit's 503 page, "all of our servers are busy right now", is overload.
MESSAGES = entries(PRAWCORE, [("servers are busy", K.OVER_CAPACITY, "all of reddit's servers are busy", None, None, 503)])

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


DIALECT = Dialect(
    error=error, wait=wait, wait_rule="the wait named in the RATELIMIT message, else Retry-After, else x-ratelimit-reset (seconds)"
)


@rule
def action_errors(response: Response) -> Verdict | None:
    """Any other action error: the request was refused as invalid, even under a 200."""
    found = error(response)
    if found is None or not isinstance(response.get("json", "errors", 0), list):
        return None
    return DIALECT.verdict(response, K.BAD_REQUEST, found.message or str(found.code), found, rule="reddit error: any other")


@rule
def missing_subreddit(response: Response) -> Verdict | None:
    """Reddit redirects requests for a subreddit that does not exist to its search page."""
    location = response.header("location") or ""
    if response.status is None or not 300 <= response.status < 400 or "/subreddits/search" not in location:
        return None
    return DIALECT.verdict(
        response, K.NOT_FOUND, "redirected to /subreddits/search: no such subreddit", rule="reddit redirect: search"
    )


TABLES: tuple[Table, ...] = (
    CodeTable("reddit error", DIALECT, CODES, shape="json.errors name / reason"),
    StatusTable("reddit status", DIALECT, STATUSES),
    MessageTable("reddit message", DIALECT, MESSAGES),
)

#: Reddit's own rules; compose with ``| http.rules``.
rules = TABLES[0] | action_errors | TABLES[1] | missing_subreddit | TABLES[2]
