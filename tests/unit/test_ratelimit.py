"""Limiter behaviour, run on MemoryStorage and on real Redis: both backends must agree.

The clock is injected into both, so every wait is checked to the microsecond and nothing
sleeps.  The Redis runs are marked ``integration`` (skipped without Redis, failing under CI).
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable

import pytest
import redis

from celery_dlx.errors import ConfigurationError
from celery_dlx.ratelimit import (
    AdaptiveRate,
    Decision,
    Limit,
    Limiter,
    MemoryStorage,
    RedisStorage,
    Storage,
    StorageUnavailable,
)
from celery_dlx.redisio.keys import tagged_prefix

from .ratelimit_support import FakeClock, MakeLimiter, redis_client, redis_prefix  # noqa: F401  (fixtures)

#: A rate whose numbers are easy to follow: 2/s, halved on a 429, back at the peak in 4 successes.
ADAPTIVE = AdaptiveRate(initial=2.0, floor=0.5, ceiling=8.0, decrease=0.5, recover=4, forget_after=600)


def allowed(decision: Decision) -> bool:
    return decision.allowed and decision.wait == 0 and decision.limit is None


# Known rates: the sliding window.


def test_admits_up_to_the_limit_then_says_how_long_until_the_oldest_call_leaves(
    make_limiter: MakeLimiter, clock: FakeClock
) -> None:
    limiter = make_limiter(Limit("user", "3/10 seconds", by=("token",)))
    assert all(allowed(limiter.acquire(token="a")) for _ in range(3))
    clock.advance(2)
    denied = limiter.acquire(token="a")
    assert (denied.allowed, denied.wait, denied.limit) == (False, 8.0, "user")


def test_a_denied_call_fits_exactly_when_its_wait_is_over_and_not_a_microsecond_before(
    make_limiter: MakeLimiter, clock: FakeClock
) -> None:
    limiter = make_limiter(Limit("user", "2/1.5 seconds", by=("token",)))
    limiter.acquire(token="a")
    clock.advance(0.25)
    limiter.acquire(token="a")
    wait = limiter.acquire(token="a").wait
    assert wait == 1.25
    clock.advance(wait - 0.000001)
    assert limiter.acquire(token="a").wait == 0.000001
    clock.advance(0.000001)
    assert allowed(limiter.acquire(token="a"))


def test_the_window_slides_instead_of_resetting(make_limiter: MakeLimiter, clock: FakeClock) -> None:
    limiter = make_limiter(Limit("user", "3/10 seconds", by=("token",)))
    for _ in range(3):
        assert allowed(limiter.acquire(token="a"))
        clock.advance(4)  # calls at 0, 4 and 8
    clock.advance(-3)  # t = 9
    assert limiter.acquire(token="a").wait == 1.0
    clock.advance(1)  # t = 10: the call at 0 has left the window
    assert allowed(limiter.acquire(token="a"))
    clock.advance(1)  # t = 11: calls at 4, 8, 10 are in it; the one at 4 leaves at 14
    assert limiter.acquire(token="a").wait == 3.0


def test_a_denied_call_consumes_nothing(make_limiter: MakeLimiter, clock: FakeClock) -> None:
    limiter = make_limiter(Limit("user", "2/minute", by=("token",)))
    limiter.acquire(token="a")
    for _ in range(10):
        assert not limiter.acquire(token="a", cost=2).allowed
    assert allowed(limiter.acquire(token="a"))


def test_cost_counts_several_calls(make_limiter: MakeLimiter, clock: FakeClock) -> None:
    limiter = make_limiter(Limit("user", "5/minute", by=("token",)))
    assert allowed(limiter.acquire(token="a", cost=3))
    clock.advance(1)
    assert limiter.acquire(token="a", cost=3).wait == 59.0
    assert allowed(limiter.acquire(token="a", cost=2))
    with pytest.raises(ValueError, match="can never fit"):
        limiter.acquire(token="a", cost=6)
    with pytest.raises(ValueError, match="cost"):
        limiter.acquire(token="a", cost=0)


# Several limits per call.


def test_every_limit_must_admit_and_a_denial_by_one_consumes_none_of_the_others(make_limiter: MakeLimiter) -> None:
    limiter = make_limiter(Limit("user", "1/minute", by=("token",)), Limit("app", "3/minute", by=("app",)))
    assert allowed(limiter.acquire(token="a", app="x"))
    denied = limiter.acquire(token="a", app="x")
    assert (denied.allowed, denied.limit) == (False, "user")
    # Had the denied call taken one of the app's three, "c" would be refused.
    assert allowed(limiter.acquire(token="b", app="x"))
    assert allowed(limiter.acquire(token="c", app="x"))
    assert limiter.acquire(token="d", app="x").limit == "app"


def test_the_longest_wait_wins_and_names_its_limit(make_limiter: MakeLimiter, clock: FakeClock) -> None:
    limiter = make_limiter(Limit("user", "1/10 seconds", by=("token",)), Limit("app", "2/minute"))
    limiter.acquire(token="a")
    clock.advance(1)
    limiter.acquire(token="b")
    clock.advance(4)
    denied = limiter.acquire(token="a")  # user: 5 s more, app: 55 s more
    assert (denied.wait, denied.limit) == (55.0, "app")
    assert [slot.name for slot in denied.slots] == ["user", "app"]


def test_limits_apply_per_factor_value_and_only_where_they_match(make_limiter: MakeLimiter) -> None:
    limiter = make_limiter(Limit("tw", "1/minute", by=("token",), where={"network": "twitter"}))
    assert allowed(limiter.acquire(network="twitter", token="a"))
    assert not limiter.acquire(network="twitter", token="a").allowed
    assert allowed(limiter.acquire(network="twitter", token="b"))
    assert all(allowed(limiter.acquire(network="facebook", token="a")) for _ in range(3))


def test_a_covered_call_without_a_factor_its_limit_needs_is_an_error(make_limiter: MakeLimiter) -> None:
    limiter = make_limiter(Limit("tw", "1/minute", by=("endpoint", "token"), where={"network": "twitter"}))
    with pytest.raises(ValueError, match="gave no token"):
        limiter.acquire(network="twitter", endpoint="search")
    with pytest.raises(ValueError, match="gave no token"):
        limiter.acquire(network="twitter", endpoint="search", token=None)


def test_factor_values_cannot_collide_in_keys(make_limiter: MakeLimiter) -> None:
    limiter = make_limiter(Limit("ep", "1/minute", by=("endpoint", "token")))
    assert allowed(limiter.acquire(endpoint="a:b", token="c"))
    assert allowed(limiter.acquire(endpoint="a", token="b:c"))
    assert allowed(limiter.acquire(endpoint="{a}", token="c"))


def test_a_queue_limit_is_just_a_factor(make_limiter: MakeLimiter) -> None:
    limiter = make_limiter(Limit("trickle", "2/second", by=("queue",), where={"queue": "trickle"}))
    assert [limiter.acquire(queue="trickle").allowed for _ in range(3)] == [True, True, False]
    assert all(allowed(limiter.acquire(queue="fast")) for _ in range(5))


def test_acquire_many_decides_like_one_call_after_another(make_limiter: MakeLimiter, clock: FakeClock) -> None:
    limiter = make_limiter(Limit("user", "3/minute", by=("token",)))
    decisions = limiter.acquire_many([{"token": "a"}] * 4 + [{"token": "b"}])
    assert [d.allowed for d in decisions] == [True, True, True, False, True]
    assert decisions[3].wait == 60.0


def test_reset_forgets_the_state_of_the_covering_limits(make_limiter: MakeLimiter) -> None:
    limiter = make_limiter(Limit("user", "1/hour", by=("token",)))
    limiter.acquire(token="a")
    limiter.acquire(token="b")
    limiter.reset(token="a")
    assert allowed(limiter.acquire(token="a"))
    assert not limiter.acquire(token="b").allowed


# Learning from response headers.


def test_an_observed_budget_is_spent_and_the_next_call_waits_for_the_reset(
    make_limiter: MakeLimiter, clock: FakeClock
) -> None:
    limiter = make_limiter(Limit("tw", None, by=("token",)))
    assert all(allowed(limiter.acquire(token="a")) for _ in range(5))  # nothing known yet
    limiter.observe("tw", remaining=2, reset_after=30, token="a")
    clock.advance(10)
    assert allowed(limiter.acquire(token="a"))
    assert allowed(limiter.acquire(token="a"))
    denied = limiter.acquire(token="a")
    assert (denied.wait, denied.limit) == (20.0, "tw")
    clock.advance(20)
    assert allowed(limiter.acquire(token="a"))


def test_zero_remaining_schedules_the_next_call_for_the_reset_time(make_limiter: MakeLimiter, clock: FakeClock) -> None:
    limiter = make_limiter(Limit("tw", "900/15 minutes", by=("token",)))
    limiter.observe("tw", remaining=0, reset_at=clock() + 42, token="a")
    assert limiter.acquire(token="a").wait == 42.0
    assert allowed(limiter.acquire(token="b"))


def test_a_late_answer_about_the_same_window_never_raises_what_is_left(
    make_limiter: MakeLimiter, clock: FakeClock
) -> None:
    limiter = make_limiter(Limit("tw", None, by=("token",)))
    reset = clock() + 60
    limiter.observe("tw", remaining=1, reset_at=reset, token="a")
    limiter.observe("tw", remaining=5, reset_at=reset, token="a")  # sent earlier, answered later
    assert allowed(limiter.acquire(token="a"))
    assert limiter.acquire(token="a").wait == 60.0


def test_a_reset_in_a_later_window_starts_a_new_budget(make_limiter: MakeLimiter, clock: FakeClock) -> None:
    limiter = make_limiter(Limit("tw", None, by=("token",)))
    limiter.observe("tw", remaining=0, reset_at=clock() + 60, token="a")
    limiter.observe("tw", remaining=2, reset_at=clock() + 120, token="a")
    assert allowed(limiter.acquire(token="a"))
    assert allowed(limiter.acquire(token="a"))
    assert limiter.acquire(token="a").wait == 120.0


def test_an_observation_about_a_window_that_is_over_is_ignored(make_limiter: MakeLimiter, clock: FakeClock) -> None:
    limiter = make_limiter(Limit("tw", None, by=("token",)))
    limiter.observe("tw", remaining=0, reset_at=clock() - 1, token="a")
    assert allowed(limiter.acquire(token="a"))


def test_observe_checks_what_it_is_told(make_limiter: MakeLimiter) -> None:
    limiter = make_limiter(Limit("tw", None, by=("token",), where={"network": "twitter"}))
    with pytest.raises(ValueError, match="exactly one"):
        limiter.observe("tw", remaining=0, network="twitter", token="a")
    with pytest.raises(ValueError, match="no limit named"):
        limiter.observe("fb", remaining=0, reset_after=1, network="twitter", token="a")
    with pytest.raises(ValueError, match="does not cover"):
        limiter.observe("tw", remaining=0, reset_after=1, network="facebook", token="a")
    with pytest.raises(ValueError, match="remaining"):
        limiter.observe("tw", remaining=-1, reset_after=1, network="twitter", token="a")


# Adaptive limits.


def pace(limiter: Limiter, clock: FakeClock, **factors: object) -> float:
    """The adaptive limit's current window: the wait right after an admitted call."""
    clock.advance(10)  # longer than any window at the floor rate
    assert limiter.acquire(**factors).allowed
    return limiter.acquire(**factors).wait


