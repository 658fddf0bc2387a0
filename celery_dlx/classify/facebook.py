"""Facebook Graph API: ``{"error": {"code", "error_subcode", "type", "is_transient", …}}``.

Sources: https://developers.facebook.com/docs/graph-api/guides/error-handling (codes and
recovery tactics), https://developers.facebook.com/docs/graph-api/overview/rate-limiting
(throttling codes, the ``X-App-Usage``/``X-Page-Usage``/``X-Business-Use-Case-Usage``
headers and their ``estimated_time_to_regain_access`` in minutes) and
https://developers.facebook.com/docs/marketing-api/overview/rate-limiting
(``X-Ad-Account-Usage.reset_time_duration`` in seconds).

Facebook puts throttling, auth and validation errors behind HTTP 400/403 alike, so the code
in the body decides, not the status.  Instagram's Graph API speaks the same dialect.  Older
bodies have no ``code`` field: the code is only in the message (``"(#4) Application request
limit reached"``), or only the ``OAuthException`` text says what happened; the old REST API
answered ``{"error_code", "error_msg"}``.  All three are read.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass

from . import http
from .base import BodyError, Dialect, Response, Verdict, VerdictKind, as_int, as_seconds, as_text
from .tables import CodeTable, Entry, MessageTable, Table, entries

K = VerdictKind

ERRORS = "https://developers.facebook.com/docs/graph-api/guides/error-handling"
RATES = "https://developers.facebook.com/docs/graph-api/overview/rate-limiting"
ADS_RATES = "https://developers.facebook.com/docs/marketing-api/overview/rate-limiting"
MESSENGER = "https://developers.facebook.com/docs/messenger-platform/reference/send-api/error-codes"
SDK = "facebook/facebook-python-business-sdk facebook_business/exceptions.py (FacebookRequestError reads error.code, error_subcode, message, type)"

#: Business Use Case throttling codes: ads insights, pages, Instagram, custom audience, ads
#: management, lead generation, Messenger, WhatsApp Business, catalog management and batch.
BUC_CODES = (80000, 80001, 80002, 80003, 80004, 80005, 80006, 80008, 80009, 80014)
_BUC_NAMES = ("Ads Insights", "Pages", "Instagram", "Custom Audience", "Ads Management", "LeadGen", "Messenger",
              "WhatsApp Business Management", "Catalog Management", "Catalog Batch")

CODES: tuple[Entry, ...] = (
    *entries(
        ERRORS,
        [
            (1, K.RETRY_SOON, "API Unknown: possibly a temporary issue due to downtime; wait and retry", None, None, 500),
            (2, K.RETRY_SOON, "API Service: temporary issue due to downtime; wait and retry", None, None, 503),
            (3, K.PERMISSION, "API Method: a capability or permission is missing for this call"),
            (4, K.RATE_LIMITED, "API Too Many Calls: the app request limit was reached"),
            (10, K.PERMISSION, "API Permission Denied: the permission is not granted or was removed", None, None, 403),
            (17, K.RATE_LIMITED, "API User Too Many Calls: the user request limit was reached"),
            (102, K.AUTH_INVALID, "API Session: the login status or access token expired, was revoked or is invalid", None, None, 401),
            (190, K.AUTH_INVALID, "Access token has expired or is invalid (the subcode says why)", None, None, 401),
            ((None, 458), K.AUTH_INVALID, "App Not Installed: the user has not logged in to the app or removed it", None, False, 401),
            ((None, 459), K.AUTH_INVALID, "User Checkpointed: the user must log in at facebook.com", None, False, 401),
            ((None, 460), K.AUTH_INVALID, "Password Changed: the user must log in again", None, False, 401),
            ((None, 463), K.AUTH_INVALID, "Expired: the login status or access token expired; get a new one", None, True, 401),
            ((None, 464), K.AUTH_INVALID, "Unconfirmed User: the user must log in at facebook.com", None, False, 401),
            ((None, 467), K.AUTH_INVALID, "Invalid access token: expired, revoked or invalid", None, None, 401),
            ((None, 492), K.AUTH_INVALID, "Invalid Session: the user's role on the page changed", None, False, 401),
            (341, K.RATE_LIMITED, "Application limit reached: temporary; wait and retry"),
            (368, K.RATE_LIMITED, "Temporarily blocked for policy violations: wait and retry", None, None, 403),
            (506, K.BAD_REQUEST, "Duplicate Post: the same message cannot be posted twice in a row"),
            (1609005, K.BAD_REQUEST, "Error Posting Link: the link could not be scraped"),
            (100, K.BAD_REQUEST, "Invalid parameter"),
            ((100, 33), K.NOT_FOUND, "Unsupported get request: the object does not exist or lacks permissions", None, None, 404),
            (803, K.NOT_FOUND, "Some of the aliases you requested do not exist", None, None, 404),
            # Asked without a token: the caller's bug, not a dead token.
            (104, K.BAD_REQUEST, "An access token is required to request this resource", None, None, 401),
            (2500, K.BAD_REQUEST, "An active access token must be used to query information about the current user"),
            (12, K.BAD_REQUEST, "The endpoint or field is deprecated for this API version"),
        ],
    ),
    *entries(
        RATES,
        [
            (32, K.RATE_LIMITED, "Page request limit reached"),
            (613, K.RATE_LIMITED, "Calls to this API have exceeded the rate limit"),
            *((code, K.RATE_LIMITED, f"{name} business use case rate limit reached") for code, name in zip(BUC_CODES, _BUC_NAMES)),
        ],
    ),
    *entries(
        ADS_RATES,
        [
            ((17, 2446079), K.RATE_LIMITED, "User request limit reached (ads management)"),
            ((613, 1487742), K.RATE_LIMITED, "There have been too many calls from this ad account"),
            ((4, 1504022), K.RATE_LIMITED, "Too many API requests (ads insights): reduce calls, wait and retry"),
            (2635, K.BAD_REQUEST, "You are calling a deprecated version of the Ads API"),
        ],
    ),
    *entries(
        MESSENGER,
        [
            (1200, K.RETRY_SOON, "Temporary send message failure; try again later", None, None, 500),
            (551, K.NOT_FOUND, "This person isn't available right now"),
            ((100, 2018001), K.NOT_FOUND, "No matching user found"),
            ((10, 2018065), K.PERMISSION, "This message is sent outside of the allowed window"),
            ((10, 2018108), K.PERMISSION, "This message is sent outside of the allowed window"),
            ((200, 1545041), K.NOT_FOUND, "Message not sent: this person isn't available right now"),
            (230, K.PERMISSION, "Requires the pages_messaging permission"),
        ],
    ),
)

#: What a codeless ``OAuthException`` says, in its text (lower case).
MESSAGES = entries(
    SDK,
    [
        ("session has expired", K.AUTH_INVALID, "Error validating access token: Session has expired", None, True),
        ("access token has expired", K.AUTH_INVALID, "The access token has expired", None, True),
        ("has not authorized application", K.AUTH_INVALID, "The user has not authorized the application (removed it)", None, False),
        ("changed the password", K.AUTH_INVALID, "The session was invalidated: the user changed the password", None, False),
        ("changed their password", K.AUTH_INVALID, "The session was invalidated: the user changed their password", None, False),
        ("session has been invalidated", K.AUTH_INVALID, "The session has been invalidated", None, False),
        ("session is invalid because the user logged out", K.AUTH_INVALID, "The user logged out", None, False),
        ("checkpoint", K.AUTH_INVALID, "The user is enrolled in a blocking, logged-in checkpoint", None, False),
        ("malformed access token", K.AUTH_INVALID, "Malformed access token", None, False),
        ("invalid oauth access token", K.AUTH_INVALID, "Invalid OAuth access token", None, False),
        ("error validating access token", K.AUTH_INVALID, "Error validating access token", None, None),
        ("error validating application", K.AUTH_INVALID, "Error validating application: the app is deleted or its secret is wrong", None, False),
        ("request limit reached", K.RATE_LIMITED, "Application or user request limit reached"),
        ("please retry your request later", K.RETRY_SOON, "An unexpected error has occurred. Please retry your request later."),
    ],
    status=400,
)

_LEGACY_CODE = re.compile(r"^\s*\(#(\d{1,9})\)")


def error(response: Response) -> BodyError | None:
    """The ``error`` object of a Graph API body (the code read from ``"(#NNN) …"`` when the
    body has no ``code`` field), or the old REST API's ``error_code``/``error_msg``."""
    node = response.get("error")
    if isinstance(node, dict):
        text = as_text(node.get("message"))
        code = as_int(node.get("code"))
        if code is None:
            found = _LEGACY_CODE.match(text)
            code = int(found.group(1)) if found else None
        if code is None:
            return None
        return BodyError(code, as_int(node.get("error_subcode")), text)
    code = as_int(response.get("error_code"))
    if code is None:
        return None
    return BodyError(code, as_int(response.get("error_subcode")), as_text(response.get("error_msg")))


