"""celery_dlx.idempotency: the claim/commit/release logic on the memory store (no servers), and
the Redis store's Lua scripts on the Redis at 127.0.0.1:6379 (skipped without it, failing under
CI=true) and on a local Redis Cluster (marker ``redis_cluster``)."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from celery_dlx.errors import CeleryDLXError
from celery_dlx.idempotency import Idempotency, InProgress, LeaseLost, MemoryStore
from celery_dlx.redisio.client import Client

from .ratelimit_support import delete_under, redis_client  # noqa: F401  (fixture)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def once(clock: Clock) -> Idempotency:
    return Idempotency(MemoryStore(clock), ttl=100, lease=5)


def test_first_claim_does_the_work_and_later_ones_skip(once: Idempotency) -> None:
    done = []
    for _ in range(3):
        with once.claim("post:1") as claim:
            if claim:
                done.append(1)
    assert done == [1]
    assert once.done("post:1")


def test_a_failing_body_releases_the_key_so_the_retry_does_the_work(
    once: Idempotency,
) -> None:
    with pytest.raises(RuntimeError), once.claim("post:1") as claim:
        assert claim
        raise RuntimeError("API down")
    assert not once.done("post:1")
    with once.claim("post:1") as claim:
        assert claim


def test_a_held_lease_raises_in_progress_with_the_time_left(once: Idempotency, clock: Clock) -> None:
    with once.claim("post:1") as claim:
        assert claim
        clock.now += 2
        with pytest.raises(InProgress) as info, once.claim("post:1"):
            pass
        assert info.value.retry_after == pytest.approx(3, abs=0.01)
        assert isinstance(info.value, CeleryDLXError)


def test_a_crashed_holder_s_lease_expires_and_the_next_delivery_does_the_work(once: Idempotency, clock: Clock) -> None:
    store = once.store
    store.acquire(once.record_key("post:1"), "dead-worker", once.lease_ms)  # a process that died here
    with pytest.raises(InProgress), once.claim("post:1"):
        pass
    clock.now += 5.001
    with once.claim("post:1") as claim:
        assert claim


def test_a_lease_that_ran_out_raises_lease_lost_and_applies_no_staged_effect(once: Idempotency, clock: Clock) -> None:
    effects: list[int] = []
    with pytest.raises(LeaseLost), once.claim("post:1") as claim:
        claim.call(effects.append, 1)
        clock.now += 6  # the body took longer than the lease; another delivery claims it
        with once.claim("post:1") as other:
            assert other
            other.call(effects.append, 2)
    assert effects == [2]


def test_staged_effects_are_applied_with_the_commit_only(once: Idempotency) -> None:
    effects: list[int] = []
    with once.claim("k") as claim:
        claim.call(effects.append, 1)
        assert effects == []
    assert effects == [1]
    with once.claim("k") as claim, pytest.raises(RuntimeError):
        claim.call(effects.append, 2)  # nothing may be staged on a done key


def test_done_keys_are_forgotten_after_the_ttl(once: Idempotency, clock: Clock) -> None:
    with once.claim("k"):
        pass
    clock.now += 100.001
    with once.claim("k") as claim:
        assert claim


def test_decorator_calls_once_and_returns_none_when_skipped(once: Idempotency) -> None:
    calls = []

    @once.idempotent(lambda account, post: f"post:{account}:{post}")
    def publish(account: int, post: int) -> str:
        calls.append((account, post))
        return "published"

    assert publish(1, 2) == "published"
    assert publish(1, 2) is None
    assert publish(1, 3) == "published"
    assert calls == [(1, 2), (1, 3)]
    assert publish.__name__ == "publish"


def test_decorator_with_a_fixed_key(once: Idempotency) -> None:
    @once.idempotent("migration-7")
    def migrate() -> int:
        return 7

    assert (migrate(), migrate()) == (7, None)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"ttl": 0},
        {"ttl": -1},
        {"lease": float("nan")},
        {"lease": float("inf")},
        {"ttl": "60"},
        {"ttl": True},
        {"ttl": 1, "lease": 5},
    ],
)
def test_bad_settings_are_refused(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        Idempotency(MemoryStore(), **kwargs)


@pytest.mark.parametrize("key", ["", None, 42])
def test_bad_keys_are_refused(once: Idempotency, key: Any) -> None:
    with pytest.raises(ValueError, match="idempotency key"), once.claim(key):
        pass


def test_concurrent_claims_let_exactly_one_through() -> None:
    once = Idempotency(MemoryStore(), ttl=100, lease=50)
    winners: list[int] = []
    barrier = threading.Barrier(16)

    def worker(n: int) -> None:
        barrier.wait()
        try:
            with once.claim("race") as claim:
                if claim:
                    winners.append(n)
        except InProgress:
            pass

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(winners) == 1


# --- the Redis store: the same behaviour through the Lua scripts -----------------------------


@pytest.fixture
def redis_once(redis_client: Client) -> Iterator[tuple[Idempotency, Any, str]]:  # noqa: F811
    """Records under a prefix of their own, on the standalone Redis and on the cluster."""
    prefix = f"dlxunit:{uuid.uuid4().hex[:8]}"
    yield Idempotency(redis_client, prefix=prefix, ttl=60, lease=0.3), redis_client, prefix
    delete_under(redis_client, prefix)


def test_redis_store_claims_once_and_applies_staged_commands_atomically(
    redis_once: tuple[Idempotency, Any, str],
) -> None:
    once, client, _ = redis_once
    effects = f"{once.record_key('post:1')}:effects"  # in the record's cluster slot
    for _ in range(3):
        with once.claim("post:1") as claim:
            if claim:
                assert claim.local("effects") == effects
                claim.call("HINCRBY", effects, "post:1", 1)
    assert client.hget(effects, "post:1") == b"1"
    assert once.done("post:1")
    assert 0 < client.pttl(once.record_key("post:1")) <= 60_000


def test_a_prefix_with_its_own_hash_tag_lets_commits_touch_every_key_with_that_tag(redis_client: Client) -> None:  # noqa: F811
    tag = "{" + f"dlxunit:{uuid.uuid4().hex[:8]}" + "}"
    once = Idempotency(redis_client, prefix=f"{tag}:once", ttl=60, lease=5)
    try:
        for post in ("1", "2", "2"):
            with once.claim(f"post:{post}") as claim:
                if claim:
                    claim.call("HINCRBY", f"{tag}:effects", "posts", 1)
        assert redis_client.hget(f"{tag}:effects", "posts") == b"2"
    finally:
        delete_under(redis_client, tag)


def test_redis_store_lease_busy_release_and_expiry(
    redis_once: tuple[Idempotency, Any, str],
) -> None:
    import time

    once, client, _ = redis_once
    with pytest.raises(RuntimeError), once.claim("a"):
        raise RuntimeError
    assert client.get(once.record_key("a")) is None  # released
    with once.claim("b") as claim:
        assert claim
        with pytest.raises(InProgress) as info, once.claim("b"):
            pass
        assert 0 < info.value.retry_after <= 0.3
    client.set(once.record_key("c"), "token-of-a-dead-worker", px=300)
    time.sleep(0.4)
    with once.claim("c") as claim:
        assert claim


def test_redis_store_lease_lost_applies_nothing(
    redis_once: tuple[Idempotency, Any, str],
) -> None:
    once, client, _ = redis_once
    with pytest.raises(LeaseLost), once.claim("d") as claim:
        claim.call("SET", claim.local("effect"), "1")
        client.set(once.record_key("d"), "another-token")  # the lease ran out and another delivery holds it
    assert client.get(f"{once.record_key('d')}:effect") is None
