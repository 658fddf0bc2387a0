"""Where breaker state lives: the storage contract and the in-process backend.

Each method is one atomic step on one breaker (a ``key``).  :class:`MemoryStorage` runs the
pure rules of :mod:`.state` under a lock, with an injectable clock, so tests and simulations
need no server; :class:`~.redis_storage.RedisStorage` runs the same rules as Lua scripts and
shares the state between every worker.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from typing import Protocol

from ..errors import CeleryDLXError
from . import state as machine
from .state import Admission, Policy, State


class BreakerUnavailable(CeleryDLXError):
    """The breaker's storage did not answer in time; the breaker's ``on_unavailable`` decides."""


class Storage(Protocol):
    """What a breaker backend does.  Times are the storage's clock, whole microseconds."""

    def admit(self, key: str, policy: Policy, u: float | None = None) -> Admission:
        """Decide one task now (:func:`.state.admit`) and keep the new state."""

    def record(self, key: str, policy: Policy, outcome: str, probe: bool) -> str:
        """Apply one call's outcome (:func:`.state.record`); returns the mode after it."""

    def load(self, key: str) -> tuple[State, int]:
        """The stored state (as last written) and the storage's time."""

    def reset(self, key: str) -> None:
        """Forget the breaker: it is closed with nothing waiting."""


class MemoryStorage:
    """Breaker state in this process: thread-safe, the semantics of the Redis storage.

    ``clock`` returns UNIX seconds; inject one to simulate hours without waiting.
    """

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._states: dict[str, tuple[State, int]] = {}  # state, forget at (µs)

    def admit(self, key: str, policy: Policy, u: float | None = None) -> Admission:
        u = random.random() if u is None else u
        with self._lock:
            now = self._now()
            admission, new = machine.admit(self._get(key, now), policy, now, u)
            self._put(key, new, policy, now)
            return admission

    def record(self, key: str, policy: Policy, outcome: str, probe: bool) -> str:
        with self._lock:
            now = self._now()
            new = machine.record(self._get(key, now), policy, now, outcome, probe)
            self._put(key, new, policy, now)
            return new.mode

    def load(self, key: str) -> tuple[State, int]:
        with self._lock:
            now = self._now()
            return self._get(key, now), now

    def reset(self, key: str) -> None:
        with self._lock:
            self._states.pop(key, None)

    def _now(self) -> int:
        return round(self._clock() * machine.US)

    def _get(self, key: str, now: int) -> State:
        kept = self._states.get(key)
        if kept is None or kept[1] <= now:
            return State()
        return kept[0]

    def _put(self, key: str, new: State, policy: Policy, now: int) -> None:
        if new == State():
            self._states.pop(key, None)
            return
        forget = max(now, new.probe_us, new.cursor_us) + round(policy.forget_after * machine.US)
        self._states[key] = (new, forget)
