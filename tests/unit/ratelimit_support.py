"""Shared by the rate-limit tests: an injectable clock and a real Redis with a unique prefix.

Real-Redis fixtures skip when Redis is absent, but fail under CI=true (the integration
suite's rule), so CI cannot go green by skipping.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
import redis

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


@pytest.fixture(scope="session")
def redis_client() -> Iterator[redis.Redis]:
    require("Redis", "127.0.0.1", 6379)
    client = redis.Redis.from_url(REDIS_URL, socket_timeout=5, socket_connect_timeout=5)
    yield client
    client.close()


@pytest.fixture
def redis_prefix(redis_client: redis.Redis) -> Iterator[str]:
    """A key prefix no other test uses; every key under it is deleted afterwards."""
    prefix = f"rltest:{uuid.uuid4().hex[:12]}"
    yield prefix
    keys = list(redis_client.scan_iter(f"{prefix}:*", count=1000))
    if keys:
        redis_client.delete(*keys)
