"""The breaker's transitions, run on both storages with an injected clock: memory (the pure
state machine under a lock) and Redis (the Lua scripts) must decide identically, to the
microsecond.  The Redis cases skip without Redis (and fail under CI=true)."""

from __future__ import annotations

import random
import socket
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import redis

from celery_dlx.breaker import (
    CALL,
    CLOSED,
    DEFER,
    FAILURE,
    HALF_OPEN,
    OPEN,
    PROBE,
    RELEASE,
    SUCCESS,
    Breaker,
    MemoryStorage,
    Policy,
    RedisStorage,
)
from celery_dlx.breaker import state as machine
from celery_dlx.errors import ConfigurationError
from celery_dlx.redisio.client import Client
from celery_dlx.redisio.keys import tagged

from .ratelimit_support import FakeClock, delete_under, redis_client  # noqa: F401  (fixture)

POLICY = Policy(threshold=3, window=10, open_for=30, max_open_for=100, backoff=2, probes=2, close_after=2,
                probe_timeout=20, probe_wait=5, recovery_rate=10)  # fmt: skip


@pytest.fixture(
    params=[
        "memory",
        "redis",
        pytest.param("redis-cluster", marks=pytest.mark.redis_cluster),
        pytest.param("redis-sentinel", marks=pytest.mark.redis_sentinel),
    ]
)
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def breaker(kind: str, clock: FakeClock, request: pytest.FixtureRequest) -> Iterator[Breaker]:
    if kind == "memory":
        yield Breaker(MemoryStorage(clock), POLICY)
        return
    client: Client = request.getfixturevalue("redis_client")
    prefix = f"brtest:{uuid.uuid4().hex[:12]}"
    yield Breaker(RedisStorage(client, clock=clock), POLICY, prefix=prefix)
    delete_under(client, prefix)


def fail(breaker: Breaker, times: int, clock: FakeClock, every: float = 1.0, name: str = "fb") -> None:
    for _ in range(times):
        breaker.record(name, FAILURE)
        clock.advance(every)


def trip(breaker: Breaker, clock: FakeClock, name: str = "fb") -> int:
    """Open ``name``; returns the time it opened (µs)."""
    fail(breaker, POLICY.threshold - 1, clock, name=name)
    breaker.record(name, FAILURE)
    return clock.us


def test_closed_lets_calls_through_and_opens_on_a_burst(breaker: Breaker, clock: FakeClock) -> None:
    assert breaker.admit("fb").action == CALL
    fail(breaker, 2, clock)
    assert breaker.state("fb").failures == 2
    assert breaker.record("fb", FAILURE) == OPEN
    snap = breaker.state("fb")
    assert (snap.mode, snap.opens, snap.probe_at) == (OPEN, 1, clock() + 30)
    assert breaker.state("other").mode == CLOSED, "breakers are per name"


def test_failures_spread_wider_than_the_window_do_not_open(breaker: Breaker, clock: FakeClock) -> None:
    fail(breaker, 10, clock, every=6.0)  # never 3 within 10 s
    assert breaker.state("fb").mode == CLOSED
    assert breaker.admit("fb").action == CALL


def test_open_defers_to_slots_after_the_probe_time(breaker: Breaker, clock: FakeClock) -> None:
    opened = trip(breaker, clock)
    clock.advance(1)
    first, second, third = (breaker.storage.admit(breaker._key("fb"), POLICY, u) for u in (0.0, 0.5, 0.999))
    probe = opened + 30_000_000
    assert [a.action for a in (first, second, third)] == [DEFER] * 3
    assert [a.due_us for a in (first, second, third)] == [probe, probe + 150_000, probe + 200_000 + 99_900]
    assert first.wait == 29.0
    snap = breaker.state("fb")
    assert snap.waiting == 3
    assert snap.deferred == 3 and snap.drained_at == (probe + 300_000) / 1e6


