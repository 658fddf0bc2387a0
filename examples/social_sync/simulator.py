"""A local, flaky simulator of three social APIs (standard library only).

It serves paginated follower lists for the accounts of a :mod:`.roster` and fails the way
the real APIs do:

- **rate limits** per token and per client address, in fixed windows of a few seconds, answered
  in each network's wording with the reset (:data:`QUOTAS`; see :mod:`.wire`);
- **dead tokens**: Facebook's OAuthException 190 with several subcodes and messages, Twitter's
  code 89/32, LinkedIn's 65601/65602; a refresh (``GET /oauth/refresh?account=``) fails for
  them with RFC 6749's ``invalid_grant``;
- **expired tokens**: some live accounts' issued tokens have expired (:attr:`Faults.expired_rate`);
  the network answers its "expired" wording until the app refreshes the token, which then works;
- **LinkedIn's off-by-one**: past the end of some accounts' lists, endless 1-item pages;
- **random 5xx** (JSON or an HTML page from a proxy) and **slow answers** that outlast a
  client's read timeout;
- **outages** of a few seconds per network, timed from the first request.

Seeded: whether a request fails is a function of the seed, the request and how often that
exact request was seen, so a run meets the same failures whatever order its concurrent
requests arrive in (rate limits and outages depend on timing, by nature).  Followers are a
function of the account (:meth:`.roster.Account.follower_ids`), so the expected set is known.

Run it with :class:`SocialAPI` (``with SocialAPI(accounts, faults) as api: api.url``); it serves
from threads of the calling process and counts what it answered (:meth:`SocialAPI.stats`).
"""

from __future__ import annotations

import hashlib
import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from urllib.parse import parse_qsl, urlsplit

from .roster import Account
from .wire import WIRES, Reply, Route, Window, Wire, html


@dataclass(frozen=True)
class Quota:
    """At most ``limit`` calls per fixed window of ``window`` seconds (windows start at
    multiples of ``window`` in UNIX time)."""

    limit: int
    window: float

    def __str__(self) -> str:
        """The rate as celery_dlx writes it (``"15/3 seconds"``)."""
        return f"{self.limit}/{self.window:g} seconds"


@dataclass(frozen=True)
class Quotas:
    """A network's quotas: per access token, and per client address over all tokens."""

    token: Quota
    ip: Quota


#: The quotas the simulated networks enforce.  Twitter and LinkedIn publish their per-token
#: quota (the demo app configures it); Facebook's is dynamic, learned from its answers.
QUOTAS = {
    "facebook": Quotas(token=Quota(10, 5.0), ip=Quota(30, 5.0)),
    "twitter": Quotas(token=Quota(5, 3.0), ip=Quota(30, 5.0)),
    "linkedin": Quotas(token=Quota(20, 10.0), ip=Quota(30, 5.0)),
}

#: The simulator serves on loopback only.
HOST = "127.0.0.1"

#: Names of the counters :meth:`SocialAPI.stats` reports per network.
CALLS, OK, ITEMS = "calls", "ok", "items"
TOKEN_LIMITED, IP_LIMITED, AUTH_INVALID = "token_limited", "ip_limited", "auth_invalid"
SERVER_ERROR, SLOW, OUTAGE, NOT_FOUND = "server_error", "slow", "outage", "not_found"
TOKEN_EXPIRED, REFRESHED = "token_expired", "refreshed"
#: The simulated token endpoint (all networks): ``GET /oauth/refresh?account=<id>``.
REFRESH_PATH = "/oauth/refresh"


@dataclass(frozen=True)
class Outage:
    """``network`` answers nothing useful from ``start`` to ``start + duration`` seconds after
    the simulator's first request."""

    network: str
    start: float
    duration: float

    def covers(self, network: str, elapsed: float) -> bool:
        return network == self.network and self.start <= elapsed < self.start + self.duration


@dataclass(frozen=True)
class Faults:
    """What goes wrong: the share of calls answered with a 5xx (``error_rate``) and answered
    ``slow_seconds`` late (``slow_rate``), and the outages."""

    seed: int = 0
    error_rate: float = 0.03
    slow_rate: float = 0.01
    slow_seconds: float = 3.5
    outages: tuple[Outage, ...] = ()
    #: Share of live accounts whose issued token has expired (at least one when any is live);
    #: the demo's seeded faults set it, a bare ``Faults()`` expires nothing.
    expired_rate: float = 0.0

    @classmethod
    def seeded(cls, seed: int, networks: Iterable[str], within: float, **rates: float) -> Faults:
        """One outage of 3-5 s per network, starting at a seeded time in the first ``within`` s,
        and a quarter of the live accounts' tokens expired."""
        rates.setdefault("expired_rate", 0.25)
        rng = random.Random(f"outages:{seed}")
        outages = tuple(
            Outage(network, round(rng.uniform(within * 0.2, within), 1), round(rng.uniform(3.0, 5.0), 1))
            for network in networks
        )
        return cls(seed=seed, outages=outages, **rates)

    def draw(self, *parts: object) -> float:
        """A number in [0, 1) that depends only on the seed and ``parts``."""
        digest = hashlib.blake2b(repr((self.seed, *parts)).encode(), digest_size=8).digest()
        return int.from_bytes(digest, "big") / 2**64


