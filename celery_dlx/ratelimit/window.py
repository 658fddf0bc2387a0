"""The sliding-window log: at most ``limit`` calls in *any* window of ``period``.

Pure: imports neither Celery, kombu nor redis.  :class:`~.storage.MemoryStorage` runs these
functions; ``lua/acquire.lua`` is the same rule inside Redis.  Times are whole microseconds.

Why this strategy.  The limits celery_dlx enforces belong to someone else's API, and exceeding
them costs 429s, penalty boxes or a revoked token.  The server may count in fixed windows with
its own alignment (Twitter's 15-minute windows) or in rolling ones, and we do not know which.
A log that keeps the admission times of the last ``period`` admits a call only if at most
``limit - cost`` of them fall in the ``period`` before now, so *every* window of that length,
however aligned, holds at most ``limit`` calls: it is safe against both kinds of server.

Reservations (:meth:`~.limiter.Limiter.reserve`) put calls into the log ahead of time, recorded
at the latest they may run (slot + grace), and not necessarily in order: a call reserved under
one limit may fit an earlier gap of another.  So a new call is checked against every entry that
could share a window with it, before or after it (:func:`earliest_us`); with no reservations
that is exactly the rule above.  Proof sketch: take any window and, of the calls in it, the one
recorded last; when it was recorded every other call of the window was in the log within its
check range, and there were at most ``limit - cost`` of them.

- GCRA (token bucket) keeps one number per key, but a bucket of ``limit`` tokens refilled at
  ``limit/period`` lets ``2*limit - 1`` calls into one window (a full bucket, then the refill).
  Making it window-safe means no burst at all (one call every ``period/limit``): a fan-out of
  50 page fetches that fits in the quota would take 50 s instead of starting at once.
- The sliding-window *counter* (two fixed windows, weighted) is an estimate that can admit up
  to 1.5x the limit in a real window when the previous window's calls came late.

The cost is memory: one timestamp per call of the last period and per reservation (a Redis
sorted set, about 120 bytes each), which for social-network limits (hundreds to tens of thousands
per window) is small and proportional to the calls actually made.  The wait of a denied call is
exact: the time until the entries that block it leave the window.
"""

from __future__ import annotations

import math
from bisect import bisect_right, insort
from collections.abc import Sequence

#: Steps :func:`earliest_us` looks for a gap before it settles for the end of the log.
SEARCH_STEPS = 32


def period_us(limit: int, rate: float) -> int:
    """The window in which ``limit`` calls at ``rate`` calls per second fit, in microseconds."""
    return math.floor(limit * 1_000_000 / rate + 0.5)


def earliest_us(log: Sequence[int], start: int, limit: int, period: int, cost: int, grace: int) -> int:
    """The earliest time from ``start`` at which ``cost`` more calls, reserved until ``grace``
    after it, fit every window.

    ``log`` holds, oldest first, the latest time each recorded call may run (a reservation's
    slot plus its grace).  A call that may run from ``s`` to ``s + grace`` shares a window only
    with calls recorded in ``(s - period, s + period + 2 * grace]``; when at most
    ``limit - cost`` are there, no window can hold more than ``limit``.  Otherwise the search
    moves past the oldest surplus entry and looks again, so a call fits into a gap before later
    reservations (no head-of-line blocking); after :data:`SEARCH_STEPS` it takes the end.
    """
    room = limit - cost
    if room < 0:
        raise ValueError(f"a call costing {cost} can never fit a limit of {limit}")
    at = start
    for _ in range(SEARCH_STEPS):
        low = bisect_right(log, at - period)
        found = bisect_right(log, at + period + 2 * grace) - low
        if found <= room:
            return at
        at = log[low + found - room - 1] + period
    return max(at, log[-(room + 1)] + period)


def admit(log: list[int], entry: int, cost: int, forget_before: int) -> None:
    """Record ``cost`` calls that may run until ``entry`` and forget entries that can no longer
    share a window with any call from now on (at or before ``forget_before``)."""
    for _ in range(cost):
        insort(log, entry)
    del log[: bisect_right(log, forget_before)]
