"""What celery_dlx.metrics keeps in Redis and reads back, on the standalone Redis and on a local
Redis Cluster: counters flushed in one pipeline (one slot: the keys carry the prefix as their
hash tag) and a limiter's usage found by SCAN over every node."""

from __future__ import annotations

import uuid

import pytest
from redis.crc import key_slot

from celery_dlx.metrics.counters import (
    MINUTES_KEPT,
    PARKED,
    RETRIES,
    Recorder,
    counters_key,
    minute_key,
    read_counters,
    read_per_minute,
)
from celery_dlx.metrics.ratelimits import usage
from celery_dlx.ratelimit import Limit, Limiter, RedisStorage
from celery_dlx.redisio.client import Client

from .ratelimit_support import delete_under, redis_client, redis_prefix  # noqa: F401  (fixtures)

pytestmark = pytest.mark.integration


def test_a_flush_lands_in_one_slot_and_reads_back(redis_url: str, redis_client: Client) -> None:  # noqa: F811
    prefix = f"mxunit:{uuid.uuid4().hex[:8]}"
    assert key_slot(counters_key(prefix).encode()) == key_slot(minute_key(prefix, 123).encode())
    recorder = Recorder(redis_url, prefix)
    try:
        for _ in range(3):
            recorder.add(RETRIES, ("t.flaky", "builtins.RuntimeError"), per_minute=RETRIES)
        recorder.add(PARKED, ("t.dead", "auth_invalid"), per_minute=PARKED)
        assert recorder.flush()
        assert read_counters(redis_client, prefix) == {
            (RETRIES, "t.flaky", "builtins.RuntimeError"): 3.0,
            (PARKED, "t.dead", "auth_invalid"): 1.0,
        }
        minutes = read_per_minute(redis_client, prefix, 2)
        assert sum(n for _, n in minutes[RETRIES]) == 3 and sum(n for _, n in minutes[PARKED]) == 1
        current = minutes[RETRIES][-1][0]
        assert 0 < redis_client.ttl(minute_key(prefix, current)) <= MINUTES_KEPT * 60
    finally:
        delete_under(redis_client, prefix)


def test_a_limiter_s_usage_is_read_from_every_node(redis_url: str, redis_prefix: str) -> None:  # noqa: F811
    limiter = Limiter(RedisStorage.from_url(redis_url), [Limit("user", "5/minute", by=("token",))], prefix=redis_prefix)
    for token, calls in (("a", 3), ("b", 1), ("c", 5)):
        for _ in range(calls):
            assert limiter.acquire(token=token).allowed
    used, counts = usage(limiter)
    assert counts == {"user": 3}
    assert {u.slot: (u.used, u.allowed) for u in used} == {"a": (3, 5), "b": (1, 5), "c": (5, 5)}