def admitted(limiter: Limiter, clock: FakeClock, **factors: object) -> Decision:
    clock.advance(10)
    decision = limiter.acquire(**factors)
    assert decision.allowed
    return decision


def test_an_adaptive_limit_paces_calls_at_its_initial_rate(make_limiter: MakeLimiter, clock: FakeClock) -> None:
    limiter = make_limiter(Limit("fb", ADAPTIVE, by=("token",)))
    assert pace(limiter, clock, token="a") == 0.5


def test_a_rate_limited_signal_cuts_the_rate_and_successes_bring_it_back_then_beyond(
    make_limiter: MakeLimiter, clock: FakeClock
) -> None:
    limiter = make_limiter(Limit("fb", ADAPTIVE, by=("token",)))
    limiter.feedback(admitted(limiter, clock, token="a"), limited=True)
    assert pace(limiter, clock, token="a") == 1.0  # 2/s * 0.5
    paces = []
    for _ in range(8):
        limiter.feedback(admitted(limiter, clock, token="a"), limited=False)
        paces.append(pace(limiter, clock, token="a"))
    rates = [round(1 / p, 3) for p in paces]
    # A cubic through the peak: fast, flat near 2/s (reached after 4 successes), then faster.
    assert rates == [1.578, 1.875, 1.984, 2.0, 2.016, 2.125, 2.422, 3.0]


