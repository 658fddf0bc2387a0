"""Rate-limit state in Redis, shared by every worker: the production backend.

Each operation is one Lua script (``lua/*.lua``, prepended with the shared clock and ``lua/lib.lua``, see :mod:`celery_dlx.redisio.scripts`), registered
with redis-py's ``register_script``: it runs as ``EVALSHA`` and loads itself again after a
``SCRIPT FLUSH`` or a failover.  A script is atomic, so one call's decision under all of its
limits is a single round trip, and no other worker sees half of it; a batch of calls
(:meth:`.Limiter.acquire_many`) is one script run too.

Time comes from Redis's ``TIME`` inside the script: every worker shares one clock, so worker
clock skew cannot let calls through early or stack a log out of order.  ``clock=`` injects
a clock instead, for tests and simulations.

Redis unavailable.  A call never hangs: the client must have socket timeouts (checked here),
and a Redis that does not answer within them raises :class:`~.storage.StorageUnavailable`,
which the :class:`~.limiter.Limiter` turns into a denial, an admission or an error as its
``on_unavailable`` says.  The longest a call can take is about
``(socket_connect_timeout + socket_timeout) * (1 + retries)``; :meth:`RedisStorage.from_url`
makes that 0.5 s with one retry, so a worker waits at most about 2 s for a dead Redis.

Needs Redis >= 5 (scripts that read ``TIME`` and then write).  Keys live under the limiter's
prefix and expire by themselves (a window after its period, a budget at its reset, adaptive
state after ``forget_after``).  In Redis Cluster all keys of a call (and of a batch) must be in
one slot: put a hash tag in the prefix (``"{rl}:celery_dlx"``); this is not tested here.
"""

from __future__ import annotations

import functools
import random
from collections.abc import Sequence
from typing import Any

from ..redisio.store import ScriptedStore
from .budget import SAME_WINDOW_US
from .storage import (
    ADAPTIVE,
    BUDGET,
    RESERVED,
    WINDOW,
    Answer,
    Reservation,
    Slot,
    StorageUnavailable,
    adaptive_of,
)

#: Socket timeouts of :meth:`RedisStorage.from_url`, in seconds.
DEFAULT_TIMEOUT = 0.5


class RedisStorage(ScriptedStore):
    """Rate-limit state in Redis; see the module docstring for clock, errors and keys."""

    purpose = "rate limits"
    unavailable = StorageUnavailable
    default_timeout = DEFAULT_TIMEOUT
    scripts = ("acquire", "observe", "feedback")

    def acquire(
        self,
        calls: Sequence[Sequence[Slot]],
        cost: int,
        *,
        grace_us: int = 0,
        reserve: bool = False,
        claim: Reservation | None = None,
    ) -> list[Answer]:
        """One script run for the whole batch: one round trip, however many calls and limits."""
        keys: list[str] = []
        args: list[Any] = [self._now(), cost, grace_us, random.getrandbits(48)]
        if claim is not None:
            args += ("c", claim.slot_us)
        else:
            args.append("r" if reserve else "p")
        reserving = reserve or claim is not None
        for slots in calls:
            args.append(len(slots))
            if reserving and slots:
                keys.append(slots[0].key + RESERVED)
            for slot in slots:
                _add_arguments(slot, keys, args)
        reply = self._guard(self._scripts["acquire"], keys, args)
        return _answers(reply, calls)

    def observe(self, key: str, remaining: int, reset_us: int, relative: bool) -> None:
        args = [self._now(), remaining, reset_us, "1" if relative else "0", SAME_WINDOW_US]
        self._guard(self._scripts["observe"], [key + BUDGET], args)

    def feedback(self, slots: Sequence[Slot], limited: bool, admitted_us: int, rates: Sequence[float]) -> None:
        args: list[Any] = [self._now(), "1" if limited else "0", admitted_us]
        for slot, rate in zip(slots, rates):
            args += (rate, *_adaptive_arguments(slot))
        self._guard(self._scripts["feedback"], [slot.key + ADAPTIVE for slot in slots], args)

    def clear(self, slots: Sequence[Slot]) -> None:
        keys = [slot.key + suffix for slot in slots for suffix in (WINDOW, BUDGET, ADAPTIVE, RESERVED)]
        if keys:
            self._guard(self.client.delete, *keys)


def _add_arguments(slot: Slot, keys: list[Any], args: list[Any]) -> None:
    """A slot's KEYS and ARGV in ``acquire.lua`` (see :func:`_slot_arguments`)."""
    slot_keys, slot_args = _slot_arguments(slot)
    keys += slot_keys
    args += slot_args


@functools.lru_cache(maxsize=65_536)
def _slot_arguments(slot: Slot) -> tuple[tuple[bytes, ...], tuple[bytes, ...]]:
    """A slot's KEYS and ARGV in ``acquire.lua``, encoded once: the limiter hands back the same
    slots for the same factors, and encoding a dozen arguments is most of the client's work per
    call.  An adaptive slot has three keys and nine values, any other two and three."""
    if slot.adaptive is None:
        keys: tuple[str, ...] = (slot.key + WINDOW, slot.key + BUDGET)
        args: tuple[Any, ...] = ("f", slot.limit, slot.period_us)
    else:
        keys = (slot.key + WINDOW, slot.key + BUDGET, slot.key + ADAPTIVE)
        args = ("a", slot.limit, slot.period_us, *_adaptive_arguments(slot))
    return tuple(key.encode() for key in keys), tuple(str(arg).encode() for arg in args)


def _adaptive_arguments(slot: Slot) -> tuple[Any, ...]:
    rate = adaptive_of(slot)
    return (rate.initial, rate.floor, rate.ceiling, rate.decrease, rate.recover, rate.forget_after_us)


def _answers(reply: Sequence[Any], calls: Sequence[Sequence[Slot]]) -> list[Answer]:
    """The script's reply: its time, then per call its wait, the blocker if it was denied, and
    its adaptive rates (an admitted call with no adaptive limit is a single 0)."""
    now, *rest = reply
    at, answers, position = int(now), [], 0
    for slots in calls:
        wait, blocker = int(rest[position]), -1
        position += 1
        if wait:
            blocker = int(rest[position])
            position += 1
        rates: list[float | None] = []
        for slot in slots:
            if slot.adaptive is None:
                rates.append(None)
            else:
                rates.append(float(rest[position]))
                position += 1
        answers.append(Answer(wait == 0, wait, at, blocker, tuple(rates)))
    return answers

