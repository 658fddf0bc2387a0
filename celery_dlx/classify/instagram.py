"""Instagram: the Graph API (Facebook's dialect plus its own publishing subcodes) and the
legacy API's ``{"meta": {"code", "error_type", "error_message"}}`` envelope.

Sources: https://developers.facebook.com/docs/instagram-platform/instagram-graph-api/reference/error-codes
(code/subcode table with recommended solutions) and, for the legacy envelope, the
``InstagramAPIError`` handling in facebookarchive/python-instagram ``instagram/bind.py``.

The subcodes matter more than the codes here: code 4 is an app rate limit on Facebook but
with subcode 2207051 it is Instagram refusing a post as spam, which no retry fixes.  The
documented advice in prose becomes a wait: "try again 1-2 times in the next 30 seconds to 2
minutes" is 30 s, "try again the following day" 24 h.
"""

from __future__ import annotations

from . import facebook
from .base import BodyError, Dialect, Response, VerdictKind, as_int, as_text
from .tables import CodeTable, Table, entries

K = VerdictKind

CODES_URL = "https://developers.facebook.com/docs/instagram-platform/instagram-graph-api/reference/error-codes"
LEGACY_URL = "facebookarchive/python-instagram instagram/bind.py (InstagramAPIError from meta.error_type)"

#: The documented error codes of the Instagram Graph API (code, subcode).
CODES = entries(
    CODES_URL,
    [
        ((-2, 2207003), K.RETRY_SOON, "It takes too long to download the media: try again"),
        ((-2, 2207020), K.BAD_REQUEST, "The media has expired: generate a new container"),
        ((-1, 2207001), K.RETRY_SOON, "Instagram server error: try again"),
        ((-1, 2207032), K.RETRY_SOON, "Create media fail: try again"),
        ((-1, 2207053), K.BAD_REQUEST, "Unknown upload error: generate a new container"),
        ((1, 2207057), K.BAD_REQUEST, "Thumbnail offset outside the video duration"),
        ((4, 2207051), K.PERMISSION, "Publishing restricted as suspected spam"),
        ((9, 2207042), K.RATE_LIMITED, "Daily publishing limit reached: try again the following day", 86400.0),
        ((24, 2207006), K.NOT_FOUND, "The media cannot be found (or the token lost access)", None, None, 404),
        ((24, 2207008), K.RETRY_SOON, "Temporary error publishing a container: try again in 30 seconds to 2 minutes", 30.0),
        ((25, 2207050), K.AUTH_INVALID, "The account is inactive, checkpointed or restricted", None, False),
        ((100, 2207023), K.BAD_REQUEST, "The media type is not one of the expected types"),
        ((100, 2207028), K.BAD_REQUEST, "The carousel could not be validated"),
        ((100, 2207035), K.BAD_REQUEST, "Product tag positions are not supported for videos"),
        ((100, 2207036), K.BAD_REQUEST, "Product tag positions are required for images"),
        ((100, 2207037), K.BAD_REQUEST, "Some product tags could not be added"),
        ((100, 2207040), K.BAD_REQUEST, "No more than 20 unique tags per media"),
        ((352, 2207026), K.BAD_REQUEST, "Video format not supported"),
        ((9004, 2207052), K.BAD_REQUEST, "The media could not be fetched from its URI"),
        ((9007, 2207027), K.RETRY_SOON, "The media is not ready for publishing yet"),
        ((36000, 2207004), K.BAD_REQUEST, "The image is too large"),
        ((36001, 2207005), K.BAD_REQUEST, "The image format is not supported"),
        ((36003, 2207009), K.BAD_REQUEST, "The aspect ratio is not supported"),
        ((36004, 2207010), K.BAD_REQUEST, "The caption is too long"),
    ],
    status=400,
)

#: The legacy API named its errors instead of numbering them.
LEGACY = entries(
    LEGACY_URL,
    [
        ("OAuthAccessTokenException", K.AUTH_INVALID, "The access token provided is invalid", None, None, 400),
        ("OAuthPermissionsException", K.PERMISSION, "The access token lacks the scope", None, None, 400),
        ("OAuthRateLimitException", K.RATE_LIMITED, "The maximum number of requests per hour has been exceeded", None, None, 429),
        ("APINotFoundError", K.NOT_FOUND, "This user or media does not exist", None, None, 400),
        ("APINotAllowedError", K.PERMISSION, "The user is private or blocked you", None, None, 400),
        ("APIInvalidParametersError", K.BAD_REQUEST, "Invalid parameters", None, None, 400),
    ],
)


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


DIALECT = Dialect(error=error, wait=facebook.wait, wait_rule=facebook.DIALECT.wait_rule)

TABLES: tuple[Table, ...] = (
    CodeTable("instagram code", DIALECT, CODES),
    CodeTable("instagram legacy error_type", DIALECT, LEGACY, shape="meta.error_type"),
)

#: Instagram's own rules in front of Facebook's; compose with ``| http.rules``.
rules = TABLES[0] | TABLES[1] | facebook.rules
