"""The adaptive limiter against a simulated API whose limit it is not told.

A deterministic discrete-event simulation on an injected clock (no network, no sleeping):
workers with endless work call an API that accepts at most ``L`` calls in any second and
answers 429 beyond that.  Each worker asks the limiter first, waits exactly the time a denial
names, and reports every answer through ``feedback``.  The hidden ``L`` changes half-way, and
the limiter must settle near each value without being told.
"""

from __future__ import annotations

import heapq
from collections import deque
from dataclasses import dataclass, field

from celery_dlx.ratelimit import AdaptiveRate, Decision, Limit, Limiter, MemoryStorage

from .ratelimit_support import FakeClock

#: Seconds between sending a call and its answer; workers wait for the answer.
LATENCY = 0.2
WORKERS = 24
RATE = AdaptiveRate(initial=1.0, floor=0.1, ceiling=200.0)


@dataclass
class HiddenApi:
    """At most ``limit`` accepted calls in any one-second window; the rest get a 429."""

    limit: int
    accepted: deque[float] = field(default_factory=deque)

    def call(self, now: float) -> bool:
        while self.accepted and self.accepted[0] <= now - 1.0:
            self.accepted.popleft()
        if len(self.accepted) >= self.limit:
            return False
        self.accepted.append(now)
        return True


@dataclass
class Tally:
    """Answers per phase, counted inside a measuring window."""

    ok: int = 0
    limited: int = 0


def simulate(phases: list[tuple[int, float]], measure_last: float) -> list[Tally]:
    """Run ``(hidden limit, seconds)`` phases; count answers in the last ``measure_last`` s of each."""
    clock = FakeClock(start_us=0)
    limiter = Limiter(MemoryStorage(clock), [Limit("api", RATE, by=("token",))])
    api = HiddenApi(phases[0][0])
    ends = [sum(seconds for _, seconds in phases[: i + 1]) for i in range(len(phases))]
    tallies = [Tally() for _ in phases]
    # Events: (time, sequence, worker, decision of the call in flight or None for "ask").
    events: list[tuple[float, int, int, Decision | None]] = [(0.0, w, w, None) for w in range(WORKERS)]
    sequence = WORKERS
    while events:
        now, _, worker, in_flight = heapq.heappop(events)
        if now >= ends[-1]:
            break
        clock.us = round(now * 1_000_000)
        phase = next(i for i, end in enumerate(ends) if now < end)
        api.limit = phases[phase][0]
        if in_flight is not None:  # the answer of a call sent LATENCY ago
            ok = api.call(now - LATENCY / 2)
            limiter.feedback(in_flight, limited=not ok)
            if now >= ends[phase] - measure_last:
                tally = tallies[phase]
                tally.ok, tally.limited = tally.ok + ok, tally.limited + (not ok)
            after, flight = now, None
        else:
            decision = limiter.acquire(token="t")
            after, flight = (now + LATENCY, decision) if decision.allowed else (now + decision.wait, None)
        heapq.heappush(events, (after, sequence, worker, flight))
        sequence += 1
    return tallies


def test_the_adaptive_rate_settles_near_a_hidden_limit_and_follows_it_down_and_up() -> None:
    phases = [(20, 90.0), (5, 90.0), (40, 90.0)]
    measure = 45.0
    for (limit, _), tally in zip(phases, simulate(phases, measure_last=measure)):
        sent = tally.ok + tally.limited
        # Near the limit: most of what the API allows is used ...
        assert tally.ok / measure >= 0.8 * limit, (limit, tally)
        # ... and few calls are wasted on refusals.
        assert tally.limited <= 0.05 * sent, (limit, tally)
