"""Do a task's side effect once, even when the broker delivers the task twice.

celery_dlx retries are at-least-once: a worker killed between the retry's confirm and the ack
of the original delivery, or between a side effect and its ack (``acks_late``), runs the task
again.  :class:`Idempotency` keeps a dedupe record per *key* (a name for the side effect, such
as ``"post:{account}:{post_id}"``) so the second run sees that the work is already done::

    from celery_dlx.idempotency import Idempotency, InProgress
    from celery_dlx.redisio.client import client_from_url

    once = Idempotency(client_from_url(REDIS_URL, 1.0), ttl=7 * 24 * 3600, lease=60)  # any Redis URL

    @app.task(bind=True, base=DLXTask, acks_late=True)
    def publish_post(self, account_id, post_id):
        try:
            with once.claim(f"post:{account_id}:{post_id}") as claim:
                if claim:                  # False: an earlier delivery already did it
                    api.publish(account_id, post_id)
        except InProgress as exc:          # another delivery holds the lease right now
            raise self.retry(countdown=exc.retry_after, exc=exc)

    @once.idempotent(lambda account_id, post_id: f"post:{account_id}:{post_id}")
    def publish(account_id, post_id): ...  # returns None without calling when already done

How a key moves (all steps atomic: Lua on Redis, a lock in memory):

- ``claim``: ``done`` → not acquired (``bool(claim)`` is False, the body skips the work);
  free → taken with a *lease* (``SET NX PX lease``, a random token as value) and acquired;
  held by another delivery → :class:`InProgress` with the lease's remaining time, so a
  ``DLXTask`` retries it later through the delay queues (``self.retry(countdown=exc.retry_after)``).
- the body succeeds → the key becomes ``done`` for ``ttl`` seconds, only if the token is still
  ours (otherwise :class:`LeaseLost`: the lease ran out and another delivery may repeat the work).
- the body raises → the lease is released, so the retry can do the work.
- the process dies → the lease expires after ``lease`` seconds and a redelivery does the work.

Exactly once for Redis side effects: stage them on the claim (``claim.call("HINCRBY", h, f, 1)``)
and they are applied in the same atomic step that marks the key done, so a crash leaves either
both or neither.  Each staged command names one key, its first argument (``HINCRBY``, ``SET``,
``SADD``, ``LPUSH``, ``EXPIRE``…).

Keys: a record is ``<prefix>:{<key>}``, tagged by its key, so records spread over a Redis
Cluster.  On a cluster, staged commands must name keys in the record's slot: keys that carry
the same tag (``claim.local("effects")``), or give the ``Idempotency`` a prefix with a hash tag
of its own (``prefix="{once}:app"``): every record and every key with that tag then share one
slot, at the price of putting them all on one node.

For side effects elsewhere (an HTTP call) the guarantee is "once unless the process dies
between the side effect and the commit", a window of one Redis round trip; pass the remote
API's own idempotency key where it has one.
"""

from __future__ import annotations

import functools
import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, Protocol, TypeVar

from .errors import CeleryDLXError
from .redisio.keys import tagged
from .redisio.scripts import lua_source

#: Value of a key whose side effect is done (a lease holds a random hex token instead).
DONE = "done"
F = TypeVar("F", bound=Callable[..., Any])


class InProgress(CeleryDLXError):
    """Another delivery holds the lease on ``key``: retry after ``retry_after`` seconds."""

    def __init__(self, key: str, retry_after: float) -> None:
        self.key = key
        self.retry_after = retry_after
        super().__init__(f"side effect {key!r} is being done by another delivery; retry in {retry_after:.1f} s")


class LeaseLost(CeleryDLXError):
    """The lease on ``key`` expired before the body finished; the staged Redis effects were not
    applied and another delivery may do (or have done) the work.  Raise ``lease`` above the
    body's longest run."""

    def __init__(self, key: str) -> None:
        self.key = key
        super().__init__(f"lease on {key!r} expired before the side effect was committed; raise the lease")