class FixedWindows:
    """Call counts per key in fixed windows (thread-safe)."""

    def __init__(self) -> None:
        self._counts: dict[tuple[str, ...], tuple[int, int]] = {}
        self._lock = threading.Lock()

    def take(self, key: tuple[str, ...], quota: Quota, now: float) -> tuple[bool, Window]:
        """Count one call under ``quota`` if it fits; ``(allowed, window after the call)``.
        A refused call is not counted."""
        index = int(now // quota.window)
        with self._lock:
            used = self._used(key, index)
            allowed = used < quota.limit
            if allowed:
                used += 1
                self._counts[key] = (index, used)
        return allowed, Window(quota.limit, quota.limit - used, (index + 1) * quota.window)

    def peek(self, key: tuple[str, ...], quota: Quota, now: float) -> Window:
        """The window of ``key`` now, without counting a call."""
        index = int(now // quota.window)
        with self._lock:
            used = self._used(key, index)
        return Window(quota.limit, max(quota.limit - used, 0), (index + 1) * quota.window)

    def _used(self, key: tuple[str, ...], index: int) -> int:
        window_index, used = self._counts.get(key, (index, 0))
        return used if window_index == index else 0


@dataclass(frozen=True)
class Request:
    """What the simulator needs to know about one HTTP request."""

    path: str
    query: dict[str, str] = field(default_factory=dict)
    token: str | None = None
    client: str = "127.0.0.1"


@dataclass(frozen=True)
class Answer:
    """A reply, and how long to sit on it before sending."""

    reply: Reply
    delay: float = 0.0


class SocialAPI:
    """The simulated APIs for ``accounts``, failing as ``faults`` says.

    :meth:`answer` is the whole behaviour (no sockets); :meth:`start` serves it over HTTP on
    127.0.0.1 (an ephemeral port by default) from background threads.
    """

    def __init__(
        self,
        accounts: Iterable[Account],
        faults: Faults = Faults(),
        quotas: dict[str, Quotas] = QUOTAS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.accounts = {account.id: account for account in accounts}
        self.faults = faults
        self.quotas = quotas
        self.clock = clock
        self._dead_rank = _dead_rank(self.accounts.values())
        #: Accounts whose issued token has expired, and the tokens refreshes issued.
        self.expired = _expired(self.accounts.values(), faults)
        self._refreshed: dict[str, str] = {}
        self._windows = FixedWindows()
        self._seen: Counter[tuple[str, str]] = Counter()
        self._counts = {network: Counter[str]() for network in WIRES}
        self._lock = threading.Lock()
        self._first_call: float | None = None
        self._server: ThreadingHTTPServer | None = None
        self._stopping = threading.Event()

    def answer(self, request: Request) -> Answer:
        """The answer to ``request``, counted in :meth:`stats`."""
        if request.path == REFRESH_PATH:
            return Answer(self._refresh(request.query.get("account", "")))
        network = request.path.strip("/").split("/", 1)[0]
        wire = WIRES.get(network)
        route = wire.route(request.path, request.query) if wire else None
        if wire is None or route is None:
            return Answer(html(404, "Not Found"))
        now = self.clock()
        fault = self._fault(request)
        outcome, reply = self._refusal(wire, route, request, now, fault)
        self._count(network, CALLS, outcome)
        if reply is not None:
            return Answer(reply)
        if fault == SLOW:
            self._count(network, SLOW)
        return Answer(self._serve(wire, route, now), self.faults.slow_seconds if fault == SLOW else 0.0)

    def _refusal(
        self, wire: Wire, route: Route, request: Request, now: float, fault: str | None
    ) -> tuple[str, Reply | None]:
        """``(counter, reply)`` of the failure that answers ``request``, checked in the order
        outage, address quota, unknown account, dead or wrong token, token quota, server error;
        ``(OK, None)`` when none does."""
        network, quotas = wire.network, self.quotas[wire.network]
        if self._in_outage(network, now):
            return OUTAGE, wire.outage()
        allowed, window = self._windows.take(("ip", network, request.client), quotas.ip, now)
        if not allowed:
            return IP_LIMITED, wire.ip_limited(window, now)
        account = self.accounts.get(route.account_id)
        if account is None or account.network != network:
            return NOT_FOUND, html(404, "Not Found")
        if account.id in self.expired and request.token == account.token:
            return TOKEN_EXPIRED, wire.expired_token()
        if account.dead or request.token != self._refreshed.get(account.id, account.token):
            return AUTH_INVALID, wire.dead_token(self._dead_rank.get(account.id, 0))
        allowed, window = self._windows.take(("token", network, account.token), quotas.token, now)
        if not allowed:
            return TOKEN_LIMITED, wire.token_limited(window, now)
        if fault == SERVER_ERROR:
            return SERVER_ERROR, wire.server_error(self.faults.draw("variant", request.path, request.query))
        return OK, None

    def _refresh(self, account_id: str) -> Reply:
        """The token endpoint: a new token for an expired one; RFC 6749 ``invalid_grant`` for a
        dead account (its grant was revoked) or an unknown one."""
        account = self.accounts.get(account_id)
        if account is None or account.dead or account.id not in self.expired:
            return Reply(400, {"error": "invalid_grant", "error_description": "The refresh token is invalid or revoked."})
        with self._lock:
            token = self._refreshed.setdefault(account.id, f"{account.token}-refreshed")
        self._count(account.network, REFRESHED)
        return Reply(200, {"access_token": token, "token_type": "bearer", "expires_in": 3600})

    def _serve(self, wire: Wire, route: Route, now: float) -> Reply:
        account = self.accounts[route.account_id]
        if route.kind == "profile":
            reply = wire.profile(account)
        else:
            ids = wire.items(account, route)
            reply = wire.page(account, route, ids)
            self._count(wire.network, ITEMS, n=len(ids))
        window = self._windows.peek(("token", wire.network, account.token), self.quotas[wire.network].token, now)
        return Reply(reply.status, reply.body, {**reply.headers, **wire.ok_headers(window)})

    def _fault(self, request: Request) -> str | None:
        """SERVER_ERROR, SLOW or None for this occurrence of this exact request."""
        key = (request.path, repr(sorted(request.query.items())))
        with self._lock:
            occurrence = self._seen[key]
            self._seen[key] += 1
        share = self.faults.draw(*key, occurrence)
        if share < self.faults.error_rate:
            return SERVER_ERROR
        if share < self.faults.error_rate + self.faults.slow_rate:
            return SLOW
        return None

    def _in_outage(self, network: str, now: float) -> bool:
        with self._lock:
            if self._first_call is None:
                self._first_call = now
            elapsed = now - self._first_call
        return any(outage.covers(network, elapsed) for outage in self.faults.outages)

    def _count(self, network: str, *names: str, n: int = 1) -> None:
        with self._lock:
            for name in names:
                self._counts[network][name] += n

    def stats(self) -> dict[str, Counter[str]]:
        """``{network: Counter}`` of calls and outcomes (see the counter names above)."""
        with self._lock:
            return {network: Counter(counts) for network, counts in self._counts.items()}

    # -- HTTP -----------------------------------------------------------------------------

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("the simulator is not serving; call start()")
        return f"http://{HOST}:{self._server.server_address[1]}"

    def start(self, port: int = 0) -> SocialAPI:
        """Serve on 127.0.0.1:``port`` (0: any free port) from a background thread."""
        server = ThreadingHTTPServer((HOST, port), _Handler)
        server.daemon_threads = True
        server.api = self  # type: ignore[attr-defined]
        self._server = server
        threading.Thread(target=server.serve_forever, name="social-api", daemon=True).start()
        return self

    def stop(self) -> None:
        """Stop serving; slow answers still waiting are cut short."""
        self._stopping.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def hold(self, seconds: float) -> None:
        """Sit on a slow answer for ``seconds`` (less if the simulator stops)."""
        self._stopping.wait(seconds)

    def __enter__(self) -> SocialAPI:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def _expired(accounts: Iterable[Account], faults: Faults) -> frozenset[str]:
    """The live accounts whose issued token has expired: a seeded share, at least one."""
    live = [account for account in accounts if not account.dead]
    chosen = {account.id for account in live if faults.draw("expired", account.id) < faults.expired_rate}
    if not chosen and live and faults.expired_rate > 0:
        chosen = {min(live, key=lambda account: faults.draw("expired", account.id)).id}
    return frozenset(chosen)


def _dead_rank(accounts: Iterable[Account]) -> dict[str, int]:
    """Each dead account's rank among the dead accounts of its network (picks its wording)."""
    ranks: Counter[str] = Counter()
    rank: dict[str, int] = {}
    for account in accounts:
        if account.dead:
            rank[account.id] = ranks[account.network]
            ranks[account.network] += 1
    return rank


class _Handler(BaseHTTPRequestHandler):
    """GET only; ``Authorization: Bearer <token>`` carries the token."""

    server_version = "SocialAPISimulator/1.0"

    def do_GET(self) -> None:
        api: SocialAPI = self.server.api  # type: ignore[attr-defined]
        url = urlsplit(self.path)
        authorization = self.headers.get("Authorization", "")
        token = authorization[7:] if authorization.startswith("Bearer ") else None
        answer = api.answer(Request(url.path, dict(parse_qsl(url.query)), token, self.client_address[0]))
        if answer.delay:
            api.hold(answer.delay)
        body, content_type = answer.reply.encoded()
        try:
            self.send_response(answer.reply.status)
            for name, value in {**answer.reply.headers, "Content-Type": content_type}.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client stopped waiting (its read timeout): that was the point

    def log_message(self, format: str, *args: object) -> None:
        """Silent: the demo reports counts, not a line per request."""