def test_the_429s_of_calls_already_in_flight_count_as_one_decrease(make_limiter: MakeLimiter, clock: FakeClock) -> None:
    limiter = make_limiter(Limit("fb", ADAPTIVE, by=("token",)))
    in_flight = [admitted(limiter, clock, token="a") for _ in range(3)]
    for decision in in_flight:
        limiter.feedback(decision, limited=True)
    assert pace(limiter, clock, token="a") == 1.0
    limiter.feedback(admitted(limiter, clock, token="a"), limited=True)  # sent at the new rate
    assert pace(limiter, clock, token="a") == 2.0


def test_the_adaptive_rate_stays_between_floor_and_ceiling(make_limiter: MakeLimiter, clock: FakeClock) -> None:
    limiter = make_limiter(Limit("fb", ADAPTIVE, by=("token",)))
    for _ in range(5):
        limiter.feedback(admitted(limiter, clock, token="a"), limited=True)
    assert pace(limiter, clock, token="a") == 2.0  # the floor, 0.5/s
    for _ in range(40):
        limiter.feedback(admitted(limiter, clock, token="a"), limited=False)
    assert pace(limiter, clock, token="a") == 0.125  # the ceiling, 8/s


def test_every_worker_sees_the_same_learned_rate(storage: Storage, prefix: str, clock: FakeClock) -> None:
    one, other = (Limiter(storage, [Limit("fb", ADAPTIVE, by=("token",))], prefix=prefix) for _ in range(2))
    one.feedback(admitted(one, clock, token="a"), limited=True)
    assert pace(other, clock, token="a") == 1.0