class Store(Protocol):
    """Where dedupe records live.  Each method is atomic."""

    def acquire(self, key: str, token: str, lease_ms: int) -> tuple[str, int]:
        """``("done", 0)``, ``("acquired", 0)`` or ``("busy", remaining lease ms)``."""

    def commit(self, key: str, token: str, ttl_ms: int, ops: list[list[Any]]) -> bool:
        """If ``key`` still holds ``token``: apply ``ops`` and mark it done; else False."""

    def release(self, key: str, token: str) -> None:
        """Delete ``key`` if it still holds ``token``."""

    def peek(self, key: str) -> str | None:
        """The value of ``key`` (a token or ``"done"``), or None."""


class RedisStore:
    """Dedupe records in Redis (one server, a Sentinel's master or a cluster: see the module
    docstring for the keys staged commands may name), each transition one Lua script."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self._acquire = client.register_script(lua_source("celery_dlx.redisio", "once_acquire"))
        self._commit = client.register_script(lua_source("celery_dlx.redisio", "once_commit"))
        self._release = client.register_script(lua_source("celery_dlx.redisio", "once_release"))

    def acquire(self, key: str, token: str, lease_ms: int) -> tuple[str, int]:
        state, pttl = self._acquire(keys=[key], args=[token, lease_ms, DONE])
        return (state.decode() if isinstance(state, bytes) else str(state)), int(pttl)

    def commit(self, key: str, token: str, ttl_ms: int, ops: list[list[Any]]) -> bool:
        keys = [key, *(op[1] for op in ops)]
        return bool(self._commit(keys=keys, args=[token, ttl_ms, json.dumps(ops), DONE]))

    def release(self, key: str, token: str) -> None:
        self._release(keys=[key], args=[token])

    def peek(self, key: str) -> str | None:
        value = self.client.get(key)
        return value.decode() if isinstance(value, bytes) else value


class MemoryStore:
    """Dedupe records in this process (tests, single-process tools).  Staged operations are
    callables here: ``claim.call(fn, *args)`` runs ``fn(*args)`` at commit."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._data: dict[str, tuple[str, float]] = {}

    def _get(self, key: str) -> tuple[str, float] | None:
        entry = self._data.get(key)
        if entry is not None and entry[1] <= self._clock():
            del self._data[key]
            return None
        return entry

    def acquire(self, key: str, token: str, lease_ms: int) -> tuple[str, int]:
        with self._lock:
            entry = self._get(key)
            if entry is not None and entry[0] == DONE:
                return "done", 0
            if entry is not None:
                return "busy", max(0, int((entry[1] - self._clock()) * 1000))
            self._data[key] = (token, self._clock() + lease_ms / 1000)
            return "acquired", 0

    def commit(self, key: str, token: str, ttl_ms: int, ops: list[list[Any]]) -> bool:
        with self._lock:
            entry = self._get(key)
            if entry is None or entry[0] != token:
                return False
            for fn, *args in ops:
                fn(*args)
            self._data[key] = (DONE, self._clock() + ttl_ms / 1000)
            return True

    def release(self, key: str, token: str) -> None:
        with self._lock:
            entry = self._get(key)
            if entry is not None and entry[0] == token:
                del self._data[key]

    def peek(self, key: str) -> str | None:
        with self._lock:
            entry = self._get(key)
            return entry[0] if entry else None


