"""Reservations (Limiter.reserve), on MemoryStorage and on real Redis: both backends must agree.

A denied call reserves its own slot; the k-th call denied in a burst gets the k-th free slot;
a claim within the grace runs without being decided again; early, late, duplicate and
overruled claims; and, whatever the order of claims and fresh calls, no window of any limit
holds more calls (at the times they really ran) than the limit.  The clock is injected, so
every slot is checked to the microsecond.
"""

from __future__ import annotations

import random

import pytest
import redis

from celery_dlx.ratelimit import (
    AdaptiveRate,
    Decision,
    Limit,
    Limiter,
    RedisStorage,
    Reservation,
)
from celery_dlx.ratelimit.limiter import DEFAULT_GRACE
from celery_dlx.ratelimit.storage import WINDOW

from .ratelimit_support import FakeClock, MakeLimiter, redis_client, redis_prefix  # noqa: F401  (fixtures)
from .test_ratelimit_concurrency import busiest_window

GRACE_US = round(DEFAULT_GRACE * 1_000_000)
START = FakeClock().us


def slot_of(decision: Decision) -> int:
    """The reserved slot, in microseconds after START."""
    assert not decision.allowed and decision.reservation is not None
    assert decision.reservation.slot_us == decision.at_us + round(decision.wait * 1_000_000)
    return decision.reservation.slot_us - START


def claim_at(limiter: Limiter, clock: FakeClock, decision: Decision, late_us: int = 0, **factors: object) -> Decision:
    assert decision.reservation is not None
    clock.us = decision.reservation.slot_us + late_us
    return limiter.reserve(claim=decision.reservation, **factors)


def test_the_kth_call_denied_in_a_burst_gets_the_kth_free_slot(make_limiter: MakeLimiter) -> None:
    limiter = make_limiter(Limit("user", "2/1 second", by=("token",)))
    assert all(limiter.reserve(token="a").allowed for _ in range(2))
    slots = [slot_of(limiter.reserve(token="a")) for _ in range(6)]
    # Paced at the limit's rate (one every 0.5 s) from the first free slot; each reservation
    # counts at slot + grace, so every other one waits for the one a window earlier to leave:
    # two calls per period + grace, and no slot is given twice.
    assert slots == [1_000_000, 1_500_000, 2_100_000, 2_600_000, 3_200_000, 3_700_000]
    assert GRACE_US == 100_000


def test_a_claim_within_its_grace_runs_and_fresh_calls_queue_behind_reservations(
    make_limiter: MakeLimiter, clock: FakeClock
) -> None:
    limiter = make_limiter(Limit("user", "1/1 second", by=("token",)))
    assert limiter.reserve(token="a").allowed
    first, second = limiter.reserve(token="a"), limiter.reserve(token="a")
    assert (slot_of(first), slot_of(second)) == (1_000_000, 2_000_000 + GRACE_US)
    clock.us = START + 1_000_000
    fresh = limiter.acquire(token="a")  # not a reservation: waits behind both
    assert not fresh.allowed and fresh.reservation is None
    ran = claim_at(limiter, clock, first, late_us=GRACE_US, token="a")
    assert ran.allowed and ran.at_us == first.reservation.slot_us + GRACE_US  # type: ignore[union-attr]
    assert claim_at(limiter, clock, second, token="a").allowed


def test_an_early_claim_is_denied_until_its_slot_and_keeps_its_reservation(
    make_limiter: MakeLimiter, clock: FakeClock
) -> None:
    limiter = make_limiter(Limit("user", "1/1 second", by=("token",)))
    limiter.reserve(token="a")
    reserved = limiter.reserve(token="a")
    clock.advance(0.4)
    early = limiter.reserve(claim=reserved.reservation, token="a")
    assert (early.allowed, early.wait, early.reservation) == (False, 0.6, reserved.reservation)
    assert claim_at(limiter, clock, early, token="a").allowed


