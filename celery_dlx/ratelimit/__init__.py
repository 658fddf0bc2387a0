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

if TYPE_CHECKING:
    from .adaptive import AdaptiveRate
    from .limit import Limit
    from .limiter import Decision, Limiter, OnUnavailable
    from .rates import Rate
    from .redis_storage import RedisStorage
    from .storage import Answer, MemoryStorage, Slot, Storage, StorageUnavailable
    from .tasks import Throttled, acquire_or_retry, deferral

_NAMES = {
    "AdaptiveRate": ".adaptive",
    "Throttled": ".tasks",
    "acquire_or_retry": ".tasks",
    "deferral": ".tasks",
    "Limit": ".limit",
    "Decision": ".limiter",
    "Limiter": ".limiter",
    "OnUnavailable": ".limiter",
    "Rate": ".rates",
    "RedisStorage": ".redis_storage",
    "Answer": ".storage",
    "MemoryStorage": ".storage",
    "Slot": ".storage",
    "Storage": ".storage",
    "StorageUnavailable": ".storage",
}

__getattr__, __dir__ = lazy_names(__name__, _NAMES)

__all__ = [
    "AdaptiveRate",
    "Answer",
    "Decision",
    "Limit",
    "Limiter",
    "MemoryStorage",
    "OnUnavailable",
    "Rate",
    "RedisStorage",
    "Slot",
    "Storage",
    "StorageUnavailable",
    "Throttled",
    "acquire_or_retry",
    "deferral",
]
