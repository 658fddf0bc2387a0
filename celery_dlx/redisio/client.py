"""Redis clients for celery_dlx: bounded waits, one way to find the URL, one way to fail.

State that every worker shares lives in Redis (rate limits, breakers, task trees, page ledgers)
and is read on a task's path, so a Redis that stops answering must cost a bounded time (socket
timeouts, one retry) and surface as an error the caller has a policy for, never as a hang.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import redis
from redis.backoff import NoBackoff
from redis.exceptions import ReadOnlyError
from redis.retry import Retry

from ..errors import ConfigurationError

#: URL schemes redis-py opens.
REDIS_SCHEMES = ("redis", "rediss", "unix")
#: Socket timeouts of a shared client (:func:`shared_client`), in seconds: generous, but finite.
DEFAULT_TIMEOUT = 10.0

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


def redis_url_of(backend: Any) -> str | None:
    """``backend`` if it is a Redis URL redis-py can open, else None."""
    if isinstance(backend, str) and backend.split("://", 1)[0] in REDIS_SCHEMES:
        return backend
    return None


def configured_url(conf: Mapping[str, Any], setting: str) -> str | None:
    """The Redis URL of ``setting`` (``dlx_breaker_url``, ``dlx_tracking_url``), else the
    result backend's when it is Redis, else None."""
    return conf.get(setting) or redis_url_of(conf.get("result_backend"))


@functools.cache
def shared_client(url: str, timeout: float = DEFAULT_TIMEOUT) -> redis.Redis:
    """One client (one pool) per URL and process, answering ``str``; redis-py replaces its
    connections after a fork."""
    return client_from_url(url, timeout, decode_responses=True)


def guarded(call: Callable[..., T], unavailable: type[Exception], *args: Any) -> T:
    """``call(*args)``, with Redis being unreachable raised as ``unavailable``."""
    try:
        return call(*args)
    except UNAVAILABLE as exc:
        raise unavailable(f"Redis did not answer: {exc!r}") from exc