def test_retry_after_holds_the_adaptive_limit_until_then(make_limiter: MakeLimiter, clock: FakeClock) -> None:
    limiter = make_limiter(Limit("fb", ADAPTIVE, by=("token",)), Limit("app", "100/minute"))
    decision = admitted(limiter, clock, token="a")
    limiter.feedback(decision, limited=True, retry_after=30)
    denied = limiter.acquire(token="a")
    assert (denied.wait, denied.limit) == (30.0, "fb")
    assert allowed(limiter.acquire(token="b"))


def test_feedback_is_only_for_admitted_calls(make_limiter: MakeLimiter, clock: FakeClock) -> None:
    limiter = make_limiter(Limit("fb", ADAPTIVE, by=("token",)))
    limiter.acquire(token="a")
    with pytest.raises(ValueError, match="admitted"):
        limiter.feedback(limiter.acquire(token="a"), limited=True)


def test_feedback_leaves_known_rates_alone(make_limiter: MakeLimiter, clock: FakeClock) -> None:
    limiter = make_limiter(Limit("app", "2/minute"))
    limiter.feedback(limiter.acquire(), limited=True, retry_after=30)
    assert allowed(limiter.acquire())


def test_a_learned_rate_is_forgotten_after_a_long_silence(make_limiter: MakeLimiter, clock: FakeClock) -> None:
    limiter = make_limiter(Limit("fb", ADAPTIVE, by=("token",)))
    limiter.feedback(admitted(limiter, clock, token="a"), limited=True)
    clock.advance(600)
    assert pace(limiter, clock, token="a") == 0.5


# Storage unavailable.


class DownStorage:
    """A storage that cannot be reached."""

    def __getattr__(self, name: str) -> Callable[..., None]:
        def unreachable(*args: object) -> None:
            raise StorageUnavailable("down")

        return unreachable


@pytest.mark.parametrize(
    ("policy", "expected"), [("deny", (False, 7.0)), ("allow", (True, 0.0))], ids=["fail_closed", "fail_open"]
)
def test_an_unavailable_storage_is_decided_by_the_policy(policy: str, expected: tuple[bool, float]) -> None:
    limits = [Limit("app", "1/minute"), Limit("fb", ADAPTIVE)]
    limiter = Limiter(DownStorage(), limits, on_unavailable=policy, unavailable_wait=7)  # type: ignore[arg-type]
    decision = limiter.acquire()
    assert (decision.allowed, decision.wait, decision.degraded) == (*expected, True)
    assert [d.degraded for d in limiter.acquire_many([{}, {}])] == [True, True]
    # Learning is lost, quietly: the limits still work once the storage is back.
    limiter.feedback(Limiter(MemoryStorage(), limits).acquire(), limited=True, retry_after=3)
    limiter.observe("app", remaining=0, reset_after=1)


def test_an_unavailable_storage_can_raise() -> None:
    limits = [Limit("app", "1/minute"), Limit("fb", ADAPTIVE)]
    limiter = Limiter(DownStorage(), limits, on_unavailable="raise")  # type: ignore[arg-type]
    with pytest.raises(StorageUnavailable):
        limiter.acquire()
    with pytest.raises(StorageUnavailable):
        limiter.observe("app", remaining=0, reset_after=1)
    with pytest.raises(StorageUnavailable):
        limiter.feedback(Limiter(MemoryStorage(), limits).acquire(), limited=False)


def test_a_call_no_limit_covers_needs_no_storage() -> None:
    limits = [Limit("tw", "1/minute", where={"network": "twitter"})]
    limiter = Limiter(DownStorage(), limits, on_unavailable="raise")  # type: ignore[arg-type]
    assert allowed(limiter.acquire(network="facebook"))


