"""Instagram: the Graph API (Facebook's dialect plus its own publishing subcodes) and the
legacy API's ``{"meta": {"code", "error_type", "error_message"}}`` envelope.

Sources: https://developers.facebook.com/docs/instagram-platform/instagram-graph-api/reference/error-codes
(code/subcode table with recommended solutions) and, for the legacy envelope, the
``InstagramAPIError`` handling in facebookarchive/python-instagram ``instagram/bind.py``.

The subcodes matter more than the codes here: code 4 is an app rate limit on Facebook but
with subcode 2207051 it is Instagram refusing a post as spam, which no retry fixes.
"""

from __future__ import annotations

from typing import Any

from . import facebook
from .base import BodyError, CodeTable, Dialect, Response, VerdictKind, as_int, as_text

K = VerdictKind

KINDS: dict[Any, VerdictKind] = {
    (-2, 2207003): K.RETRY_SOON,  # downloading the media timed out: try again
    (-2, 2207020): K.BAD_REQUEST,  # the container expired: make a new one
    (-1, 2207001): K.RETRY_SOON,  # Instagram server error: try again
    (-1, 2207032): K.RETRY_SOON,  # creating the media failed: try again
    (-1, 2207053): K.BAD_REQUEST,  # unknown upload error: make a new container
    (1, 2207057): K.BAD_REQUEST,  # thumbnail offset outside the video
    (4, 2207051): K.PERMISSION,  # publishing refused as suspected spam
    (9, 2207042): K.RATE_LIMITED,  # daily publishing limit reached: try the next day
    (24, 2207006): K.NOT_FOUND,  # the media cannot be found (or the token lost access)
    (24, 2207008): K.RETRY_SOON,  # temporary error publishing a container: retry shortly
    (25, 2207050): K.AUTH_INVALID,  # the account is inactive, checkpointed or restricted
    (36000, 2207004): K.BAD_REQUEST,  # image too large
    (36001, 2207005): K.BAD_REQUEST,  # image format not supported
    (36003, 2207009): K.BAD_REQUEST,  # aspect ratio not supported
    (9004, 2207052): K.BAD_REQUEST,  # the media could not be fetched from its URI
    (9007, 2207027): K.RETRY_SOON,  # the media is not ready for publishing yet
    (352, 2207026): K.BAD_REQUEST,  # video format not supported
}

#: The legacy API named its errors instead of numbering them.
LEGACY_KINDS: dict[Any, VerdictKind] = {
    "OAuthAccessTokenException": K.AUTH_INVALID,
    "OAuthPermissionsException": K.PERMISSION,
    "OAuthRateLimitException": K.RATE_LIMITED,
    "APINotFoundError": K.NOT_FOUND,
    "APINotAllowedError": K.PERMISSION,
}


def legacy_error(response: Response) -> BodyError | None:
    """``meta.error_type`` of a legacy body (or of nginx's bare rate-limit body)."""
    envelope = response.get("meta") if isinstance(response.get("meta"), dict) else response.body
    error_type = as_text(envelope.get("error_type")) if isinstance(envelope, dict) else ""
    if not error_type:
        return None
    return BodyError(error_type, as_int(envelope.get("code")), as_text(envelope.get("error_message")))


def error(response: Response) -> BodyError | None:
    """The Graph API error if there is one, else the legacy one."""
    return facebook.error(response) or legacy_error(response)


DIALECT = Dialect(error=error, wait=facebook.wait)

#: Instagram's own rules in front of Facebook's; compose with ``| http.rules``.
rules = CodeTable(DIALECT, {**KINDS, **LEGACY_KINDS}) | facebook.rules
