"""The limiter: one decision for one call under every limit that covers it.

A call names its factors (``limiter.acquire(network="twitter", token="t1", queue="social")``);
every :class:`~.limit.Limit` that covers them must admit it, and the storage decides for all
of them in one atomic step (one Redis round trip).  A denied call is told how long to wait
and is never blocked: the caller reschedules it (:func:`~.tasks.acquire_or_retry` does so
through the broker).  :meth:`Limiter.acquire` consumes nothing for a denied call.

Reservations.  A denied call told only "the next slot is free in 2 s" comes back with every
other call denied in that instant, one of them wins and the rest are denied again: a herd.
:meth:`Limiter.reserve` gives a denied call a slot of its own instead, recorded in every limit
that covers it, so the k-th call denied in a burst waits for the k-th free slot (the slots of
a call's first limit paced at its rate, so they come back one after another).  Presented
when the call comes back (``claim=``), the slot admits it without deciding again, if it is
claimed within ``grace`` after its slot and nothing learned since (a budget from headers, a
``Retry-After``) forbids it.  An adaptive decrease does not void reservations made before it
(the calls already scheduled, like calls already in flight, count once: feedback on a claimed
call dates from its reservation), only later ones are spaced at the new rate.  Each reservation counts in every window as
a call at ``slot + grace``, the latest it may run, so no window of any limit, by the times the
calls really ran (the claims), ever holds more than the limit.  A reservation never claimed
costs one call in each window until it ages out, one period after its slot.

Besides known rates, the limiter learns: :meth:`Limiter.observe` takes what response headers
say is left of a quota, and :meth:`Limiter.feedback` tells adaptive limits whether a call they
admitted was rate-limited.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterable, Mapping
from functools import partial
from typing import Literal, NamedTuple

from ..errors import ConfigurationError
from .limit import Limit
from .storage import Answer, Reservation, Slot, Storage, StorageUnavailable

logger = logging.getLogger(__name__)

#: Default first word of every storage key.
DEFAULT_PREFIX = "celery_dlx:ratelimit"

#: Default ``grace``: how late after its slot a reservation may still be claimed, in seconds.
#: A deferral carrying one is planned exactly (never early, at most a 10 ms unit late) and
#: arrives after a few broker hops; every reservation costs this much time in its windows.
DEFAULT_GRACE = 0.1

#: How many distinct factor combinations a limiter remembers the slots of.
REMEMBERED_CALLS = 10_000

#: What to do when the storage cannot be reached:
#: ``"deny"`` (fail closed: the call waits ``unavailable_wait`` and is tried again; no quota is
#: ever exceeded), ``"allow"`` (fail open: calls go ahead unlimited) or ``"raise"``
#: (:class:`~.storage.StorageUnavailable` reaches the caller).
OnUnavailable = Literal["deny", "allow", "raise"]


class Decision(NamedTuple):
    """The answer for one call (a named tuple: one is made per call, and it is cheap)."""

    allowed: bool
    #: Seconds until the call would be allowed, if nothing else is admitted first; 0 if allowed.
    wait: float
    #: Storage time of the decision, in microseconds (feedback compares it with decreases).
    at_us: int
    #: Name of the limit that denied the call (the one with the longest wait).
    limit: str | None = None
    #: The limits that covered the call, for :meth:`Limiter.feedback`.
    slots: tuple[Slot, ...] = ()
    #: Per slot, the adaptive rate in force (calls per second); None for other limits.
    rates: tuple[float | None, ...] = ()
    #: True when the storage was unavailable and ``on_unavailable`` decided.
    degraded: bool = False
    #: The slot reserved for a call :meth:`Limiter.reserve` denied, or the one an admitted
    #: call presented.
    reservation: Reservation | None = None

    @property
    def at(self) -> float:
        """Storage time of the decision, UNIX seconds."""
        return self.at_us / 1_000_000


class Limiter:
    """Decides calls under a set of named limits kept in ``storage``.

    ``prefix`` starts every storage key; ``on_unavailable`` and ``unavailable_wait`` say what
    happens while the storage is unreachable (see :data:`OnUnavailable`); ``grace`` is how late
    (seconds) a reservation may be claimed, the same for every limiter sharing the keys.
    """

    def __init__(
        self,
        storage: Storage,
        limits: Iterable[Limit],
        *,
        prefix: str = DEFAULT_PREFIX,
        on_unavailable: OnUnavailable = "deny",
        unavailable_wait: float = 5.0,
        grace: float = DEFAULT_GRACE,
    ) -> None:
        self.storage = storage
        self.limits: dict[str, Limit] = {}
        for limit in limits:
            if limit.name in self.limits:
                raise ConfigurationError(f"two limits are named {limit.name!r}; names must be unique (they are keys)")
            self.limits[limit.name] = limit
        self.prefix = prefix
        self._remembered: dict[tuple[tuple[str, str], ...], tuple[Slot, ...]] = {}
        self.on_unavailable = on_unavailable
        self.unavailable_wait = unavailable_wait
        if on_unavailable not in ("deny", "allow", "raise"):
            raise ConfigurationError(f"on_unavailable must be 'deny', 'allow' or 'raise', got {on_unavailable!r}")
        if not math.isfinite(unavailable_wait) or unavailable_wait <= 0:
            raise ConfigurationError(f"unavailable_wait must be a positive number of seconds, got {unavailable_wait!r}")
        if isinstance(grace, bool) or not isinstance(grace, (int, float)) or not 0 < grace < math.inf:
            raise ConfigurationError(f"grace must be a positive number of seconds, got {grace!r}")
        self.grace_us = max(1, round(grace * 1_000_000))
        if not isinstance(prefix, str) or not prefix:
            raise ConfigurationError(f"prefix must be a non-empty string, got {prefix!r}")

    def acquire(self, *, cost: int = 1, **factors: object) -> Decision:
        """Admit one call with ``factors`` costing ``cost`` units, or say how long to wait."""
        slots = self._slots(factors)
        _check_cost(slots, cost)
        if not slots:
            return Decision(True, 0.0, _now_us())
        try:
            [answer] = self.storage.acquire([slots], cost)
        except StorageUnavailable as error:
            return self._unavailable(slots, error)
        return _decision(answer, slots)

    def reserve(self, *, cost: int = 1, claim: Reservation | None = None, **factors: object) -> Decision:
        """:meth:`acquire`, but a denied call reserves its own slot (``decision.reservation``,
        ``decision.wait`` away) instead of consuming nothing.

        Present the reservation as ``claim`` when the call comes back: within ``grace`` after
        its slot it is admitted (unless a budget or ``Retry-After`` learned since forbids it); before its slot it is denied again with the same reservation; used,
        late or forbidden, the call is decided anew (and may reserve again).
        """
        slots = self._slots(factors)
        _check_cost(slots, cost)
        if not slots:
            return Decision(True, 0.0, _now_us())
        try:
            [answer] = self.storage.acquire([slots], cost, grace_us=self.grace_us, reserve=True, claim=claim)
        except StorageUnavailable as error:
            return self._unavailable(slots, error)
        decision = _decision(answer, slots)
        if answer.allowed:
            return decision._replace(reservation=claim)  # feedback dates a claimed call from it
        slot_us = answer.at_us + answer.wait_us
        kept = claim is not None and claim.slot_us == slot_us
        return decision._replace(reservation=claim if kept else Reservation(slot_us, answer.at_us))

    def acquire_many(self, calls: Iterable[Mapping[str, object]], *, cost: int = 1) -> list[Decision]:
        """:meth:`acquire` for each mapping of factors, in order, in one atomic step.

        For a dispatcher that decides a batch (a fan-out of page fetches) at once: each call is
        decided as if the earlier ones in the batch had just been admitted or denied, and with
        Redis the batch is one script run, so keep batches to hundreds, not millions.
        """
        batch = [self._slots(factors) for factors in calls]
        for slots in batch:
            _check_cost(slots, cost)
        try:
            answers = self.storage.acquire(batch, cost)
        except StorageUnavailable as error:
            return [self._unavailable(slots, error) for slots in batch]
        return [_decision(answer, slots) for answer, slots in zip(answers, batch)]

    def observe(
        self,
        limit: str,
        *,
        remaining: int,
        reset_at: float | None = None,
        reset_after: float | None = None,
        **factors: object,
    ) -> None:
        """Learn from response headers that ``remaining`` calls are left under ``limit``.

        Give the reset as ``reset_at`` (UNIX seconds, as ``x-rate-limit-reset``) or
        ``reset_after`` (seconds from now, as ``Retry-After``).  Until the reset, calls beyond
        ``remaining`` are denied with a wait that ends at the reset, so no call is wasted on a
        refusal.  Observations about the same window never raise what is left.
        """
        if (reset_at is None) == (reset_after is None):
            raise ValueError("give exactly one of reset_at and reset_after")
        if isinstance(remaining, bool) or not isinstance(remaining, int) or remaining < 0:
            raise ValueError(f"remaining must be a whole number >= 0, got {remaining!r}")
        named = self.limits.get(limit)
        if named is None:
            raise ValueError(f"no limit named {limit!r}; known: {', '.join(self.limits)}")
        clean = _clean(factors)
        if not named.covers(clean):
            raise ValueError(f"limit {limit!r} does not cover a call with {clean}")
        key = named.slot(self.prefix, clean).key
        relative = reset_after is not None
        reset_us = _us(reset_after if relative else reset_at)
        self._learn(partial(self.storage.observe, key, remaining, reset_us, relative))

    def feedback(self, decision: Decision, *, limited: bool, retry_after: float | None = None) -> None:
        """Tell the adaptive limits of an admitted call whether the server rate-limited it.

        A rate-limited call decreases their rate (once for all calls admitted before the
        decrease); a success lets it climb.  With ``retry_after`` (seconds, from a 429) they
        also deny every call until then.  Limits with a known rate are not changed: what a
        server says about those comes in through :meth:`observe`.
        """
        if not decision.allowed:
            raise ValueError("feedback is for calls the limiter admitted; this one was denied")
        pairs = [(slot, rate) for slot, rate in zip(decision.slots, decision.rates) if rate is not None]
        if not pairs:
            return
        adaptive = [slot for slot, _ in pairs]
        rates = [rate for _, rate in pairs]
        admitted = decision.reservation.made_us if decision.reservation else decision.at_us  # scheduled then
        self._learn(partial(self.storage.feedback, adaptive, limited, admitted, rates))
        if limited and retry_after is not None and retry_after > 0:
            block = _us(retry_after)
            for key in [slot.key for slot in adaptive]:
                self._learn(partial(self.storage.observe, key, 0, block, True))

    def reset(self, **factors: object) -> None:
        """Forget all state of the limits that cover a call with ``factors``."""
        self.storage.clear(self._slots(factors))

    def _slots(self, factors: Mapping[str, object]) -> tuple[Slot, ...]:
        """The slots of the limits covering a call, remembered per factors: the same tokens and
        queues come back, and building keys is most of the limiter's own work per call."""
        clean = _clean(factors)
        remembered = tuple(clean.items())
        slots = self._remembered.get(remembered)
        if slots is None:
            slots = tuple(limit.slot(self.prefix, clean) for limit in self.limits.values() if limit.covers(clean))
            if len(self._remembered) >= REMEMBERED_CALLS:
                self._remembered.clear()
            self._remembered[remembered] = slots
        return slots

    def _unavailable(self, slots: tuple[Slot, ...], error: StorageUnavailable) -> Decision:
        if self.on_unavailable == "raise":
            raise error
        allowed = self.on_unavailable == "allow"
        logger.warning("rate-limit storage unavailable, %s the call: %s", "allowing" if allowed else "denying", error)
        return Decision(allowed, 0.0 if allowed else self.unavailable_wait, _now_us(), None, slots, degraded=True)

    def _learn(self, update: Callable[[], None]) -> None:
        """Run a learning update; losing one while the storage is down only costs accuracy."""
        try:
            update()
        except StorageUnavailable as error:
            if self.on_unavailable == "raise":
                raise
            logger.warning("rate-limit storage unavailable, feedback lost: %s", error)


def _check_cost(slots: tuple[Slot, ...], cost: int) -> None:
    if cost == 1 and type(cost) is int:
        return  # the usual call, which every limit fits
    if isinstance(cost, bool) or not isinstance(cost, int) or cost < 1:
        raise ValueError(f"cost must be a whole number >= 1, got {cost!r}")
    too_small = [slot.name for slot in slots if 0 < slot.limit < cost]
    if too_small:
        raise ValueError(f"a call costing {cost} can never fit limit(s) {', '.join(too_small)}")


def _us(seconds: float | None) -> int:
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not math.isfinite(seconds):
        raise ValueError(f"expected a finite number of seconds, got {seconds!r}")
    return round(seconds * 1_000_000)


def _clean(factors: Mapping[str, object]) -> dict[str, str]:
    """Factors as strings; a factor given as None counts as not given."""
    return {name: str(value) for name, value in factors.items() if value is not None}


def _decision(answer: Answer, slots: tuple[Slot, ...]) -> Decision:
    limit = slots[answer.blocker].name if answer.blocker >= 0 else None
    return Decision(answer.allowed, answer.wait_us / 1_000_000, answer.at_us, limit, slots, answer.rates)


def _now_us() -> int:
    return time.time_ns() // 1000
