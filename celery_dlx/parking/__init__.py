"""The parking lot: :mod:`.park` moves a task that no retry can fix into the parking queue;
:mod:`.lot` browses, replays and purges what is parked.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import lazy_names

if TYPE_CHECKING:  # the names for type checkers, one line a module (isort would wrap them)
    # isort: off
    from .park import ParkedMessage, park
    from .lot import ParkingLot, ReplayError, SweepResult
    # isort: on

#: Module (relative) -> the public names it defines, loaded on first use.
_MODULES = {
    ".park": "ParkedMessage park",
    ".lot": "ParkingLot ReplayError SweepResult",
}

__getattr__, __dir__ = lazy_names(__name__, _MODULES)

__all__ = [
    "park", "ParkedMessage", "ParkingLot", "ReplayError", "SweepResult",
]