def legacy_message(response: Response) -> BodyError | None:
    """The message of an error object with no code anywhere (an old ``OAuthException``)."""
    node = response.get("error")
    if not isinstance(node, dict) or error(response) is not None:
        return None
    text = as_text(node.get("message"))
    return BodyError(message=text) if text else None


def wait(response: Response) -> float | None:
    """The longest ``estimated_time_to_regain_access`` (minutes) or ``reset_time_duration``
    (seconds) in the usage headers, else ``Retry-After``.

    A usage header lists every business, page or app the call counted against; the call
    works again only when the one that throttled it recovers, and the header does not say
    which one that is, so the longest wait is the one that is never too early.  Zero means
    "not throttled" and so says nothing about when to come back.
    """
    longest = http.longest(_usage_waits(response))
    return longest if longest else http.retry_after(response)


_USAGE_HEADERS = ("x-business-use-case-usage", "x-app-usage", "x-page-usage", "x-ad-account-usage")


def _usage_waits(response: Response) -> Iterator[float | None]:
    for name in _USAGE_HEADERS:
        value = response.header(name)
        if value is None:
            continue
        try:
            usage = json.loads(value)
        except (ValueError, RecursionError):
            continue
        yield from _waits_in(usage, depth=3)


def _waits_in(node: object, depth: int) -> Iterator[float | None]:
    """Every wait in a usage header, which nests ``{id: [{…}]}`` (BUC) or is flat."""
    if isinstance(node, list) and depth:
        for item in node:
            yield from _waits_in(item, depth - 1)
    elif isinstance(node, dict) and depth:
        minutes = node.get("estimated_time_to_regain_access")
        if minutes is not None:
            seconds = as_seconds(minutes)
            yield seconds * 60 if seconds is not None else None
        yield as_seconds(node.get("reset_time_duration"))
        for value in node.values():
            yield from _waits_in(value, depth - 1)


