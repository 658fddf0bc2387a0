"""Shared by the Redis storage tests: an injectable clock and a real Redis with a unique prefix.

Real-Redis fixtures skip when Redis is absent, but fail under CI=true (the integration
suite's rule), so CI cannot go green by skipping.  ``redis_url`` and ``redis_client`` come in
three flavours, so every test that takes them runs on each: the standalone Redis on
127.0.0.1:6379, a local Redis Cluster (marker ``redis_cluster``) and a local Sentinel-watched
master (marker ``redis_sentinel``); ``make test-redis-cluster`` runs the last two (see
``tests/conftest.py``).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

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
