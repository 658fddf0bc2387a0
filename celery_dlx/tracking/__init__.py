"""Task trees that answer "done?": the pure rule that never says done early (:mod:`.progress`)
and the Redis store with :class:`TreeResult` (:mod:`.store`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import lazy_names

if TYPE_CHECKING:  # the names for type checkers, one line a module (isort would wrap them)
    # isort: off
    from .progress import TreeProgress, observe_tree
    from .store import UNKNOWN, TrackingConfig, TreeResult, TreeStore, UnknownTree, UntrackableTask, spawn, start_tree, state_of
    # isort: on

#: Module (relative) -> the public names it defines, loaded on first use.
_MODULES = {
    ".progress": "TreeProgress observe_tree",
    ".store": "UNKNOWN TrackingConfig TreeResult TreeStore UnknownTree UntrackableTask spawn start_tree state_of",
}

__getattr__, __dir__ = lazy_names(__name__, _MODULES)

__all__ = [
    "observe_tree", "spawn", "start_tree", "state_of", "TrackingConfig", "TreeProgress", "TreeResult", "TreeStore",
    "UNKNOWN", "UnknownTree", "UntrackableTask",
]
