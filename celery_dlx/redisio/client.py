"""Redis clients for celery_dlx: bounded waits, one way to find the URL, one way to fail.

State that every worker shares lives in Redis (rate limits, breakers, task trees, page ledgers)
and is read on a task's path, so a Redis that stops answering must cost a bounded time (socket
timeouts, one retry) and surface as an error the caller has a policy for, never as a hang.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Mapping
from typing import Any, TypeVar
from urllib.parse import unquote, urlsplit

import redis
from redis.backoff import NoBackoff
from redis.cluster import ClusterNode, RedisCluster
from redis.exceptions import ClusterError, ReadOnlyError, RedisClusterException, SlotNotCoveredError, TryAgainError
from redis.retry import Retry
from redis.sentinel import Sentinel

from ..errors import ConfigurationError

#: URL schemes of one server, as redis-py opens them.
SERVER_SCHEMES = ("redis", "rediss", "unix")
#: URL schemes of a Redis Cluster: ``redis+cluster://host:port[,host:port…][/]`` (startup nodes).
CLUSTER_SCHEMES = ("redis+cluster", "rediss+cluster")
#: URL schemes of a Sentinel-watched master: ``redis+sentinel://host:port[,…]/service[/db]``.
SENTINEL_SCHEMES = ("redis+sentinel", "rediss+sentinel")
#: Every URL scheme :func:`client_from_url` opens.
REDIS_SCHEMES = SERVER_SCHEMES + CLUSTER_SCHEMES + SENTINEL_SCHEMES
#: Socket timeouts of a shared client (:func:`shared_client`), in seconds: generous, but finite.
DEFAULT_TIMEOUT = 10.0

#: A client of one server (or of a Sentinel's master) or of a cluster.
Client = redis.Redis | RedisCluster

#: Errors that mean Redis cannot answer now (down, too slow, failing over, a cluster slot
#: without a master yet), not a bug.
UNAVAILABLE: tuple[type[Exception], ...] = (
    redis.ConnectionError, redis.TimeoutError, ReadOnlyError, ClusterError, TryAgainError, SlotNotCoveredError,
)

T = TypeVar("T")


def client_from_url(url: str, timeout: float, **options: Any) -> Client:
    """The one way celery_dlx makes a client: for ``url`` (any of :data:`REDIS_SCHEMES`), with
    ``timeout`` s socket timeouts and one retry; ``options`` go to redis-py and win.

    ``redis://``, ``rediss://``, ``unix://`` open a :class:`redis.Redis`; a cluster URL lists
    startup nodes and opens a :class:`~redis.cluster.RedisCluster` (which finds the other
    nodes, and follows failovers); a sentinel URL asks the sentinels for the master of its
    service and opens a :class:`redis.Redis` that follows the master when it changes.

    Only a cluster client talks to Redis when it is made (to learn the cluster's layout): when
    no startup node answers, this raises :class:`redis.ConnectionError` (one of
    :data:`UNAVAILABLE`), not a configuration error.
    """
    scheme = url.split("://", 1)[0] if isinstance(url, str) and "://" in url else None
    defaults = {"socket_timeout": timeout, "socket_connect_timeout": timeout, "retry": Retry(NoBackoff(), 1)}
    settings = {**defaults, **options}
    try:
        if scheme in SERVER_SCHEMES:
            return redis.Redis.from_url(url, **settings)
        if scheme in CLUSTER_SCHEMES:
            return _cluster(url, settings)
        if scheme in SENTINEL_SCHEMES:
            return _sentinel(url, settings)
    except ConfigurationError:
        raise
    except (ValueError, RedisClusterException) as exc:
        raise ConfigurationError(f"bad Redis URL {_safe(url)}: {exc}") from exc
    raise ConfigurationError(f"not a Redis URL: {_safe(url)} (schemes: {', '.join(REDIS_SCHEMES)})")


def _cluster(url: str, settings: dict[str, Any]) -> RedisCluster:
    """A cluster client for ``redis+cluster://[user:password@]host:port,host:port/[?options]``:
    redis-py reads the first node's URL (credentials, TLS, options), the others are more
    startup nodes."""
    parts = urlsplit(url)
    auth, nodes = _nodes(parts.netloc, url)
    if parts.path.strip("/") not in ("", "0"):
        raise ConfigurationError(f"bad Redis URL {_safe(url)}: a cluster has database 0 only")
    scheme = parts.scheme.removesuffix("+cluster")
    (host, port), more = nodes[0], nodes[1:]
    first = f"{scheme}://{auth}{_netloc(host, port)}/" + (f"?{parts.query}" if parts.query else "")
    startup = [ClusterNode(h, p) for h, p in more]  # type: ignore[no-untyped-call]
    try:
        return RedisCluster.from_url(first, startup_nodes=startup, **settings)
    except RedisClusterException as exc:  # it asks the nodes for the cluster's layout right away
        if isinstance(exc.__cause__ or exc.__context__, (redis.ConnectionError, redis.TimeoutError)):
            raise redis.ConnectionError(f"no startup node of {_safe(url)} answered: {exc}") from exc
        raise


def _sentinel(url: str, settings: dict[str, Any]) -> redis.Redis:
    """The master of ``redis+sentinel://[user:password@]host:port,…/service[/db]``: the
    sentinels are asked with the same timeouts, the credentials are the data nodes'."""
    parts = urlsplit(url)
    auth, nodes = _nodes(parts.netloc, url)
    service, _, db = parts.path.strip("/").partition("/")
    if not service or (db and not db.isdigit()):
        raise ConfigurationError(f"bad Redis URL {_safe(url)}: expected …/service_name[/db]")
    user, _, password = auth.removesuffix("@").partition(":")
    if user:
        settings.setdefault("username", unquote(user))
    if password:
        settings.setdefault("password", unquote(password))
    if parts.scheme.startswith("rediss"):
        settings.setdefault("ssl", True)
    timeouts: dict[str, Any] = {k: settings[k] for k in ("socket_timeout", "socket_connect_timeout") if k in settings}
    sentinel = Sentinel(nodes, sentinel_kwargs=timeouts)
    master: redis.Redis = sentinel.master_for(service, db=int(db or 0), **settings)
    return master


def _nodes(netloc: str, url: str) -> tuple[str, list[tuple[str, int]]]:
    """``(credentials with their '@' or '', [(host, port), …])`` of a netloc that lists nodes."""
    auth, _, hosts = netloc.rpartition("@")
    nodes = []
    for node in hosts.split(","):
        host, _, port = node.rpartition(":")
        if not host or not port.isdigit():
            raise ConfigurationError(f"bad Redis URL {_safe(url)}: each node must be host:port, got {node!r}")
        nodes.append((host.strip("[]"), int(port)))
    return (auth + "@" if auth else ""), nodes


def _netloc(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _safe(url: object) -> str:
    """``url`` without its password, for error messages."""
    return re.sub(r"(://[^:@/]*:)[^@/]*@", r"\1***@", url) if isinstance(url, str) else repr(url)


def require_timeouts(client: Client, purpose: str) -> None:
    """Refuse a client without socket timeouts: it would block a worker as long as Redis hangs."""
    options = client.get_connection_kwargs()
    missing = [name for name in ("socket_timeout", "socket_connect_timeout") if options.get(name) is None]
    if missing:
        raise ConfigurationError(
            f"the Redis client for {purpose} needs {' and '.join(missing)}: without them a Redis that "
            "stops answering blocks the worker; use RedisStorage.from_url or set them on the client"
        )


def redis_url_of(backend: Any) -> str | None:
    """``backend`` if it is a Redis URL :func:`client_from_url` opens, else None."""
    if isinstance(backend, str) and backend.split("://", 1)[0] in REDIS_SCHEMES:
        return backend
    return None


def configured_url(conf: Mapping[str, Any], setting: str) -> str | None:
    """The Redis URL of ``setting`` (``dlx_breaker_url``, ``dlx_tracking_url``), else the
    result backend's when it is Redis, else None."""
    return conf.get(setting) or redis_url_of(conf.get("result_backend"))


@functools.cache
def shared_client(url: str, timeout: float = DEFAULT_TIMEOUT) -> Client:
    """One client (one pool) per URL and process, answering ``str``; redis-py replaces its
    connections after a fork."""
    return client_from_url(url, timeout, decode_responses=True)


def guarded(call: Callable[..., T], unavailable: type[Exception], *args: Any) -> T:
    """``call(*args)``, with Redis being unreachable raised as ``unavailable``."""
    try:
        return call(*args)
    except UNAVAILABLE as exc:
        raise unavailable(f"Redis did not answer: {exc!r}") from exc
