"""Soft time limits that retry through the broker (:mod:`.task`), HTTP timeouts that fit in
what is left of them (:mod:`.http_timeouts`, pure) and a ``requests`` session using them
(:mod:`.http_session`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import lazy_names

if TYPE_CHECKING:
    from .http_session import TimedSession
    from .http_timeouts import HttpTimeouts, http_timeouts
    from .task import SoftLimitReached, SoftLimitRetry, SoftLimitTask, remaining_soft_time

_NAMES = {
    "SoftLimitReached": ".task",
    "SoftLimitRetry": ".task",
    "SoftLimitTask": ".task",
    "remaining_soft_time": ".task",
    "HttpTimeouts": ".http_timeouts",
    "http_timeouts": ".http_timeouts",
    "TimedSession": ".http_session",
}

__getattr__, __dir__ = lazy_names(__name__, _NAMES)

__all__ = [
    "http_timeouts",
    "HttpTimeouts",
    "remaining_soft_time",
    "SoftLimitReached",
    "SoftLimitRetry",
    "SoftLimitTask",
    "TimedSession",
]
