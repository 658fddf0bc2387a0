"""Where a deferred task goes while a breaker is open: the recovery spread (pure math).

Every deferral takes the next free *slot* of a line that starts at the breaker's next probe
time; slots are ``period = 1 / recovery_rate`` seconds apart and each task lands at a uniform
random point inside its own slot::

    start_k = max(cursor, probe_at)          # cursor: the end of the line so far
    due_k   = start_k + u_k * period         # u_k ~ U[0, 1)
    cursor  = start_k + period

With ``W`` tasks waiting the line is ``W / recovery_rate`` seconds long, so the spread grows
with the number of waiting tasks, and because no two tasks share a slot, any interval of
``T`` seconds receives at most ``ceil(T * recovery_rate) + 1`` returning tasks, however many
wait.  A task that comes back while the breaker is still open takes a new slot at the end
of the line (its old one is in the past), so the line stays dense and the return rate after
recovery is ``recovery_rate`` from the first returning task to the last.

Times are whole microseconds, as in the Redis scripts (``lua/lib.lua``), so both storages
compute the same slots to the microsecond.  No Celery, kombu or redis here.
"""

from __future__ import annotations

import math


def period_us(rate: float) -> int:
    """Slot length in microseconds for ``rate`` returning tasks per second (at least 1 µs)."""
    if not (rate > 0 and math.isfinite(rate)):
        raise ValueError(f"recovery rate must be a positive number of calls per second, got {rate!r}")
    return max(1, round(1_000_000 / rate))


def slot(cursor_us: int, line_us: int, base_us: int, period: int, u: float) -> tuple[int, int, int]:
    """``(due, new cursor, new line start)`` for the next deferral: a uniform point in the
    first free slot at or after ``base_us`` (the probe time).  ``u`` is uniform in ``[0, 1)``.
    The line start is where the current unbroken run of slots begins (for :func:`waiting`)."""
    if not 0.0 <= u < 1.0:
        raise ValueError(f"u must be in [0, 1), got {u!r}")
    start = max(cursor_us, base_us)
    if start > cursor_us:
        line_us = start  # a gap: a new run of slots starts here
    return start + math.floor(u * period), start + period, line_us


def waiting(cursor_us: int, line_us: int, now_us: int, period: int) -> int:
    """Slots taken from ``now`` (or the start of the line, if later) to its end: the tasks still
    waiting (an upper bound: a slot whose task was lost counts until its time has passed)."""
    return max(0, -(-(cursor_us - max(now_us, line_us)) // period))


def max_returns(seconds: float, rate: float) -> int:
    """The most returning tasks any interval of ``seconds`` can receive at ``rate``."""
    return math.ceil(seconds * rate) + 1
