"""How each simulated network words its answers: paths, page bodies, and its errors.

The shapes are the ones ``celery_dlx.classify`` recognises, taken from the fixtures in
``tests/fixtures/<network>/`` (which cite the networks' documentation): Twitter's
``x-rate-limit-reset`` epochs and v1.1/v2 error bodies, Facebook's Graph ``error`` objects
(OAuthException 190 with subcodes, throttling codes with usage headers) and LinkedIn's
``serviceErrorCode`` bodies with ``Retry-After``.  One deviation, because the simulator's
quota windows last seconds: Facebook's ``estimated_time_to_regain_access`` counts minutes, so
it is given as a fraction of a minute here (rounded up, never early).

Pure: no sockets, no clocks of its own; :mod:`.simulator` decides *what* happens and asks a
:class:`Wire` how its network says it.
"""

from __future__ import annotations

import json
import math
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any

from .roster import Account

#: Most items one page may hold, whatever the client asks for.
MAX_PAGE = 5000


@dataclass(frozen=True)
class Reply:
    """One HTTP answer: status, headers, and a JSON-ready body (or HTML text)."""

    status: int
    body: Any
    headers: dict[str, str] = field(default_factory=dict)

    def encoded(self) -> tuple[bytes, str]:
        """The body's bytes and content type."""
        if isinstance(self.body, str):
            return self.body.encode(), "text/html; charset=utf-8"
        return json.dumps(self.body, separators=(",", ":")).encode(), "application/json"


@dataclass(frozen=True)
class Route:
    """What a request asks for: an account's profile, or a page of its followers from ``start``."""

    kind: str  # "profile" or "page"
    account_id: str
    start: int = 0
    count: int = 0


@dataclass(frozen=True)
class Window:
    """The state of a quota window after a call: ``remaining`` calls until ``reset`` (UNIX s)."""

    limit: int
    remaining: int
    reset: float


def html(status: int, title: str) -> Reply:
    """An HTML error page, as proxies and load balancers send."""
    return Reply(status, f"<html><head><title>{status} {title}</title></head><body>{title}</body></html>")


def _int(query: dict[str, str], name: str, default: int) -> int:
    try:
        return int(query.get(name, default))
    except ValueError:
        return default


def _page_route(account_id: str, start: int, count: int) -> Route:
    return Route("page", account_id, max(start, 0), min(max(count, 1), MAX_PAGE))


class Wire(ABC):
    """One network's protocol, server side; each subclass is one network's wording."""

    network = ""

    @abstractmethod
    def route(self, path: str, query: dict[str, str]) -> Route | None:
        """What a request for ``path`` asks for; None for a path this network does not serve."""

    @abstractmethod
    def profile(self, account: Account) -> Reply:
        """The account's profile, with its follower count."""

    @abstractmethod
    def page(self, account: Account, route: Route, ids: list[int]) -> Reply:
        """The page ``route`` asked for, holding the followers ``ids`` (see :meth:`items`)."""

    @abstractmethod
    def token_limited(self, window: Window, now: float) -> Reply:
        """The refusal of a call over the token's quota, saying when ``window`` resets."""

    @abstractmethod
    def ip_limited(self, window: Window, now: float) -> Reply:
        """The refusal of a call over the client address's quota."""

    @abstractmethod
    def dead_token(self, nth: int) -> Reply:
        """The refusal of a dead token; the ``nth`` dead token of the network gets the ``nth``
        wording, so several dead tokens show several messages."""

    @abstractmethod
    def expired_token(self) -> Reply:
        """The refusal of a token that only expired (a refresh makes it work again)."""

    @abstractmethod
    def server_error(self, variant: float) -> Reply:
        """A random failure of the network's servers (``variant`` in [0, 1) picks its form)."""

    @abstractmethod
    def outage(self) -> Reply:
        """The answer while the network is down."""

    def ok_headers(self, window: Window) -> dict[str, str]:
        """Headers of a successful answer (quota headers, for networks that send them)."""
        return {}

    def items(self, account: Account, route: Route) -> list[int]:
        """The follower ids of the page ``route`` asks for; none past the end."""
        return list(account.follower_ids(route.start, route.start + route.count))