@pytest.mark.parametrize("policy", ["deny", "raise"])
def test_a_dead_redis_answers_at_once_instead_of_hanging(policy: str) -> None:
    storage = RedisStorage.from_url("redis://127.0.0.1:1/0", timeout=0.2)  # nothing listens on port 1
    limiter = Limiter(storage, [Limit("app", "1/minute")], on_unavailable=policy)  # type: ignore[arg-type]
    if policy == "raise":
        with pytest.raises(StorageUnavailable):
            limiter.acquire()
    else:
        assert limiter.acquire().degraded


def test_a_redis_that_accepts_but_never_answers_does_not_hang() -> None:
    with socket.create_server(("127.0.0.1", 0)) as silent:  # listens, never replies
        port = silent.getsockname()[1]
        limiter = Limiter(RedisStorage.from_url(f"redis://127.0.0.1:{port}/0", timeout=0.2), [Limit("app", "1/minute")])
        decisions: list[Decision] = []
        caller = threading.Thread(target=lambda: decisions.append(limiter.acquire()), daemon=True)
        caller.start()
        caller.join(timeout=30)  # a generous bound: the socket timeouts end it in about a second
        assert not caller.is_alive(), "acquire hung on a Redis that does not answer"
    assert decisions[0].degraded and not decisions[0].allowed


def test_a_redis_client_without_timeouts_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="socket_timeout"):
        RedisStorage(redis.Redis(socket_timeout=None, socket_connect_timeout=None))


# Configuration.


def test_limits_check_their_definition() -> None:
    with pytest.raises(ValueError, match="name"):
        Limit("has space", "1/minute")
    with pytest.raises(ValueError, match="distinct"):
        Limit("x", "1/minute", by="token")
    with pytest.raises(ValueError, match="rate"):
        Limit("x", 5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="cannot read"):
        Limit("x", "5 a minute")


def test_limiter_checks_its_options() -> None:
    with pytest.raises(ConfigurationError, match="named 'x'"):
        Limiter(MemoryStorage(), [Limit("x", "1/minute"), Limit("x", "2/minute")])
    with pytest.raises(ConfigurationError, match="on_unavailable"):
        Limiter(MemoryStorage(), [], on_unavailable="maybe")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="unavailable_wait"):
        Limiter(MemoryStorage(), [], unavailable_wait=0)


# Backend-specific behaviour.


def test_memory_storage_is_thread_safe(clock: FakeClock) -> None:
    limiter = Limiter(MemoryStorage(clock), [Limit("app", "100/hour")])
    results: list[bool] = []

    def hammer() -> None:
        results.extend(limiter.acquire().allowed for _ in range(200))

    threads = [threading.Thread(target=hammer) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results.count(True) == 100


def test_memory_storage_forgets_keys_nobody_asks_for_again(clock: FakeClock) -> None:
    storage = MemoryStorage(clock)
    limiter = Limiter(storage, [Limit("user", "1/second", by=("token",))])
    for n in range(10_000):
        limiter.acquire(token=str(n))
        clock.advance(0.001)
    assert len(storage) < 5_000


@pytest.mark.integration
def test_redis_keys_expire_by_themselves(redis_client: redis.Redis, redis_prefix: str, clock: FakeClock) -> None:  # noqa: F811
    limiter = Limiter(
        RedisStorage(redis_client, clock=clock),
        [
            Limit("user", "3/minute", by=("token",)),
            Limit("fb", ADAPTIVE, by=("token",)),
            Limit("tw", None, by=("token",)),
        ],
        prefix=redis_prefix,
    )
    limiter.feedback(limiter.acquire(token="a"), limited=True)
    limiter.observe("tw", remaining=3, reset_after=30, token="a")
    ttls = {
        key.decode().rsplit(":", 1)[1]: redis_client.pttl(key) for key in redis_client.scan_iter(f"{tagged_prefix(redis_prefix)}:*")
    }
    assert set(ttls) == {"w", "b", "a"}  # window logs, the budget, the adaptive state
    assert all(0 < ttl <= 600_000 for ttl in ttls.values()), ttls


@pytest.mark.integration
def test_redis_clock_is_shared_and_exact(redis_client: redis.Redis, redis_prefix: str) -> None:  # noqa: F811
    limiter = Limiter(RedisStorage(redis_client), [Limit("user", "1/hour", by=("token",))], prefix=redis_prefix)
    first = limiter.acquire(token="a")
    second = limiter.acquire(token="a")
    assert first.allowed and not second.allowed
    assert second.wait == (first.at_us + 3_600_000_000 - second.at_us) / 1_000_000
    [(_, entry)] = redis_client.zrevrange(f"{tagged_prefix(redis_prefix)}:user:a:w", 0, 0, withscores=True)  # the newest call
    assert entry is not None and int(entry) == first.at_us
