"""Circuit breakers per network (and optionally per endpoint), shared by every worker.

When a network is down, calling it from every task wastes thousands of calls and, when it
comes back, every task returns at once.  A breaker opens after a burst of RETRY_SOON /
OVER_CAPACITY verdicts, lets a few probes through once its open period is over, and closes
when they succeed; while it is open, tasks wait in the broker for a slot after the next
probe, spread at a recovery rate.  See ``docs/breaker.md``.

*How* is pure (:mod:`.state`: the state machine, :mod:`.spread`: the recovery slots); *where*
is a storage (:class:`MemoryStorage`, :class:`RedisStorage`: Lua, atomic); :class:`Breaker`
names breakers and decides what happens when the storage is unavailable; :mod:`.tasks`
connects it to tasks (the network Task base classes use it by default).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import lazy_names

if TYPE_CHECKING:  # the names for type checkers, one line a module (isort would wrap them)
    # isort: off
    from .breaker import DEFAULT_PREFIX, TRIP_ON, Breaker, OnUnavailable
    from .tasks import BreakerOpen, breaker_for, finish, guard, report
    from .redis_storage import RedisStorage
    from .state import CALL, CLOSED, DEFER, FAILURE, HALF_OPEN, OPEN, PROBE, RELEASE, SUCCESS, Admission, Policy, Snapshot, State
    from .storage import BreakerUnavailable, MemoryStorage, Storage
    # isort: on

#: Module (relative) -> the public names it defines, loaded on first use.
_MODULES = {
    ".breaker": "DEFAULT_PREFIX TRIP_ON Breaker OnUnavailable",
    ".tasks": "BreakerOpen breaker_for finish guard report",
    ".redis_storage": "RedisStorage",
    ".state": "CALL CLOSED DEFER FAILURE HALF_OPEN OPEN PROBE RELEASE SUCCESS Admission Policy Snapshot State",
    ".storage": "BreakerUnavailable MemoryStorage Storage",
}

__getattr__, __dir__ = lazy_names(__name__, _MODULES)

__all__ = [
    "CALL", "CLOSED", "DEFAULT_PREFIX", "DEFER", "FAILURE", "HALF_OPEN", "OPEN", "PROBE", "RELEASE", "SUCCESS",
    "TRIP_ON", "Admission", "Breaker", "BreakerOpen", "BreakerUnavailable", "MemoryStorage", "OnUnavailable",
    "Policy", "RedisStorage", "Snapshot", "State", "Storage", "breaker_for", "finish", "guard", "report",
]
