"""Rate limits for calls to other people's APIs: known, learned from headers, or adaptive.

*What* is limited (:class:`Rate`, :class:`AdaptiveRate`, :class:`Limit`), *how*
(:mod:`.window`, :mod:`.budget`, :mod:`.adaptive`: pure math) and *where* the state lives
(:class:`MemoryStorage`, :class:`RedisStorage`) are separate.  :class:`Limiter` decides one
call under all its limits in one atomic step; :func:`acquire_or_retry` defers a denied Celery
task through the broker.
"""

from __future__ import annotations

from .adaptive import AdaptiveRate
from .tasks import Throttled, acquire_or_retry, deferral
from .limit import Limit
from .limiter import Decision, Limiter, OnUnavailable
from .rates import Rate
from .redis_storage import RedisStorage
from .storage import Answer, MemoryStorage, Slot, Storage, StorageUnavailable

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