def test_half_open_probes_then_closes_after_successes(breaker: Breaker, clock: FakeClock) -> None:
    trip(breaker, clock)
    clock.advance(30)
    a, b, c = (breaker.admit("fb") for _ in range(3))
    assert [a.action, b.action, c.action] == [PROBE, PROBE, DEFER]
    assert c.wait >= POLICY.probe_wait
    assert breaker.state("fb").probes_in_flight == 2
    assert breaker.record("fb", SUCCESS, probe=True) == HALF_OPEN
    assert breaker.admit("fb").action == PROBE, "a reported probe frees its place"
    assert breaker.record("fb", SUCCESS, probe=False) == HALF_OPEN, "non-probe outcomes are ignored"
    assert breaker.record("fb", SUCCESS, probe=True) == CLOSED
    assert breaker.admit("fb").action == CALL
    assert breaker.state("fb").opens == 0


def test_a_failed_probe_reopens_for_longer_up_to_the_cap(breaker: Breaker, clock: FakeClock) -> None:
    trip(breaker, clock)
    periods = []
    for _ in range(4):
        probe_at = breaker.state("fb").probe_at
        assert probe_at is not None
        clock.us = round(probe_at * 1e6)
        assert breaker.admit("fb").action == PROBE
        assert breaker.record("fb", FAILURE, probe=True) == OPEN
        reopened = breaker.state("fb").probe_at
        assert reopened is not None
        periods.append(round(reopened - clock(), 6))
    assert periods == [60, 100, 100, 100]
    assert breaker.state("fb").opens == 5


def test_a_lost_probe_is_written_off_after_the_probe_timeout(breaker: Breaker, clock: FakeClock) -> None:
    trip(breaker, clock)
    clock.advance(30)
    assert [breaker.admit("fb").action for _ in range(3)] == [PROBE, PROBE, DEFER]
    breaker.release("fb", probe=True)
    assert breaker.admit("fb").action == PROBE, "a released probe frees its place"
    clock.advance(19.9)
    assert breaker.admit("fb").action == DEFER
    clock.advance(0.1)
    assert breaker.admit("fb").action == PROBE


def test_outcomes_while_open_are_ignored(breaker: Breaker, clock: FakeClock) -> None:
    trip(breaker, clock)
    assert breaker.record("fb", SUCCESS) == OPEN
    assert breaker.record("fb", FAILURE) == OPEN
    assert breaker.state("fb").opens == 1


def test_the_line_survives_reopening_so_slots_are_never_shared(breaker: Breaker, clock: FakeClock) -> None:
    trip(breaker, clock)
    dues = [breaker.storage.admit(breaker._key("fb"), POLICY, 0.0).due_us for _ in range(1000)]  # 100 s of line
    assert dues == [dues[0] + k * POLICY.period_us for k in range(1000)]
    clock.us = dues[0]
    assert breaker.admit("fb").action == PROBE
    breaker.record("fb", FAILURE, probe=True)  # reopened for 60 s: the line goes on after its end
    assert breaker.state("fb").waiting == 1000  # the slot starting now counts until it is over
    again = breaker.storage.admit(breaker._key("fb"), POLICY, 0.0).due_us
    assert again == dues[-1] + POLICY.period_us


def test_reset_closes_by_hand(breaker: Breaker, clock: FakeClock) -> None:
    trip(breaker, clock)
    breaker.reset("fb")
    assert breaker.state("fb").mode == CLOSED and breaker.admit("fb").action == CALL


def run_script(breaker: Breaker, clock: FakeClock, seed: int) -> list[Any]:
    """A random walk of admissions, outcomes and time; everything observable, in order."""
    rng = random.Random(seed)
    seen: list[Any] = []
    probes: list[str] = []
    for _ in range(400):
        clock.advance(rng.choice([0, 0.01, 0.3, 1, 4, 15]))
        name = rng.choice(["fb", "fb:insights"])
        move = rng.random()
        if move < 0.5:
            admission = breaker.storage.admit(breaker._key(name), POLICY, rng.random())
            seen.append(admission)
            if admission.action == PROBE:
                probes.append(name)
        else:
            probe = bool(probes) and rng.random() < 0.7
            if probe:
                name = probes.pop(0)
            outcome = rng.choice([FAILURE, FAILURE, SUCCESS, RELEASE])
            seen.append(breaker.record(name, outcome, probe=probe))
        seen.append(breaker.state(name))
    return seen


