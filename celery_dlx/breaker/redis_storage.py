"""Breaker state in Redis, shared by every worker: the production backend.

Each operation is one Lua script (``lua/admit.lua``, ``lua/record.lua``, ``lua/load.lua``,
each prepended with the shared clock and ``lua/lib.lua``, see :mod:`celery_dlx.redisio.scripts`) registered with redis-py's ``register_script``: a
transition is atomic, so two workers can never both take the last probe, both trip the
breaker, or get the same slot.  Time comes from Redis's ``TIME`` inside the script (one
clock for every worker); ``clock=`` injects one for tests.

A breaker is two keys under the prefix: ``<prefix>:{<name>}`` (a hash: mode, opened, probe time,
opens, probes issued, successes, last probe, end and start of the line, deferrals) and
``<prefix>:{<name>}:f`` (the failure log, at most ``threshold`` times).  The name is their hash
tag (:func:`celery_dlx.redisio.keys.tagged`), so on Redis Cluster both are in one slot and the
breakers spread over the nodes (tested on a local cluster: ``make test-redis-cluster``).  They
expire ``forget_after`` after the probe time or the end of the line, whichever is later; a
closed breaker with nothing logged is deleted.

Never a hang: the client must have socket timeouts (checked), and an unanswered call raises
:class:`~.storage.BreakerUnavailable`.
"""

from __future__ import annotations

import random
from typing import Any

from ..redisio.store import ScriptedStore
from .state import Admission, Policy, State
from .storage import BreakerUnavailable

#: Socket timeouts of :meth:`RedisStorage.from_url`, in seconds: a breaker is asked before
#: every call, so a slow Redis must cost little.
DEFAULT_TIMEOUT = 0.25


class RedisStorage(ScriptedStore):
    """Breaker state in Redis; see the module docstring."""

    purpose = "circuit breakers"
    unavailable = BreakerUnavailable
    default_timeout = DEFAULT_TIMEOUT
    scripts = ("admit", "record", "load")

    def admit(self, key: str, policy: Policy, u: float | None = None) -> Admission:
        u = random.random() if u is None else u
        now, action, due, mode = self._guard(self._scripts["admit"], _keys(key), [self._now(), *policy.arguments(), repr(u)])
        return Admission(_text(action), int(due), int(now), _text(mode))

    def record(self, key: str, policy: Policy, outcome: str, probe: bool) -> str:
        args = [self._now(), *policy.arguments(), outcome, "1" if probe else "0"]
        _, mode = self._guard(self._scripts["record"], _keys(key), args)
        return _text(mode)

    def load(self, key: str) -> tuple[State, int]:
        now, mode, *numbers, failures = self._guard(self._scripts["load"], _keys(key), [self._now()])
        o, p, n, i, k, t, c, b, d = (int(x) for x in numbers)
        return State(_text(mode), o, p, n, i, k, t, c, b, d, tuple(int(f) for f in failures)), int(now)

    def reset(self, key: str) -> None:
        self._guard(self.client.delete, *_keys(key))


def _keys(key: str) -> list[str]:
    return [key, key + ":f"]


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)

