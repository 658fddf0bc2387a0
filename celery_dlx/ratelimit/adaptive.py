"""Adaptive rates for limits nobody told us: find the rate an API tolerates by probing.

Pure: imports neither Celery, kombu nor redis.  The state lives in a storage shared by every
worker (:mod:`.storage`); ``lua/lib.lua`` has :meth:`AdaptiveRate.rate` and
:meth:`AdaptiveRate.current` for Redis, with the same expressions in the same order, so both
backends compute the same floats.

The controller is CUBIC's (RFC 9438) with successes in place of time:

- A rate-limited signal is a *multiplicative decrease*: the rate the refused call was admitted
  under becomes the ``peak`` (known to be too high) and the rate drops to ``decrease * peak``.
- Each success moves the rate along a cubic (a power law) in ``n``, the successes since the
  last decrease: ``peak * (1 + (1 - decrease) * ((n - recover) / recover) ** 3)``.  It climbs
  fast at first, flattens out as it nears the peak (reached after ``recover`` successes) where
  the limit probably is, and then probes beyond it ever faster in case the limit went up.
- The rate stays between ``floor`` (so work never stops) and ``ceiling``.

Counting successes instead of seconds makes the curve independent of the rate's scale: a
limit of 1/s and one of 1000/s converge in the same number of calls.  The price is that
``recover`` must be several times the calls in flight (rate x response time); with defaults,
the simulation in tests/unit/test_ratelimit_simulation.py uses 80-95 % of a hidden limit and
wastes under 4 % of calls on refusals.  Signals from calls
admitted before the last decrease are ignored, so the burst of 429s from calls already in
flight at the old rate counts as one decrease, not a collapse to the floor.

The rate is enforced as a sliding window (:mod:`.window`) of ``burst`` calls per
``burst / rate`` seconds: with ``burst=1`` calls are evenly paced.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from .window import period_us


@dataclass(frozen=True)
class AdaptiveState:
    """What all workers share about one adaptive limit."""

    #: The rate that was last found too high (at first a virtual one, see ``current``).
    peak: float
    #: Successes since the last decrease.
    successes: int
    #: When the rate was last decreased (storage time, microseconds; 0: never).
    decreased_us: int
    #: When feedback last changed the state (storage time, microseconds).
    updated_us: int


@dataclass(frozen=True)
class AdaptiveRate:
    """An unknown limit, learned from rate-limited signals and successes (calls per second)."""

    initial: float
    floor: float
    ceiling: float
    #: Factor applied to the rate on a rate-limited signal.
    decrease: float = 0.7
    #: Successes after a decrease until the rate is back at the peak.  Keep it several times
    #: the calls in flight (rate x response time): the curve grows per success, and successes
    #: of calls sent before a refusal arrives push it past the limit before the 429 is heard.
    recover: int = 50
    #: Calls allowed back to back; the window is ``burst / rate`` seconds.
    burst: int = 1
    #: Seconds without feedback after which the learned state is dropped.
    forget_after: float = 86400.0

    def __post_init__(self) -> None:
        for name in ("initial", "floor", "ceiling", "forget_after"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
                raise ValueError(f"AdaptiveRate.{name} must be a positive number, got {value!r}")
        if not self.floor <= self.initial <= self.ceiling:
            raise ValueError(
                f"AdaptiveRate needs floor <= initial <= ceiling, got {self.floor}, {self.initial}, {self.ceiling}"
            )
        if not 0 < self.decrease < 1:
            raise ValueError(f"AdaptiveRate.decrease must be between 0 and 1, got {self.decrease!r}")
        for name in ("recover", "burst"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"AdaptiveRate.{name} must be a whole number >= 1, got {value!r}")

    def current(self, state: AdaptiveState | None, now_us: int) -> AdaptiveState:
        """``state``, or the starting state if there is none or it is older than ``forget_after``.

        The start is at the initial rate but already ``recover`` successes past a (virtual)
        peak, on the steep side of the curve: nothing is known yet, so it probes upwards at
        once instead of dwelling on a plateau.  Forgetting is decided here, on the storage's
        clock, not by key expiry, so every backend agrees.
        """
        if state is None or now_us - state.updated_us >= self.forget_after_us:
            peak = self.initial / (2.0 - self.decrease)
            return AdaptiveState(peak=peak, successes=2 * self.recover, decreased_us=0, updated_us=now_us)
        return state

    def rate(self, state: AdaptiveState) -> float:
        """Calls per second allowed in ``state``."""
        x = (state.successes - self.recover) / self.recover
        rate = state.peak * (1.0 + (1.0 - self.decrease) * x * x * x)
        return min(self.ceiling, max(self.floor, rate))

    @property
    def longest_period_us(self) -> int:
        """The window at the floor rate: how long a window entry can matter."""
        return period_us(self.burst, self.floor)

    @property
    def forget_after_us(self) -> int:
        return round(self.forget_after * 1_000_000)

    def limited(self, state: AdaptiveState, now_us: int, admitted_us: int, admitted_rate: float) -> AdaptiveState:
        """State after a call admitted at ``admitted_us`` under ``admitted_rate`` was rate-limited.

        The peak becomes the rate the call was admitted under, the one shown to be too high,
        not the current one: while the answer travelled, successes of calls sent at that same
        rate kept raising the current rate, and with a slow API the peak would ratchet upwards.
        """
        if admitted_us <= state.decreased_us:
            # Sent at the old rate, which was already decreased for it.
            return AdaptiveState(state.peak, state.successes, state.decreased_us, now_us)
        return AdaptiveState(peak=admitted_rate, successes=0, decreased_us=now_us, updated_us=now_us)

    def succeeded(self, state: AdaptiveState, now_us: int) -> AdaptiveState:
        """State after a call succeeded (reported at ``now_us``)."""
        return AdaptiveState(state.peak, state.successes + 1, state.decreased_us, now_us)
