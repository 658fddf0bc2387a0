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
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple, Protocol

from ..errors import CeleryDLXError
from . import window
from .adaptive import AdaptiveRate, AdaptiveState
from .budget import Budget

#: Suffixes of the pieces of state a slot may have, under its key: its window log, header
#: budget, adaptive state, and the reservations not yet claimed (kept in a call's first slot).
WINDOW, BUDGET, ADAPTIVE, RESERVED = ":w", ":b", ":a", ":r"


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


class Reservation(NamedTuple):
    """A slot a denied call was given (storage times, microseconds): the call may run from
    ``slot_us`` until ``slot_us`` plus the grace it was reserved with, once."""

    slot_us: int
    #: When it was reserved, under the rates then: feedback on the call counts from then.
    made_us: int


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

    def acquire(
        self,
        calls: Sequence[Sequence[Slot]],
        cost: int,
        *,
        grace_us: int = 0,
        reserve: bool = False,
        claim: Reservation | None = None,
    ) -> list[Answer]:
        """Decide each call (the slots that cover it) in order, at one instant.

        A call of ``cost`` is admitted if every one of its slots allows it, and is then
        recorded in all of them.  Without ``reserve`` a denied call changes nothing; with it,
        a denied call is given the earliest slot every limit allows after every earlier call and
        reservation, recorded in all of them as a call at ``slot + grace_us`` (the latest it may
        run): its answer's ``at_us + wait_us``.  ``claim`` (one call only) presents a reservation
        made earlier: within its grace it is admitted without being decided again, unless a
        budget learned since (headers, a ``Retry-After``) forbids it; before its slot it is
        denied until then and kept; otherwise the call is decided anew.
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

    def acquire(
        self,
        calls: Sequence[Sequence[Slot]],
        cost: int,
        *,
        grace_us: int = 0,
        reserve: bool = False,
        claim: Reservation | None = None,
    ) -> list[Answer]:
        with self._lock:
            now = self._now()
            return [self._acquire(slots, cost, now, grace_us, reserve, claim) for slots in calls]

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
                for suffix in (WINDOW, BUDGET, ADAPTIVE, RESERVED):
                    self._drop(slot.key + suffix)

    def _acquire(
        self, slots: Sequence[Slot], cost: int, now: int, grace: int, reserve: bool, claim: Reservation | None
    ) -> Answer:
        rates = tuple(self._rate(slot, now) for slot in slots)
        periods = [slot.period_us if rate is None else window.period_us(slot.limit, rate) for slot, rate in zip(slots, rates)]
        budgeted = [self._budgeted(slot, now, cost) for slot in slots]
        earliest, blocker = now, -1
        for index, slot in enumerate(slots):
            at = max(self._earliest(slot, periods[index], now, now, cost, grace), budgeted[index])
            if at > earliest:
                earliest, blocker = at, index
        if earliest > now:
            earliest, blocker = self._settle(slots, periods, earliest, blocker, now, cost, grace)
        reserving = (reserve or claim is not None) and bool(slots)
        reserved: dict[int, int] | None = self._get(slots[0].key + RESERVED, now) if reserving else None
        if claim is not None and reserved is not None and claim.slot_us in reserved:
            if now < claim.slot_us:
                return Answer(False, claim.slot_us - now, now, 0, rates)
            until = reserved.pop(claim.slot_us)
            if now <= until and max(budgeted) <= now:
                self._spend(slots, now, cost)
                return Answer(True, 0, now, -1, rates)
        if earliest == now:
            for slot in slots:
                self._record(slot, now, cost, now)
            self._spend(slots, now, cost)
            return Answer(True, 0, now, -1, rates)
        if reserving:
            reserved = reserved if reserved is not None else {}
            for old in [old for old, until in reserved.items() if until < now]:
                del reserved[old]
            if reserved:  # paced at the first limit's rate (and so unique), as acquire.lua
                spacing = max(1, cost * periods[0] // slots[0].limit) if slots[0].limit else 1
                if next(reversed(reserved)) + spacing > earliest:
                    earliest, blocker = self._settle(slots, periods, next(reversed(reserved)) + spacing, blocker, now, cost, grace)
            self._reserve(slots, now, cost, earliest, grace, reserved)
        return Answer(False, earliest - now, now, blocker, rates)

    def _settle(
        self, slots: Sequence[Slot], periods: Sequence[int], at: int, blocker: int, now: int, cost: int, grace: int
    ) -> tuple[int, int]:
        """From ``at``, the earliest time every limit lets the call run, and the last one that moved it."""
        moved = True
        while moved:
            moved = False
            for index, slot in enumerate(slots):
                mine = self._earliest(slot, periods[index], at, now, cost, grace)
                if mine > at:
                    at, blocker, moved = mine, index, True
        return at, blocker

    def _reserve(self, slots: Sequence[Slot], now: int, cost: int, slot_us: int, grace: int, reserved: dict[int, int]) -> None:
        """Record a reservation at ``slot_us`` in every slot and in the call's reservations."""
        reserved[slot_us] = slot_us + grace
        self._put(slots[0].key + RESERVED, reserved, slot_us + grace)
        for slot in slots:
            self._record(slot, now, cost, slot_us + grace)

    def _rate(self, slot: Slot, now: int) -> float | None:
        if slot.adaptive is None:
            return None
        state: AdaptiveState | None = self._get(slot.key + ADAPTIVE, now)
        return slot.adaptive.rate(slot.adaptive.current(state, now))

    def _earliest(self, slot: Slot, period: int, start: int, now: int, cost: int, grace: int) -> int:
        """When the slot's window lets the call run, from ``start``."""
        log: list[int] | None = self._get(slot.key + WINDOW, now) if slot.limit else None
        return window.earliest_us(log, start, slot.limit, period, cost, grace) if log else start

    def _budgeted(self, slot: Slot, now: int, cost: int) -> int:
        """When the slot's budget lets the call run (0: any time)."""
        budget: Budget | None = self._get(slot.key + BUDGET, now)
        wait = budget.wait_us(now, cost) if budget else 0
        return now + wait if wait else 0

    def _record(self, slot: Slot, now: int, cost: int, entry: int) -> None:
        if slot.limit:
            log: list[int] = self._get(slot.key + WINDOW, now) or []
            window.admit(log, entry, cost, now - slot.period_us)
            self._put(slot.key + WINDOW, log, log[-1] + slot.period_us)

    def _spend(self, slots: Sequence[Slot], now: int, cost: int) -> None:
        for slot in slots:
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
