"""Redis access shared by the rate limiter and the circuit breaker: bounded waits, packaged Lua.

Both keep state that every worker shares in Redis and both are asked before a network call, so
a Redis that stops answering must cost a bounded time (socket timeouts, one retry) and surface
as a "storage unavailable" error the caller has a policy for, never as a hang.  Their decisions
are Lua scripts shipped in the package: ``lua/clock.lua`` here, then the package's
``lua/lib.lua``, then the script itself.
"""

from __future__ import annotations

from collections.abc import Callable
from importlib.resources import files
from typing import Any, TypeVar

import redis
from redis.backoff import NoBackoff
from redis.exceptions import ReadOnlyError
from redis.retry import Retry

from ..errors import ConfigurationError

#: Errors that mean Redis cannot answer now (down, too slow, failing over), not a bug.
UNAVAILABLE: tuple[type[Exception], ...] = (redis.ConnectionError, redis.TimeoutError, ReadOnlyError)

T = TypeVar("T")


def client_from_url(url: str, timeout: float, **options: Any) -> redis.Redis:
    """A client for ``url`` with ``timeout`` s socket timeouts and one retry; ``options`` go to
    :meth:`redis.Redis.from_url` and win."""
    defaults = {"socket_timeout": timeout, "socket_connect_timeout": timeout, "retry": Retry(NoBackoff(), 1)}
    return redis.Redis.from_url(url, **{**defaults, **options})


def require_timeouts(client: redis.Redis, purpose: str) -> None:
    """Refuse a client without socket timeouts: it would block a worker as long as Redis hangs."""
    options = client.get_connection_kwargs()
    missing = [name for name in ("socket_timeout", "socket_connect_timeout") if options.get(name) is None]
    if missing:
        raise ConfigurationError(
            f"the Redis client for {purpose} needs {' and '.join(missing)}: without them a Redis that "
            "stops answering blocks the worker; use RedisStorage.from_url or set them on the client"
        )


def script_source(package: str, name: str) -> str:
    """Source of script ``name`` of ``package``: the shared clock, the package's lib, the script."""
    own = files(package) / "lua"
    parts = [files(__package__) / "lua" / "clock.lua", own / "lib.lua", own / f"{name}.lua"]
    return "\n".join(part.read_text() for part in parts)


def clock_argument(clock: Callable[[], float] | None) -> str | int:
    """The scripts' clock argument: ``''`` for Redis's own clock, else the injected time in µs."""
    return "" if clock is None else round(clock() * 1_000_000)


def guarded(call: Callable[..., T], unavailable: type[Exception], *args: Any) -> T:
    """``call(*args)``, with Redis being unreachable raised as ``unavailable``."""
    try:
        return call(*args)
    except UNAVAILABLE as exc:
        raise unavailable(f"Redis did not answer: {exc!r}") from exc
