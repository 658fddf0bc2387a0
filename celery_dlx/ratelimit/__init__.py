"""Rate limits for calls to other people's APIs: known, learned from headers, or adaptive.

*What* is limited (:class:`Rate`, :class:`AdaptiveRate`, :class:`Limit`), *how*
(:mod:`.window`, :mod:`.budget`, :mod:`.adaptive`: pure math) and *where* the state lives
(:class:`MemoryStorage`, :class:`RedisStorage`) are separate.  :class:`Limiter` decides one
call under all its limits in one atomic step; :func:`acquire_or_retry` defers a denied Celery
task through the broker.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import lazy_names

if TYPE_CHECKING:  # the names for type checkers, one line a module (isort would wrap them)
    # isort: off
    from .adaptive import AdaptiveRate
    from .tasks import Throttled, acquire_or_retry, deferral
    from .limit import Limit
    from .limiter import Decision, Limiter, OnUnavailable
    from .rates import Rate
    from .redis_storage import RedisStorage
    from .storage import Answer, MemoryStorage, Reservation, Slot, Storage, StorageUnavailable
    # isort: on

#: Module (relative) -> the public names it defines, loaded on first use.
_MODULES = {
    ".adaptive": "AdaptiveRate",
    ".tasks": "Throttled acquire_or_retry deferral",
    ".limit": "Limit",
    ".limiter": "Decision Limiter OnUnavailable",
    ".rates": "Rate",
    ".redis_storage": "RedisStorage",
    ".storage": "Answer MemoryStorage Reservation Slot Storage StorageUnavailable",
}

__getattr__, __dir__ = lazy_names(__name__, _MODULES)

__all__ = [
    "AdaptiveRate", "Answer", "Decision", "Limit", "Limiter", "MemoryStorage", "OnUnavailable", "Rate",
    "RedisStorage", "Reservation", "Slot", "Storage", "StorageUnavailable", "Throttled", "acquire_or_retry", "deferral",
]
