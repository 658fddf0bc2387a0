"""The parking lot: :mod:`.park` moves a task that no retry can fix into the parking queue;
:mod:`.lot` browses, replays and purges what is parked.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import lazy_names

if TYPE_CHECKING:
    from .lot import ParkingLot, ReplayError, SweepResult
    from .park import ParkedMessage, park

_NAMES = {
    "ParkedMessage": ".park",
    "park": ".park",
    "ParkingLot": ".lot",
    "ReplayError": ".lot",
    "SweepResult": ".lot",
}

__getattr__, __dir__ = lazy_names(__name__, _NAMES)

__all__ = [
    "park",
    "ParkedMessage",
    "ParkingLot",
    "ReplayError",
    "SweepResult",
]
