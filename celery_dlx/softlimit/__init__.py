"""Soft time limits that retry through the broker (:mod:`.task`), HTTP timeouts that fit in
what is left of them (:mod:`.http_timeouts`, pure) and a ``requests`` session using them
(:mod:`.http_session`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import lazy_names

if TYPE_CHECKING:  # the names for type checkers, one line a module (isort would wrap them)
    # isort: off
    from .task import SoftLimitReached, SoftLimitRetry, SoftLimitTask, remaining_soft_time
    from .http_timeouts import HttpTimeouts, http_timeouts
    from .http_session import TimedSession
    # isort: on

#: Module (relative) -> the public names it defines, loaded on first use.
_MODULES = {
    ".task": "SoftLimitReached SoftLimitRetry SoftLimitTask remaining_soft_time",
    ".http_timeouts": "HttpTimeouts http_timeouts",
    ".http_session": "TimedSession",
}

__getattr__, __dir__ = lazy_names(__name__, _MODULES)

__all__ = [
    "http_timeouts", "HttpTimeouts", "remaining_soft_time", "SoftLimitReached", "SoftLimitRetry", "SoftLimitTask",
    "TimedSession",
]
