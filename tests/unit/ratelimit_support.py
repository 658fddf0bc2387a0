"""Shared by the rate-limit storage tests: an injectable clock, a real Redis with a unique prefix,
and the ``storage`` / ``make_limiter`` fixtures that run a test on memory and on every Redis flavour.

Real-Redis fixtures skip when Redis is absent, but fail under CI=true (the integration
suite's rule), so CI cannot go green by skipping.  ``redis_url`` and ``redis_client`` come in
three flavours, so every test that takes them runs on each: the standalone Redis on
127.0.0.1:6379, a local Redis Cluster (marker ``redis_cluster``) and a local Sentinel-watched
master (marker ``redis_sentinel``); ``make test-redis-cluster`` runs the last two (see
``tests/conftest.py``).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator

import pytest

from celery_dlx.ratelimit import Limit, Limiter, MemoryStorage, RedisStorage, Storage
from celery_dlx.redisio.client import Client, client_from_url
from tests.integration.conftest import require
from tests.integration.dlx_app import REDIS_URL


class FakeClock:
    """UNIX seconds that move only when told; whole microseconds, so waits add up exactly."""

    def __init__(self, start_us: int = 1_700_000_000_000_000) -> None:
        self.us = start_us

    def __call__(self) -> float:
        return self.us / 1_000_000

    def advance(self, seconds: float) -> None:
        self.us += round(seconds * 1_000_000)


#: The Redis flavours every Redis storage test runs on.
FLAVOURS = [
    "standalone",
    pytest.param("cluster", marks=pytest.mark.redis_cluster),
    pytest.param("sentinel", marks=pytest.mark.redis_sentinel),
]


@pytest.fixture
def redis_flavour(request: pytest.FixtureRequest) -> str:
    """``cluster`` for a test marked ``redis_cluster`` (e.g. by a storage fixture's parameter),
    ``sentinel`` for one marked ``redis_sentinel``, else ``standalone``; tests that take a Redis
    fixture directly are parametrized over all three (``tests/unit/conftest.py``)."""
    for flavour in ("cluster", "sentinel"):
        if request.node.get_closest_marker(f"redis_{flavour}"):
            return flavour
    return "standalone"


@pytest.fixture
def redis_url(redis_flavour: str, request: pytest.FixtureRequest) -> str:
    """The URL of the Redis the storages run on: the standalone one, the local cluster, or the
    master of the local sentinels."""
    if redis_flavour in ("cluster", "sentinel"):
        return str(request.getfixturevalue(f"redis_{redis_flavour}_url"))
    require("Redis", "127.0.0.1", 6379)
    return REDIS_URL


@pytest.fixture(scope="session")
def redis_clients() -> Iterator[dict[str, Client]]:
    """One client per URL for the session."""
    clients: dict[str, Client] = {}
    yield clients
    for client in clients.values():
        client.close()


@pytest.fixture
def redis_client(redis_url: str, redis_clients: dict[str, Client]) -> Client:
    if redis_url not in redis_clients:
        redis_clients[redis_url] = client_from_url(redis_url, 5.0)
    return redis_clients[redis_url]


@pytest.fixture
def redis_prefix(redis_client: Client) -> Iterator[str]:
    """A key prefix no other test uses; every key under it is deleted afterwards (also the
    keys that carry it as their hash tag, ``{prefix}:…``)."""
    prefix = f"rltest:{uuid.uuid4().hex[:12]}"
    yield prefix
    delete_under(redis_client, prefix)


def delete_under(client: Client, prefix: str) -> None:
    """Delete every key under ``prefix`` (and under ``{prefix}``), one key at a time, so the
    keys may live in different cluster slots."""
    for pattern in (f"{prefix}:*", "{" + f"{prefix}" + "}:*", "{" + f"{prefix}:*"):
        for key in list(client.scan_iter(pattern, count=1000)):
            client.delete(key)


MakeLimiter = Callable[..., Limiter]


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture(
    params=[
        "memory",
        pytest.param("redis", marks=pytest.mark.integration),
        pytest.param("redis-cluster", marks=[pytest.mark.integration, pytest.mark.redis_cluster]),
        pytest.param("redis-sentinel", marks=[pytest.mark.integration, pytest.mark.redis_sentinel]),
    ]
)
def storage(request: pytest.FixtureRequest, clock: FakeClock) -> Storage:
    """Each test on memory, the standalone Redis, the local Cluster and the local Sentinel."""
    if request.param == "memory":
        return MemoryStorage(clock)
    return RedisStorage(request.getfixturevalue("redis_client"), clock=clock)


@pytest.fixture
def prefix(request: pytest.FixtureRequest, storage: Storage) -> str:
    return request.getfixturevalue("redis_prefix") if isinstance(storage, RedisStorage) else "rltest"


@pytest.fixture
def make_limiter(storage: Storage, prefix: str) -> MakeLimiter:
    def make(*limits: Limit, **options: object) -> Limiter:
        return Limiter(storage, limits, prefix=prefix, **options)  # type: ignore[arg-type]

    return make
