"""Budgets learned from response headers: "``remaining`` calls until ``reset``".

Pure: imports neither Celery, kombu nor redis; ``lua/observe.lua`` and ``lua/acquire.lua`` are
the same rules inside Redis.  Times are whole microseconds.

Many APIs say how much of their quota is left (``x-rate-limit-remaining`` /
``x-rate-limit-reset``, ``Retry-After``).  Spending that budget locally means the call that
would have been refused is instead scheduled for the reset time: no wasted call, no 429.

Responses arrive out of order (a call sent earlier may answer later), so an observation about
the same window never raises what is left: the most restrictive word wins.  Reset times given
relative to "now" drift by the response latency, so resets less than :data:`SAME_WINDOW_US`
apart count as the same window; a reset later than that starts a new one.
"""

from __future__ import annotations

from dataclasses import dataclass

#: Resets closer than this (1 s, the resolution of the usual reset headers) are one window.
SAME_WINDOW_US = 1_000_000


@dataclass(frozen=True)
class Budget:
    """``remaining`` calls may still be made before ``reset_us``."""

    remaining: int
    reset_us: int

    def wait_us(self, now: int, cost: int) -> int:
        """Microseconds until a call of ``cost`` may be made under this budget (0: now)."""
        if self.reset_us > now and self.remaining < cost:
            return self.reset_us - now
        return 0

    def spend(self, cost: int) -> Budget:
        return Budget(self.remaining - cost, self.reset_us)

    def merge(self, newer: Budget, now: int) -> Budget:
        """What is known after ``newer`` was observed at ``now``, given this budget."""
        if self.reset_us > now and newer.reset_us <= self.reset_us + SAME_WINDOW_US:
            return Budget(min(self.remaining, newer.remaining), max(self.reset_us, newer.reset_us))
        return newer
