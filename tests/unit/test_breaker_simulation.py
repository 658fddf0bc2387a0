"""A 10-minute Facebook outage with 50 000 tasks, simulated on an injected clock (no sleeping):
the circuit breaker against plain per-task exponential backoff, the same tasks either way.

Discrete events: each task is first delivered at a uniform time in the outage's first minute
(a backlog being worked through).  A call takes ``LATENCY`` s; during the outage it gets
RETRY_SOON, afterwards OK.  A failed task retries after ``HTTPTask.retry_wait`` (tenacity
``wait_exponential(multiplier=1, min=1, max=300) + wait_random(0, 1)``, the network tasks'
default backoff), an unlimited number of times.  With the breaker, every delivery first asks
it (as ``HTTPTask.before_start`` does) and a deferred task comes back when the breaker says,
without a call and without counting an attempt; every answer is reported to it.

Measured: calls sent during the outage, and the busiest second (any 1-s sliding window) of
calls after the network comes back, in the first minute after calls resume and over the whole
drain, against the API's rate limit.  The breaker's ``recovery_rate`` is 90 % of that limit,
leaving room for new work.  Its spread guarantees at most ``ceil(rate) + 1`` returns in any
second (:func:`celery_dlx.breaker.spread.max_returns`).
"""

from __future__ import annotations

import heapq
import random
from bisect import bisect_left
from dataclasses import dataclass, field

from celery_dlx.backoff import WaitStrategy, wait_seconds
from celery_dlx.breaker import Breaker, MemoryStorage, Policy
from celery_dlx.classify import VerdictKind
from celery_dlx.networks.tasks import HTTPTask

from .ratelimit_support import FakeClock

TASKS = 50_000
OUTAGE = 600.0  # the network fails calls that reach it in [0, OUTAGE)
LATENCY = 0.2
BACKOFF: WaitStrategy = HTTPTask.retry_wait  # type: ignore[assignment]
RATE_LIMIT = 50.0  # calls per second the API allows
POLICY = Policy(threshold=20, window=60, open_for=30, max_open_for=120, probes=3, close_after=2,
                recovery_rate=0.9 * RATE_LIMIT)  # fmt: skip


@dataclass
class Outcome:
    calls: list[float] = field(default_factory=list)  # when each call was sent, sorted at the end
    done: int = 0
    finished_at: float = 0.0
    deferrals: int = 0

    def between(self, start: float, end: float) -> int:
        return bisect_left(self.calls, end) - bisect_left(self.calls, start)

    def peak(self, start: float, end: float, width: float = 1.0) -> int:
        """The most calls sent in any ``width``-second window starting in [start, end)."""
        best, j = 0, bisect_left(self.calls, start)
        for i in range(j, bisect_left(self.calls, end)):
            best = max(best, bisect_left(self.calls, self.calls[i] + width) - i)
        return best


def simulate(use_breaker: bool, seed: int = 11) -> Outcome:
    random.seed(seed)  # tenacity's wait_random draws from the module's generator
    rng = random.Random(seed)
    clock = FakeClock(start_us=0)
    breaker = Breaker(MemoryStorage(clock), POLICY) if use_breaker else None
    out = Outcome()
    retries = [0] * TASKS
    # (time, sequence, task, probe or None for a delivery)
    events: list[tuple[float, int, int, bool | None]] = [(rng.uniform(0, 60), t, t, None) for t in range(TASKS)]
    heapq.heapify(events)
    sequence = TASKS
    while events:
        now, _, task, answer_of_probe = heapq.heappop(events)
        clock.us = round(now * 1_000_000)
        if answer_of_probe is None:  # a delivery: ask the breaker, then call
            probe = False
            if breaker is not None:
                admission = breaker.admit("facebook")
                if not admission.allowed:
                    out.deferrals += 1
                    heapq.heappush(events, (now + admission.wait, sequence, task, None))
                    sequence += 1
                    continue
                probe = admission.probe
            out.calls.append(now)
            heapq.heappush(events, (now + LATENCY, sequence, task, probe))
        else:  # the answer of a call sent LATENCY ago
            ok = now - LATENCY / 2 >= OUTAGE
            if breaker is not None:
                breaker.record_verdict("facebook", VerdictKind.OK if ok else VerdictKind.RETRY_SOON, probe=answer_of_probe)
            if ok:
                out.done += 1
                out.finished_at = now
                continue
            retries[task] += 1
            wait = wait_seconds(BACKOFF, retries[task], None)
            heapq.heappush(events, (now + wait, sequence, task, None))
        sequence += 1
    out.calls.sort()
    return out


def test_a_ten_minute_outage_with_fifty_thousand_tasks() -> None:
    plain, guarded = simulate(use_breaker=False), simulate(use_breaker=True)
    assert plain.done == guarded.done == TASKS, "every task succeeds in the end"

    during = {name: o.between(0, OUTAGE) for name, o in (("backoff", plain), ("breaker", guarded))}
    # The first minute after calls resume (the first call that reaches the recovered network).
    resumed = {name: o.calls[bisect_left(o.calls, OUTAGE - LATENCY / 2)] for name, o in (("backoff", plain), ("breaker", guarded))}
    first_minute = {name: o.peak(resumed[name], resumed[name] + 60) for name, o in (("backoff", plain), ("breaker", guarded))}
    drain = {name: o.peak(OUTAGE, o.finished_at + 1) for name, o in (("backoff", plain), ("breaker", guarded))}
    fewer = 1 - during["breaker"] / during["backoff"]
    print(
        f"\n{TASKS} tasks, {OUTAGE:.0f} s outage, API limit {RATE_LIMIT:.0f}/s, breaker recovery_rate "
        f"{POLICY.recovery_rate:g}/s\n"
        f"calls during the outage:          backoff {during['backoff']:>7}   breaker {during['breaker']:>5}"
        f"   ({fewer:.2%} fewer)\n"
        f"calls resume at:                  backoff {resumed['backoff']:>7.1f}   breaker {resumed['breaker']:>5.1f} s\n"
        f"busiest second, 1st min after:    backoff {first_minute['backoff']:>7}   breaker {first_minute['breaker']:>5}\n"
        f"busiest second, whole recovery:   backoff {drain['backoff']:>7}   breaker {drain['breaker']:>5}\n"
        f"all tasks done at:                backoff {plain.finished_at:>7.0f}   breaker {guarded.finished_at:>5.0f} s"
        f"   (breaker deferrals: {guarded.deferrals}; {TASKS / POLICY.recovery_rate:.0f} s is {TASKS} tasks at "
        f"{POLICY.recovery_rate:g}/s)"
    )
    assert fewer >= 0.95
    assert drain["breaker"] <= RATE_LIMIT, "recovery never exceeds the API's rate limit"
    assert first_minute["breaker"] <= RATE_LIMIT
    assert first_minute["backoff"] > RATE_LIMIT and drain["backoff"] > RATE_LIMIT, "the comparison is meaningful: plain backoff does exceed it"
    # The drain takes about as long as the recovery rate requires, not much more.
    assert guarded.finished_at <= OUTAGE + POLICY.max_open_for + TASKS / POLICY.recovery_rate + 60
