"""Where rate-limit state lives: the storage contract and the in-process backend.

A storage answers for calls and all the limits that apply to each (:class:`Slot`), in one
atomic step: either every limit admits a call and each records it, or none does and the
answer says how long to wait.  :class:`MemoryStorage` is a complete backend with the same
semantics as :class:`~.redis_storage.RedisStorage` (the same tests run on both), so strategy
tests and simulations need no server; it only shares state within one process.

Every rule is decided on the storage's clock: expiry only collects garbage, so a storage whose
clock is injected (tests, simulations) behaves exactly like one on real time.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple, Protocol

from ..errors import CeleryDLXError
from . import window
from .adaptive import AdaptiveRate, AdaptiveState
from .budget import Budget

#: Suffixes of the three pieces of state a slot may have, under its key.
WINDOW, BUDGET, ADAPTIVE = ":w", ":b", ":a"


class StorageUnavailable(CeleryDLXError):
    """The storage could not be reached in time; the limiter's ``on_unavailable`` decides."""


class Slot(NamedTuple):
    """One limit as it applies to one call: where its state is and what it allows.

    A named tuple, not a dataclass: one is made per limit per call, and it is cheap.
    """

    #: The limit's name, reported when it denies a call.
    name: str
    #: Storage key of this limit for this call's factors.
    key: str
    #: Calls per window; 0 for a limit with no rate of its own (learned from headers only).
    limit: int
    #: Window length in microseconds; for an adaptive limit the longest one (at its floor rate),
    #: which is how long an entry can matter.
    period_us: int
    adaptive: AdaptiveRate | None = None


class Answer(NamedTuple):
    """A storage's decision for one call."""

    allowed: bool
    #: Microseconds until the call would be allowed; 0 when allowed.
    wait_us: int
    #: The storage's time of the decision, in microseconds.
    at_us: int
    #: Index of the slot with the longest wait; -1 when allowed.
    blocker: int
    #: Per slot, the adaptive rate in force (calls per second), None for other limits.
    rates: tuple[float | None, ...] = ()


class Storage(Protocol):
    """What a rate-limit backend does.  Every method is one atomic step."""

    def acquire(self, calls: Sequence[Sequence[Slot]], cost: int) -> list[Answer]:
        """Decide each call (the slots that cover it) in order, at one instant.

        A call of ``cost`` is admitted if every one of its slots allows it, and is then
        recorded in all of them; a denied call changes nothing.
        """

    def observe(self, key: str, remaining: int, reset_us: int, relative: bool) -> None:
        """Learn that ``remaining`` calls are left until ``reset_us`` (from now if ``relative``)."""

    def feedback(self, slots: Sequence[Slot], limited: bool, admitted_us: int, rates: Sequence[float]) -> None:
        """Tell adaptive ``slots`` how a call admitted at ``admitted_us`` under ``rates`` went."""

    def clear(self, slots: Sequence[Slot]) -> None:
        """Forget everything about ``slots``."""


#: MemoryStorage collects expired keys once per this many writes.
SWEEP_EVERY = 4096


