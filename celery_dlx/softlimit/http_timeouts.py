"""HTTP timeouts that fit inside what is left of a task's soft time limit.

Pure arithmetic, no Celery, no HTTP library.  A socket that hangs can outlast Celery's soft
time limit: pools without signals (threads, gevent, eventlet) never interrupt it, and C code
may not either.  Bounding every connect and read by the time left before the soft limit (less a
margin for handling the timeout and publishing a retry) means no single wait can outlive it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True)
class HttpTimeouts:
    """Connect and read timeouts for one request; ``budget`` is the time left before the soft
    limit less the margin (``None`` without a soft limit)."""

    connect: float
    read: float
    budget: float | None = None

    def as_tuple(self) -> tuple[float, float]:
        """The ``(connect, read)`` form requests and urllib3 accept."""
        return (self.connect, self.read)

    def set_by_limit(self, phase: Literal["connect", "read"]) -> bool:
        """True when the soft limit, not the configured cap, set the timeout of ``phase``: a
        timeout there means the task ran out of time, not that the server was slow."""
        value = self.connect if phase == "connect" else self.read
        return self.budget is not None and value >= self.budget


def http_timeouts(connect: float, read: float, remaining: float | None, margin: float) -> HttpTimeouts | None:
    """Caps ``connect`` / ``read``, lowered to ``remaining - margin`` seconds.

    ``remaining`` is the time left before the soft limit (``None``: no limit).  Returns ``None``
    when no time is left after the margin: starting a request then would only be cut short.
    """
    for name, value in (("connect", connect), ("read", read), ("margin", margin)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
            raise ValueError(f"{name} must be a finite number of seconds >= 0, got {value!r}")
    if connect == 0 or read == 0:
        raise ValueError("connect and read timeouts must be more than 0 s (0 would mean non-blocking)")
    if remaining is None:
        return HttpTimeouts(float(connect), float(read))
    budget = remaining - margin
    if budget <= 0:
        return None
    return HttpTimeouts(min(float(connect), budget), min(float(read), budget), budget)