DIALECT = Dialect(
    error=error,
    wait=wait,
    wait_rule="longest estimated_time_to_regain_access (min) / reset_time_duration (s) in the usage headers, else Retry-After",
)


@dataclass(frozen=True)
class RangeTable(Table):
    """Codes in a range, each one documented the same way (200-299: one permission each)."""

    shape: str = "code range"

    def __call__(self, response: Response) -> Verdict | None:
        found = self.dialect.error(response)
        code = found.code if found else None
        for entry in self.rows:
            low, high = entry.key if isinstance(entry.key, tuple) else (entry.key, entry.key)
            if isinstance(code, int) and isinstance(low, int) and isinstance(high, int) and low <= code <= high:
                return self.decide(response, entry, found)
        return None


@dataclass(frozen=True)
class FlagTable(Table):
    """A body flag that decides whatever the code (``error.is_transient: true``)."""

    shape: str = "body flag"

    def __call__(self, response: Response) -> Verdict | None:
        found = self.dialect.error(response)
        for entry in self.rows:
            if found is not None and response.get(*str(entry.key).split(".")) is True:
                return self.decide(response, entry, found)
        return None


TABLES: tuple[Table, ...] = (
    CodeTable("facebook code", DIALECT, CODES),
    RangeTable("facebook code range", DIALECT, (Entry((200, 299), K.PERMISSION, "API Permission: one code per permission", ERRORS, status=403),)),
    FlagTable("facebook flag", DIALECT, (Entry("error.is_transient", K.RETRY_SOON, "the error is transient: retry", ERRORS, status=500),)),
    MessageTable("facebook OAuthException text", Dialect(legacy_message, wait, DIALECT.wait_rule), MESSAGES),
)

#: Facebook's own rules; compose with ``| http.rules``.
rules = TABLES[0] | TABLES[1] | TABLES[2] | TABLES[3]