class MemoryStorage:
    """Rate-limit state in this process: thread-safe, with the semantics of Redis storage.

    ``clock`` returns UNIX seconds; inject one to run simulations and tests without waiting.
    """

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._data: dict[str, Any] = {}
        self._expires: dict[str, int] = {}
        self._writes = 0

    def __len__(self) -> int:
        """Pieces of state held: bounded by the keys in use, expired ones are collected."""
        with self._lock:
            return len(self._data)

    def acquire(self, calls: Sequence[Sequence[Slot]], cost: int) -> list[Answer]:
        with self._lock:
            now = self._now()
            return [self._acquire(slots, cost, now) for slots in calls]

    def observe(self, key: str, remaining: int, reset_us: int, relative: bool) -> None:
        with self._lock:
            now = self._now()
            newer = Budget(remaining, now + reset_us if relative else reset_us)
            if newer.reset_us <= now:
                return  # describes a window that is over
            older: Budget | None = self._get(key + BUDGET, now)
            merged = older.merge(newer, now) if older else newer
            self._put(key + BUDGET, merged, merged.reset_us)

    def feedback(self, slots: Sequence[Slot], limited: bool, admitted_us: int, rates: Sequence[float]) -> None:
        with self._lock:
            now = self._now()
            for slot, admitted_rate in zip(slots, rates):
                adaptive = adaptive_of(slot)
                state = adaptive.current(self._get(slot.key + ADAPTIVE, now), now)
                if limited:
                    state = adaptive.limited(state, now, admitted_us, admitted_rate)
                else:
                    state = adaptive.succeeded(state, now)
                self._put(slot.key + ADAPTIVE, state, now + adaptive.forget_after_us)

    def clear(self, slots: Sequence[Slot]) -> None:
        with self._lock:
            for slot in slots:
                for suffix in (WINDOW, BUDGET, ADAPTIVE):
                    self._drop(slot.key + suffix)

    def _acquire(self, slots: Sequence[Slot], cost: int, now: int) -> Answer:
        longest, blocker = 0, -1
        rates = tuple(self._rate(slot, now) for slot in slots)
        for index, (slot, rate) in enumerate(zip(slots, rates)):
            wait = self._wait(slot, rate, now, cost)
            if wait > longest:
                longest, blocker = wait, index
        if longest:
            return Answer(False, longest, now, blocker, rates)
        for slot in slots:
            self._admit(slot, now, cost)
        return Answer(True, 0, now, -1, rates)

    def _rate(self, slot: Slot, now: int) -> float | None:
        if slot.adaptive is None:
            return None
        state: AdaptiveState | None = self._get(slot.key + ADAPTIVE, now)
        return slot.adaptive.rate(slot.adaptive.current(state, now))

    def _wait(self, slot: Slot, rate: float | None, now: int, cost: int) -> int:
        wait = 0
        log: deque[int] | None = self._get(slot.key + WINDOW, now)
        if slot.limit and log:
            period = slot.period_us if rate is None else window.period_us(slot.limit, rate)
            wait = window.wait_us(log, now, slot.limit, period, cost)
        budget: Budget | None = self._get(slot.key + BUDGET, now)
        return max(wait, budget.wait_us(now, cost)) if budget else wait

    def _admit(self, slot: Slot, now: int, cost: int) -> None:
        if slot.limit:
            log: deque[int] = self._get(slot.key + WINDOW, now) or deque()
            window.admit(log, now, slot.limit, cost)
            self._put(slot.key + WINDOW, log, now + slot.period_us)
        budget: Budget | None = self._get(slot.key + BUDGET, now)
        if budget and budget.reset_us > now:
            self._put(slot.key + BUDGET, budget.spend(cost), budget.reset_us)

    def _now(self) -> int:
        return round(self._clock() * 1_000_000)

    def _get(self, name: str, now: int) -> Any:
        if self._expires.get(name, now + 1) <= now:
            self._drop(name)
        return self._data.get(name)

    def _put(self, name: str, value: object, expires_us: int) -> None:
        self._data[name] = value
        self._expires[name] = expires_us
        self._writes += 1
        if self._writes % SWEEP_EVERY == 0:
            self._sweep(self._now())

    def _drop(self, name: str) -> None:
        self._data.pop(name, None)
        self._expires.pop(name, None)

    def _sweep(self, now: int) -> None:
        """Forget expired keys, so keys that are never asked for again do not pile up."""
        for name in [name for name, expires in self._expires.items() if expires <= now]:
            self._drop(name)


def adaptive_of(slot: Slot) -> AdaptiveRate:
    """The adaptive rate of ``slot``, which must have one."""
    if slot.adaptive is None:
        raise ValueError(f"limit {slot.name!r} is not adaptive")
    return slot.adaptive
