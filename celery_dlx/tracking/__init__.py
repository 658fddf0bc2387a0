"""Task trees that answer "done?": the pure rule that never says done early (:mod:`.progress`)
and the Redis store with :class:`TreeResult` (:mod:`.store`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import lazy_names

if TYPE_CHECKING:
    from .progress import TreeProgress, observe_tree
    from .store import (
        UNKNOWN,
        TrackingConfig,
        TreeResult,
        TreeStore,
        UnknownTree,
        UntrackableTask,
        spawn,
        start_tree,
        state_of,
    )

_NAMES = {
    "TreeProgress": ".progress",
    "observe_tree": ".progress",
    "UNKNOWN": ".store",
    "TrackingConfig": ".store",
    "TreeResult": ".store",
    "TreeStore": ".store",
    "UnknownTree": ".store",
    "UntrackableTask": ".store",
    "spawn": ".store",
    "start_tree": ".store",
    "state_of": ".store",
}

__getattr__, __dir__ = lazy_names(__name__, _NAMES)

__all__ = [
    "observe_tree",
    "spawn",
    "start_tree",
    "state_of",
    "TrackingConfig",
    "TreeProgress",
    "TreeResult",
    "TreeStore",
    "UNKNOWN",
    "UnknownTree",
    "UntrackableTask",
]