class Facebook(Wire):
    """Graph API v19.0: ``/facebook/v19.0/<id>`` and ``/facebook/v19.0/<id>/followers?offset&limit``."""

    network = "facebook"
    DEAD_TOKENS = (
        (460, "Error validating access token: The session has been invalidated because the user changed their "
              "password or Facebook has changed the session for security reasons."),
        (463, "Error validating access token: Session has expired on Tuesday, 14-Nov-23 13:00:00 PST."),
        (458, "Error validating access token: The user has not authorized application 1234567890."),
        (None, "Invalid OAuth access token - Cannot parse access token"),
    )  # fmt: skip

    def route(self, path: str, query: dict[str, str]) -> Route | None:
        parts = path.strip("/").split("/")
        if len(parts) == 3 and parts[:2] == ["facebook", "v19.0"]:
            return Route("profile", parts[2])
        if len(parts) == 4 and parts[:2] == ["facebook", "v19.0"] and parts[3] == "followers":
            return _page_route(parts[2], _int(query, "offset", 0), _int(query, "limit", 25))
        return None

    def profile(self, account: Account) -> Reply:
        return Reply(200, {"id": account.id, "followers_count": account.followers})

    def page(self, account: Account, route: Route, ids: list[int]) -> Reply:
        paging: dict[str, Any] = {}
        if route.start + route.count < account.followers:
            paging["next"] = (
                f"/facebook/v19.0/{account.id}/followers?offset={route.start + route.count}&limit={route.count}"
            )
        return Reply(200, {"data": [{"id": str(i)} for i in ids], "paging": paging})

    @staticmethod
    def _error(code: int, message: str, subcode: int | None = None, **extra: Any) -> dict[str, Any]:
        error = {"message": message, "type": "OAuthException", "code": code, "fbtrace_id": "AsimulatedTrace", **extra}
        if subcode is not None:
            error["error_subcode"] = subcode
        return {"error": error}

    def token_limited(self, window: Window, now: float) -> Reply:
        minutes = math.ceil(max(window.reset - now, 0) / 60 * 100) / 100
        usage = {"pages": [{"type": "pages", "call_count": 100, "total_cputime": 1, "total_time": 1,
                            "estimated_time_to_regain_access": minutes}]}  # fmt: skip
        body = self._error(17, "(#17) User request limit reached", 2446079, is_transient=True)
        return Reply(400, body, {"X-Business-Use-Case-Usage": json.dumps(usage)})

    def ip_limited(self, window: Window, now: float) -> Reply:
        body = self._error(4, "(#4) Application request limit reached", is_transient=True)
        return Reply(403, body, {"X-App-Usage": json.dumps({"call_count": 100, "total_cputime": 1, "total_time": 1})})

    def dead_token(self, nth: int) -> Reply:
        subcode, message = self.DEAD_TOKENS[nth % len(self.DEAD_TOKENS)]
        return Reply(400, self._error(190, message, subcode))

    def expired_token(self) -> Reply:
        message = "Error validating access token: Session has expired on Tuesday, 14-Nov-23 13:00:00 PST."
        return Reply(400, self._error(190, message, 463))

    def server_error(self, variant: float) -> Reply:
        if variant < 0.5:
            return Reply(500, self._error(1, "An unknown error occurred", is_transient=True))
        return html(502, "Bad Gateway")

    def outage(self) -> Reply:
        message = "An unexpected error has occurred. Please retry your request later."
        return Reply(503, self._error(2, message, is_transient=True))


class Twitter(Wire):
    """``/twitter/2/users/<id>`` (v2 profile) and ``/twitter/1.1/followers/ids.json?user_id&cursor&count``
    (v1.1 cursors: -1 starts, ``next_cursor`` 0 ends; here a cursor is the next offset)."""

    network = "twitter"
    DEAD_TOKENS = ((89, "Invalid or expired token."), (32, "Could not authenticate you."))

    def route(self, path: str, query: dict[str, str]) -> Route | None:
        parts = path.strip("/").split("/")
        if len(parts) == 4 and parts[:3] == ["twitter", "2", "users"]:
            return Route("profile", parts[3])
        if parts == ["twitter", "1.1", "followers", "ids.json"] and "user_id" in query:
            cursor = _int(query, "cursor", -1)
            return _page_route(query["user_id"], 0 if cursor == -1 else cursor, _int(query, "count", 5000))
        return None

    def profile(self, account: Account) -> Reply:
        metrics = {"followers_count": account.followers, "following_count": 0}
        return Reply(200, {"data": {"id": account.id, "username": account.id, "public_metrics": metrics}})

    def page(self, account: Account, route: Route, ids: list[int]) -> Reply:
        end = route.start + len(ids)
        following = end if ids and end < account.followers else 0
        body = {"ids": ids, "next_cursor": following, "next_cursor_str": str(following),
                "previous_cursor": 0, "previous_cursor_str": "0"}  # fmt: skip
        return Reply(200, body)

    @staticmethod
    def _quota(window: Window) -> dict[str, str]:
        return {
            "x-rate-limit-limit": str(window.limit),
            "x-rate-limit-remaining": str(window.remaining),
            "x-rate-limit-reset": str(math.ceil(window.reset)),
        }

    def ok_headers(self, window: Window) -> dict[str, str]:
        return self._quota(window)

    def token_limited(self, window: Window, now: float) -> Reply:
        return Reply(429, {"errors": [{"code": 88, "message": "Rate limit exceeded"}]}, self._quota(window))

    def ip_limited(self, window: Window, now: float) -> Reply:
        body = {"title": "Too Many Requests", "detail": "Too Many Requests", "type": "about:blank", "status": 429}
        return Reply(429, body, self._quota(window))

    def dead_token(self, nth: int) -> Reply:
        code, message = self.DEAD_TOKENS[nth % len(self.DEAD_TOKENS)]
        return Reply(401, {"errors": [{"code": code, "message": message}]})

    def expired_token(self) -> Reply:
        """An OAuth 2.0 user token past its two hours: RFC 6750's challenge says so."""
        challenge = 'Bearer realm="api", error="invalid_token", error_description="The access token expired"'
        body = {"title": "Unauthorized", "type": "about:blank", "status": 401, "detail": "Unauthorized"}
        return Reply(401, body, {"WWW-Authenticate": challenge})

    def server_error(self, variant: float) -> Reply:
        if variant < 0.5:
            return Reply(500, {"errors": [{"code": 131, "message": "Internal error"}]})
        return html(502, "Bad Gateway")

    def outage(self) -> Reply:
        return html(503, "Twitter is over capacity")