def test_a_late_claim_is_decided_anew_and_its_unused_slot_ages_out_after_a_period(
    make_limiter: MakeLimiter, clock: FakeClock
) -> None:
    limiter = make_limiter(Limit("user", "1/1 second", by=("token",)))
    limiter.reserve(token="a")
    reserved = limiter.reserve(token="a")
    late = claim_at(limiter, clock, reserved, late_us=GRACE_US + 1, token="a")
    # The slot it missed still counts as a call at slot + grace, until one period later.
    assert slot_of(late) == 1_000_000 + GRACE_US + 1_000_000
    assert claim_at(limiter, clock, late, token="a").allowed


def test_a_reservation_never_claimed_costs_one_call_for_one_period_only(
    make_limiter: MakeLimiter, clock: FakeClock
) -> None:
    limiter = make_limiter(Limit("user", "3/1 second", by=("token",)))
    for _ in range(3):
        limiter.reserve(token="a")
    lost = limiter.reserve(token="a")  # never comes back
    assert slot_of(lost) == 1_000_000
    clock.us = START + 1_000_000 + GRACE_US + 1_000_000  # its entry has left the window
    assert [limiter.reserve(token="a").allowed for _ in range(4)] == [True, True, True, False]


def test_a_reservation_is_claimed_once(make_limiter: MakeLimiter, clock: FakeClock) -> None:
    limiter = make_limiter(Limit("user", "1/1 second", by=("token",)))
    limiter.reserve(token="a")
    reserved = limiter.reserve(token="a")
    assert claim_at(limiter, clock, reserved, token="a").allowed
    again = claim_at(limiter, clock, reserved, token="a")  # a redelivered duplicate
    assert not again.allowed and slot_of(again) == 2_000_000 + GRACE_US


def test_a_retry_after_learned_after_the_reservation_overrules_its_claim(
    make_limiter: MakeLimiter, clock: FakeClock
) -> None:
    limiter = make_limiter(Limit("user", "1/1 second", by=("token",)))
    limiter.reserve(token="a")
    reserved = limiter.reserve(token="a")
    clock.advance(0.5)
    limiter.observe("user", remaining=0, reset_after=3.0, token="a")  # a 429 said: 3 s
    overruled = claim_at(limiter, clock, reserved, token="a")
    assert not overruled.allowed and slot_of(overruled) == 3_500_000
    assert claim_at(limiter, clock, overruled, token="a").allowed


def test_a_budget_from_headers_is_spent_by_claims_not_by_reservations(
    make_limiter: MakeLimiter, clock: FakeClock
) -> None:
    limiter = make_limiter(Limit("user", "1/1 second", by=("token",)))
    limiter.observe("user", remaining=2, reset_after=10.0, token="a")
    assert limiter.reserve(token="a").allowed
    one, two = limiter.reserve(token="a"), limiter.reserve(token="a")
    assert (slot_of(one), slot_of(two)) == (1_000_000, 2_000_000 + GRACE_US)
    assert claim_at(limiter, clock, one, token="a").allowed  # the budget's last call
    spent = claim_at(limiter, clock, two, token="a")
    assert not spent.allowed and slot_of(spent) == 10_000_000


def test_an_adaptive_decrease_spaces_later_reservations_and_counts_once_for_earlier_ones(
    make_limiter: MakeLimiter, clock: FakeClock
) -> None:
    limiter = make_limiter(Limit("fb", AdaptiveRate(initial=2.0, floor=0.5, ceiling=8.0, decrease=0.5), by=("token",)))
    admitted = limiter.reserve(token="a")
    reserved = limiter.reserve(token="a")
    assert slot_of(reserved) == 500_000  # 2/s, one call a window
    clock.advance(0.1)
    limiter.feedback(admitted, limited=True)  # 429: now 1/s
    later = limiter.reserve(token="a")
    assert slot_of(later) == 500_000 + GRACE_US + 1_000_000  # spaced at the new rate
    ran = claim_at(limiter, clock, reserved, token="a")  # scheduled before the decrease: runs
    assert ran.allowed and ran.reservation == reserved.reservation
    limiter.feedback(ran, limited=True)  # its 429 was already answered by the decrease
    assert limiter.reserve(token="a").rates == (1.0,)  # not halved again