class Claim:
    """What :meth:`Idempotency.claim` yields: true when this delivery does the work."""

    def __init__(self, key: str, acquired: bool, record: str = "") -> None:
        self.key = key
        self.acquired = acquired
        #: The storage key of the record (``<prefix>:{<key>}``).
        self.record = record
        self.ops: list[list[Any]] = []

    def __bool__(self) -> bool:
        return self.acquired

    def call(self, *op: Any) -> None:
        """Stage a Redis command (``"HINCRBY", "h", "f", 1``: its key first) applied atomically
        with the commit."""
        if not self.acquired:
            raise RuntimeError(f"{self.key!r} is already done; nothing may be staged")
        if op and isinstance(op[0], str) and len(op) < 2:
            raise ValueError(f"a staged command names a key after the command, got {op!r}")
        self.ops.append(list(op))

    def local(self, name: str) -> str:
        """A key in the record's Redis Cluster slot (``<record>:<name>``), for staged commands."""
        return f"{self.record}:{name}"

    def __repr__(self) -> str:
        return f"Claim({self.key!r}, acquired={self.acquired})"


class Idempotency:
    """Dedupe records for side effects: ``claim`` (context manager) or ``idempotent`` (decorator).

    ``client`` is a redis-py client (one server, a cluster or a Sentinel's master, e.g. from
    :func:`~celery_dlx.redisio.client.client_from_url`) or a :class:`Store`.  ``ttl`` (seconds)
    is how long a done key is remembered: longer than the longest time a duplicate can arrive
    (the task's whole retry schedule).  ``lease`` (seconds) is how long a claim blocks other deliveries: longer
    than the side effect takes, shorter than you are willing to wait after a crash.
    """

    def __init__(
        self,
        client: Any,
        *,
        prefix: str = "celery_dlx:once",
        ttl: float = 7 * 24 * 3600,
        lease: float = 60,
    ) -> None:
        for name, value in (("ttl", ttl), ("lease", lease)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < float("inf"):
                raise ValueError(f"{name} must be a positive number of seconds, got {value!r}")
        if ttl < lease:
            raise ValueError(f"ttl ({ttl} s) must be at least the lease ({lease} s)")
        self.store: Store = client if isinstance(client, (RedisStore, MemoryStore)) else RedisStore(client)
        self.prefix = prefix
        self.ttl_ms = int(ttl * 1000)
        self.lease_ms = max(1, int(lease * 1000))

    def record_key(self, key: str) -> str:
        """The storage key of ``key``'s record: ``<prefix>:{<key>}``, tagged by ``key``."""
        if not isinstance(key, str) or not key:
            raise ValueError(f"an idempotency key must be a non-empty string, got {key!r}")
        return tagged(self.prefix, key)

    @contextmanager
    def claim(self, key: str) -> Iterator[Claim]:
        """Claim ``key``; the body does the work when the claim is true (see module docs).

        Raises :class:`InProgress` when another delivery holds the lease and :class:`LeaseLost`
        when the lease ran out before the body finished.
        """
        full, token = self.record_key(key), uuid.uuid4().hex
        state, pttl = self.store.acquire(full, token, self.lease_ms)
        if state == "done":
            yield Claim(key, False, full)
            return
        if state == "busy":
            raise InProgress(key, max(pttl, 0) / 1000 or self.lease_ms / 1000)
        claim = Claim(key, True, full)
        try:
            yield claim
        except BaseException:
            self.store.release(full, token)
            raise
        if not self.store.commit(full, token, self.ttl_ms, claim.ops):
            raise LeaseLost(key)

    def done(self, key: str) -> bool:
        """True when ``key``'s side effect is recorded as done (for checks and tests)."""
        return self.store.peek(self.record_key(key)) == DONE

    def idempotent(self, key: Callable[..., str] | str) -> Callable[[F], F]:
        """Decorator: call the function only if ``key`` (a string, or a function of the same
        arguments returning one) is not done yet; return its result, or None when skipped."""

        def decorate(fn: F) -> F:
            @functools.wraps(fn)
            def wrapper(*args: Any, **kwargs: Any) -> Any:
                name = key(*args, **kwargs) if callable(key) else key
                with self.claim(name) as claim:
                    if claim:
                        return fn(*args, **kwargs)
                return None

            return wrapper  # type: ignore[return-value]

        return decorate
