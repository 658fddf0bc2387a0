"""Facebook Graph API: ``{"error": {"code", "error_subcode", "type", "is_transient", …}}``.

Sources: https://developers.facebook.com/docs/graph-api/guides/error-handling (codes and
recovery tactics), https://developers.facebook.com/docs/graph-api/overview/rate-limiting
(throttling codes, the ``X-App-Usage``/``X-Page-Usage``/``X-Business-Use-Case-Usage``
headers and their ``estimated_time_to_regain_access`` in minutes) and
https://developers.facebook.com/docs/marketing-api/overview/rate-limiting
(``X-Ad-Account-Usage.reset_time_duration`` in seconds).

Facebook puts throttling, auth and validation errors behind HTTP 400/403 alike, so the code
in the body decides, not the status.  Instagram's Graph API speaks the same dialect.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from . import http
from .base import BodyError, CodeTable, Dialect, Response, Verdict, VerdictKind, as_int, as_seconds, as_text, rule

K = VerdictKind

#: Business Use Case throttling codes: ads insights, pages, Instagram, custom audience, ads
#: management, lead generation, Messenger, WhatsApp Business, catalog management and batch.
BUC_CODES = (80000, 80001, 80002, 80003, 80004, 80005, 80006, 80008, 80009, 80014)

KINDS: dict[Any, VerdictKind] = {
    1: K.RETRY_SOON,  # API Unknown: possibly downtime, wait and retry
    2: K.RETRY_SOON,  # API Service: temporary downtime
    3: K.PERMISSION,  # API Method: capability or permission missing
    4: K.RATE_LIMITED,  # application request limit reached
    17: K.RATE_LIMITED,  # user request limit reached
    32: K.RATE_LIMITED,  # page request limit reached
    341: K.RATE_LIMITED,  # application limit reached
    368: K.RATE_LIMITED,  # temporarily blocked for policy violations: wait and retry
    613: K.RATE_LIMITED,  # calls to this API exceeded the rate limit
    **dict.fromkeys(BUC_CODES, K.RATE_LIMITED),
    10: K.PERMISSION,  # permission denied (not granted or removed)
    102: K.AUTH_INVALID,  # API session: login status or token expired/revoked/invalid
    190: K.AUTH_INVALID,  # access token expired or invalid (subcodes 458-467, 492 say why)
    100: K.BAD_REQUEST,  # invalid parameter
    (100, 33): K.NOT_FOUND,  # "Unsupported get request": the object does not exist
    803: K.NOT_FOUND,  # some of the aliases requested do not exist
    506: K.BAD_REQUEST,  # duplicate post
    1609005: K.BAD_REQUEST,  # error posting link: the URL could not be scraped
}


def error(response: Response) -> BodyError | None:
    """The ``error`` object of a Graph API body, if it has one."""
    code = as_int(response.get("error", "code"))
    if code is None:
        return None
    subcode = as_int(response.get("error", "error_subcode"))
    return BodyError(code, subcode, as_text(response.get("error", "message")))


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


DIALECT = Dialect(error=error, wait=wait)


@rule
def permissions(response: Response) -> Verdict | None:
    """Codes 200-299 are each a missing permission (one code per permission)."""
    found = error(response)
    if found is None or not 200 <= int(found.code) <= 299:  # type: ignore[arg-type]
        return None
    return DIALECT.verdict(response, K.PERMISSION, found.message or "permission missing", found)


@rule
def transient(response: Response) -> Verdict | None:
    """An error the body itself flags as transient, whatever its code."""
    found = error(response)
    if found is None or response.get("error", "is_transient") is not True:
        return None
    return DIALECT.verdict(response, K.RETRY_SOON, found.message or "transient error", found)


#: Facebook's own rules; compose with ``| http.rules`` for a classifier that always answers.
rules = CodeTable(DIALECT, KINDS) | permissions | transient