@pytest.mark.parametrize("seed", range(5))
def test_redis_decides_exactly_like_memory(redis_client: Client, seed: int) -> None:  # noqa: F811
    memory_clock, redis_clock = FakeClock(), FakeClock()
    prefix = f"brtest:{uuid.uuid4().hex[:12]}"
    try:
        memory = run_script(Breaker(MemoryStorage(memory_clock), POLICY, prefix=prefix), memory_clock, seed)
        in_redis = run_script(
            Breaker(RedisStorage(redis_client, clock=redis_clock), POLICY, prefix=prefix), redis_clock, seed
        )
    finally:
        delete_under(redis_client, prefix)
    assert in_redis == memory
    modes = {getattr(x, "mode", x) for x in memory}
    assert {CLOSED, OPEN, HALF_OPEN} <= modes, "the walk visited every state"


def test_redis_keys_expire_and_a_quiet_breaker_leaves_nothing(redis_client: Client, redis_url: str) -> None:  # noqa: F811
    prefix = f"brtest:{uuid.uuid4().hex[:12]}"
    breaker = Breaker(RedisStorage.from_url(redis_url), POLICY, prefix=prefix)
    try:
        breaker.admit("fb")
        breaker.record("fb", SUCCESS)
        assert list(redis_client.scan_iter(f"{prefix}:*")) == []
        for _ in range(3):
            breaker.record("fb", FAILURE)
        assert breaker.state("fb").mode == OPEN
        ttl = redis_client.pttl(tagged(prefix, "fb"))
        assert 0 < ttl <= (30 + 3600) * 1000 + 1000
    finally:
        delete_under(redis_client, prefix)


def test_redis_storage_refuses_a_client_without_timeouts() -> None:
    with pytest.raises(ConfigurationError, match="socket_timeout"):
        RedisStorage(redis.Redis(socket_timeout=None, socket_connect_timeout=None))


def test_a_redis_that_hangs_fails_open_quickly_and_is_not_asked_again() -> None:
    silent = socket.socket()  # accepts connections (backlog) and never answers: a hung Redis
    silent.bind(("127.0.0.1", 0))
    silent.listen(16)
    port = silent.getsockname()[1]
    try:
        hung_redis_fails_open(port)
    finally:
        silent.close()


def hung_redis_fails_open(port: int) -> None:
    storage = RedisStorage.from_url(f"redis://127.0.0.1:{port}/0", timeout=0.1)
    breaker = Breaker(storage, POLICY, unavailable_retry=60)
    started = time.monotonic()
    first = breaker.admit("fb")
    second = breaker.admit("fb")  # does not ask Redis again
    assert time.monotonic() - started < 2
    assert first.action == CALL and first.degraded and second.degraded
    assert breaker.record("fb", FAILURE) is None
    denying = Breaker(storage, POLICY, on_unavailable="deny", unavailable_wait=7)
    deferred = denying.admit("fb")
    assert deferred.action == DEFER and deferred.wait == 7


def test_policy_validation() -> None:
    with pytest.raises(ValueError):
        Policy(threshold=0)
    with pytest.raises(ValueError):
        Policy(recovery_rate=0)
    with pytest.raises(ValueError):
        Policy(open_for=60, max_open_for=30)
    with pytest.raises(ConfigurationError):
        Breaker(MemoryStorage(), on_unavailable="maybe")  # type: ignore[arg-type]
    assert machine.open_period_us(Policy(open_for=1, max_open_for=5, backoff=3), 3) == 5_000_000