class LinkedIn(Wire):
    """``/linkedin/v2/networkSizes/<id>`` (an approximate follower count) and
    ``/linkedin/v2/followers/<id>?start&count`` (no total).  With ``endless_tail`` the account
    has LinkedIn's off-by-one: past the end, every page holds the last follower again."""

    network = "linkedin"
    DEAD_TOKENS = (
        (65601, "REVOKED_ACCESS_TOKEN", "The token used in the request has been revoked by the user"),
        (65602, "EXPIRED_ACCESS_TOKEN", "The token used in the request has expired"),
    )

    def route(self, path: str, query: dict[str, str]) -> Route | None:
        parts = path.strip("/").split("/")
        if len(parts) == 4 and parts[:3] == ["linkedin", "v2", "networkSizes"]:
            return Route("profile", parts[3])
        if len(parts) == 4 and parts[:3] == ["linkedin", "v2", "followers"]:
            return _page_route(parts[3], _int(query, "start", 0), _int(query, "count", 10))
        return None

    def profile(self, account: Account) -> Reply:
        """Rounded to hundreds, as LinkedIn's sizes are approximate (the list has no total)."""
        return Reply(200, {"firstDegreeSize": round(account.followers, -2)})

    def items(self, account: Account, route: Route) -> list[int]:
        ids = super().items(account, route)
        if not ids and account.endless_tail and account.followers:
            return [account.first_follower + account.followers - 1]
        return ids

    def page(self, account: Account, route: Route, ids: list[int]) -> Reply:
        elements = [{"follower": f"urn:li:person:{i}"} for i in ids]
        return Reply(200, {"elements": elements, "paging": {"start": route.start, "count": route.count, "links": []}})

    @staticmethod
    def _retry_after(window: Window, now: float) -> dict[str, str]:
        return {"Retry-After": str(math.ceil(max(window.reset - now, 0)))}

    def token_limited(self, window: Window, now: float) -> Reply:
        body = {"message": "Resource level throttle limit reached", "status": 429, "serviceErrorCode": 101}
        return Reply(429, body, self._retry_after(window, now))

    def ip_limited(self, window: Window, now: float) -> Reply:
        return Reply(429, {"message": "Too Many Requests", "status": 429}, self._retry_after(window, now))

    def dead_token(self, nth: int) -> Reply:
        code, name, message = self.DEAD_TOKENS[nth % len(self.DEAD_TOKENS)]
        return Reply(401, {"message": message, "status": 401, "serviceErrorCode": code, "code": name})

    def expired_token(self) -> Reply:
        code, name, message = self.DEAD_TOKENS[1]
        return Reply(401, {"message": message, "status": 401, "serviceErrorCode": code, "code": name})

    def server_error(self, variant: float) -> Reply:
        if variant < 0.5:
            return Reply(500, {"message": "Internal Server Error", "status": 500})
        return html(504, "Gateway Timeout")

    def outage(self) -> Reply:
        return html(503, "Service Unavailable")


WIRES: dict[str, Wire] = {wire.network: wire for wire in (Facebook(), Twitter(), LinkedIn())}