def test_a_reservation_counts_under_every_limit_without_holding_up_earlier_calls(
    make_limiter: MakeLimiter, clock: FakeClock
) -> None:
    limiter = make_limiter(Limit("user", "1/10 seconds", by=("token",)), Limit("app", "2/1 second"))
    assert limiter.reserve(token="a").allowed
    on_a = limiter.reserve(token="a")  # the user limit makes a wait 10 s ...
    assert (slot_of(on_a), on_a.limit) == (10_000_000, "user")
    assert limiter.reserve(token="b").allowed  # ... which does not hold b up: the app has room now
    on_c = limiter.reserve(token="c")  # the app is full until 1 s
    assert (slot_of(on_c), on_c.limit) == (1_000_000, "app")
    clock.us = START + 9_000_000 + GRACE_US  # a window that ends where a's call may run
    assert limiter.reserve(token="d").allowed  # d and a share it: the app's two calls
    late_comer = limiter.reserve(token="e")  # runs once d's call has left every window with a's
    assert (slot_of(late_comer), late_comer.limit) == (10_000_000 + GRACE_US, "app")


@pytest.mark.parametrize("seed", range(6))
def test_no_window_ever_holds_more_than_the_limit_whatever_the_claims_do(
    make_limiter: MakeLimiter, clock: FakeClock, seed: int
) -> None:
    """Random bursts of fresh calls, claims on time, late, early, twice or never, under two
    limits: every admission, at the time it really ran, fits every window."""
    rng = random.Random(seed)
    user, app = Limit("user", "3/1 second", by=("token",)), Limit("app", "5/2 seconds")
    limiter = make_limiter(user, app)
    ran: dict[str, list[int]] = {"a": [], "b": []}
    claimed = 0
    pending: list[tuple[str, Reservation]] = []
    for _ in range(300):
        clock.us += rng.choice([0, 0, 1, 1_000, 50_000, 300_000])
        token = rng.choice("ab")
        claim = None
        if pending and rng.random() < 0.7:
            token, claim = pending.pop(rng.randrange(len(pending)))
            if rng.random() < 0.8:  # comes back at its slot, a little late, or far too late
                clock.us = max(clock.us, claim.slot_us + rng.choice([0, 10, GRACE_US // 2, GRACE_US, GRACE_US + 5_000]))
            if rng.random() < 0.05:
                pending.append((token, claim))  # will come back twice
        decision = limiter.reserve(claim=claim, token=token)
        if decision.allowed:
            ran[token].append(decision.at_us)
            claimed += claim is not None
        elif decision.reservation is not None and rng.random() < 0.95:  # 5 % never come back
            pending.append((token, decision.reservation))
    every = ran["a"] + ran["b"]
    assert busiest_window(every, app.rate.period_us) <= 5  # type: ignore[union-attr]
    for token in "ab":
        assert busiest_window(ran[token], user.rate.period_us) <= 3  # type: ignore[union-attr]
    assert len(every) > 30 and claimed > 15  # the limits were used, and reservations ran


@pytest.mark.integration
def test_a_window_written_as_a_list_before_reservations_keeps_counting(
    redis_client: redis.Redis, redis_prefix: str, clock: FakeClock  # noqa: F811
) -> None:
    """A rolling upgrade: the window of a limit is still the list the previous version wrote
    (newest first); its calls keep counting, and the window becomes a sorted set."""
    user = Limit("user", "2/1 second", by=("token",))
    key = user.slot(redis_prefix, {"token": "a"}).key + WINDOW
    redis_client.lpush(key, START - 500_000, START - 200_000)  # two calls, the newest 0.2 s ago
    redis_client.pexpire(key, 60_000)
    limiter = Limiter(RedisStorage(redis_client, clock=clock), [user], prefix=redis_prefix)
    denied = limiter.reserve(token="a")
    assert slot_of(denied) == 500_000  # when the call of 0.5 s ago leaves the window
    assert redis_client.type(key) == b"zset" and redis_client.zcard(key) == 3  # two calls and a reservation
