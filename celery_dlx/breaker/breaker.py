"""``Breaker``: circuit breakers by name (a network, or a network and an endpoint) over a storage.

No Celery here (:mod:`.tasks` connects it to tasks).  A task asks :meth:`Breaker.admit`
before calling a network and reports how the call went with :meth:`Breaker.record` (or
:meth:`Breaker.record_verdict`); a status display reads :meth:`Breaker.state`.

Storage unavailable.  A breaker is an optimisation on top of retries that work without it, so
the default is to **fail open** (``on_unavailable="allow"``): when Redis does not answer within
its socket timeouts the call goes ahead as if no breaker existed, and for ``unavailable_retry``
seconds this process does not ask Redis again (a dead Redis costs one timeout per process per
``unavailable_retry``, not one per task).  Failing closed would turn a Redis outage into an
outage of every network.  ``"deny"`` defers the task ``unavailable_wait`` seconds instead
(for APIs where one stray call during an outage is costly), ``"raise"`` lets
:class:`~.storage.BreakerUnavailable` through.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterable
from typing import Literal

from ..classify import Verdict, VerdictKind
from ..errors import ConfigurationError
from ..redisio.keys import tagged
from . import state as machine
from .state import CALL, DEFER, FAILURE, RELEASE, SUCCESS, Admission, Policy, Snapshot
from .storage import BreakerUnavailable, Storage

logger = logging.getLogger(__name__)

#: Default first word of every storage key.
DEFAULT_PREFIX = "celery_dlx:breaker"
#: Verdicts that count as the network failing.  RATE_LIMITED does not: it is about one token
#: or app, and the network is answering.
TRIP_ON = frozenset({VerdictKind.RETRY_SOON, VerdictKind.OVER_CAPACITY})

OnUnavailable = Literal["allow", "deny", "raise"]


class Breaker:
    """Circuit breakers kept in ``storage``, one per name, each with a :class:`Policy`.

    ``policy`` is the default; ``policies`` maps names (``"facebook"`` or
    ``"facebook:insights"``) to their own.  See the module docstring for ``on_unavailable``.
    """

    def __init__(
        self,
        storage: Storage,
        policy: Policy | None = None,
        *,
        policies: dict[str, Policy] | None = None,
        prefix: str = DEFAULT_PREFIX,
        trip_on: Iterable[VerdictKind] = TRIP_ON,
        on_unavailable: OnUnavailable = "allow",
        unavailable_wait: float = 5.0,
        unavailable_retry: float = 5.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        if on_unavailable not in ("allow", "deny", "raise"):
            raise ConfigurationError(f"on_unavailable must be 'allow', 'deny' or 'raise', got {on_unavailable!r}")
        for name, value in (("unavailable_wait", unavailable_wait), ("unavailable_retry", unavailable_retry)):
            if not (value >= 0 and math.isfinite(value)):
                raise ConfigurationError(f"{name} must be a number of seconds >= 0, got {value!r}")
        if not isinstance(prefix, str) or not prefix:
            raise ConfigurationError(f"prefix must be a non-empty string, got {prefix!r}")
        self.storage = storage
        self.policy = policy or Policy()
        self.policies = dict(policies or {})
        self.prefix = prefix
        self.trip_on = frozenset(VerdictKind(k) for k in trip_on)
        self.on_unavailable = on_unavailable
        self.unavailable_wait = unavailable_wait
        self.unavailable_retry = unavailable_retry
        self._monotonic = monotonic
        self._down_until = -math.inf

    def policy_for(self, name: str, policy: Policy | None = None) -> Policy:
        """``policy`` if given, else the one configured for ``name``, else for its network
        (the part before ``:``), else the default."""
        if policy is not None:
            return policy
        return self.policies.get(name) or self.policies.get(name.split(":", 1)[0]) or self.policy

    def admit(self, name: str, policy: Policy | None = None) -> Admission:
        """May a call to ``name`` go now?  CALL, PROBE, or DEFER with the time to come back."""
        if self._monotonic() < self._down_until:
            return self._unavailable(None)
        try:
            return self.storage.admit(self._key(name), self.policy_for(name, policy))
        except BreakerUnavailable as error:
            return self._unavailable(error)

    def record(self, name: str, outcome: str, *, probe: bool = False, policy: Policy | None = None) -> str | None:
        """Report a call's outcome (FAILURE, SUCCESS or RELEASE); returns the breaker's mode,
        or None when the storage was unavailable (the outcome is then dropped)."""
        if self._monotonic() < self._down_until:
            return None
        try:
            return self.storage.record(self._key(name), self.policy_for(name, policy), outcome, probe)
        except BreakerUnavailable as error:
            self._mark_down(error)
            if self.on_unavailable == "raise":
                raise
            return None

    def record_verdict(
        self, name: str, verdict: Verdict | VerdictKind, *, probe: bool = False, policy: Policy | None = None
    ) -> str | None:
        """:meth:`record` for a classified response: a ``trip_on`` kind is a failure, anything
        else (OK, and also 4xx verdicts: the network answered) a success."""
        kind = verdict.kind if isinstance(verdict, Verdict) else VerdictKind(verdict)
        return self.record(name, FAILURE if kind in self.trip_on else SUCCESS, probe=probe, policy=policy)

    def release(self, name: str, *, probe: bool, policy: Policy | None = None) -> None:
        """A call ended without telling anything about the network (frees a probe)."""
        if probe:
            self.record(name, RELEASE, probe=True, policy=policy)

    def state(self, name: str, policy: Policy | None = None) -> Snapshot:
        """The breaker ``name`` now, for a status display (raises BreakerUnavailable)."""
        stored, now = self.storage.load(self._key(name))
        return machine.snapshot(name, stored, self.policy_for(name, policy), now)

    def snapshot(self, names: Iterable[str]) -> list[Snapshot]:
        """:meth:`state` of each of ``names`` (e.g. every network), in order."""
        return [self.state(name) for name in names]

    def reset(self, name: str) -> None:
        """Close the breaker ``name`` by hand and forget its line (an operator's override)."""
        self.storage.reset(self._key(name))

    def _key(self, name: str) -> str:
        if not isinstance(name, str) or not name:
            raise ValueError(f"a breaker name must be a non-empty string, got {name!r}")
        return tagged(self.prefix, name)

    def _mark_down(self, error: BaseException) -> None:
        self._down_until = self._monotonic() + self.unavailable_retry
        logger.warning(
            "circuit breaker storage unavailable (%s); %s for %.1f s",
            error,
            {"allow": "calls go ahead", "deny": "calls are deferred", "raise": "calls fail"}[self.on_unavailable],
            self.unavailable_retry,
        )

    def _unavailable(self, error: BreakerUnavailable | None) -> Admission:
        if error is not None:
            self._mark_down(error)
        if self.on_unavailable == "raise":
            raise error or BreakerUnavailable("breaker storage unavailable (recently failed)")
        if self.on_unavailable == "allow":
            return Admission(CALL, 0, 0, "unknown", degraded=True)
        wait_us = round(self.unavailable_wait * machine.US)
        return Admission(DEFER, wait_us, 0, "unknown", degraded=True)


__all__ = ["DEFAULT_PREFIX", "FAILURE", "RELEASE", "SUCCESS", "TRIP_ON", "Breaker", "OnUnavailable"]
