"""The sliding-window log: at most ``limit`` calls in *any* window of ``period``.

Pure: imports neither Celery, kombu nor redis.  :class:`~.storage.MemoryStorage` runs these
functions; ``lua/acquire.lua`` is the same rule inside Redis.  Times are whole microseconds.

Why this strategy.  The limits celery_dlx enforces belong to someone else's API, and exceeding
them costs 429s, penalty boxes or a revoked token.  The server may count in fixed windows with
its own alignment (Twitter's 15-minute windows) or in rolling ones, and we do not know which.
A log that keeps the last ``limit`` admission times admits a call only if at most
``limit - cost`` of them fall in the ``period`` before now, so *every* window of that length,
however aligned, holds at most ``limit`` calls: it is safe against both kinds of server.

- GCRA (token bucket) keeps one number per key, but a bucket of ``limit`` tokens refilled at
  ``limit/period`` lets ``2*limit - 1`` calls into one window (a full bucket, then the refill).
  Making it window-safe means no burst at all (one call every ``period/limit``): a fan-out of
  50 page fetches that fits in the quota would take 50 s instead of starting at once.
- The sliding-window *counter* (two fixed windows, weighted) is an estimate that can admit up
  to 1.5x the limit in a real window when the previous window's calls came late.

The cost is memory: up to ``limit`` timestamps per active key (about 10 bytes each in a Redis
list), which for social-network limits (hundreds to tens of thousands per window) is small and
is proportional to the calls actually made.  The wait of a denied call is exact: the time until
the entry that blocks it leaves the window.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence


def period_us(limit: int, rate: float) -> int:
    """The window in which ``limit`` calls at ``rate`` calls per second fit, in microseconds."""
    return math.floor(limit * 1_000_000 / rate + 0.5)


def earliest_us(log: Sequence[int], limit: int, period: int, cost: int, grace: int) -> int:
    """The earliest time ``cost`` more calls may run under this log (0: any time).

    ``log`` holds admission times, newest first (at most ``limit`` are kept).  The calls fit when
    the entry ``limit - cost`` places back is absent or at least ``period`` old: then at most
    ``limit - cost`` calls happened in the window before them.  A reservation's entry is its
    slot plus ``grace`` (the latest it may run), so a call may run up to ``grace`` before the
    newest entry; the entry it adds is then never older than the newest, and the log stays sorted.
    """
    index = limit - cost
    if index < 0:
        raise ValueError(f"a call costing {cost} can never fit a limit of {limit}")
    if not log:
        return 0
    earliest = log[0] - grace
    if len(log) > index:
        earliest = max(earliest, log[index] + period)
    return earliest


def admit(log: deque[int], entry: int, limit: int, cost: int) -> None:
    """Record ``cost`` calls at ``entry`` and forget entries that can no longer block anything."""
    log.extendleft([entry] * cost)
    while len(log) > limit:
        log.pop()
