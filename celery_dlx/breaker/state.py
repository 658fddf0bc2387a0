"""The circuit breaker as a pure state machine over integer microseconds.

No Celery, kombu or redis: :class:`~.storage.MemoryStorage` runs these functions under a lock,
and the Redis scripts (``lua/*.lua``) are the same rules, statement for statement, so both
storages decide identically (the unit tests check them against each other).

States::

    CLOSED ──(threshold failures within window)──▶ OPEN ──(probe time reached)──▶ HALF_OPEN
      ▲                                              ▲                               │
      └────────────(close_after probe successes)─────┼───────────────────────────────┤
                                                     └──────(a probe fails)──────────┘

- CLOSED: every call goes ahead.  A failure (by default a RETRY_SOON or OVER_CAPACITY verdict)
  is logged; when the last ``threshold`` failures all fall within ``window`` seconds the
  breaker opens.  Successes do not erase failures: it is a burst detector, so size
  ``threshold`` for the network's traffic.
- OPEN: no call goes ahead; each task is deferred to a slot after the probe time
  (:mod:`.spread`).  The first open lasts ``open_for``; each probe that fails opens it again
  for ``backoff`` times longer, up to ``max_open_for``.
- HALF_OPEN: the first ``probes`` tasks go ahead as probes, the others are deferred (to at
  least ``probe_wait`` later).  ``close_after`` probe successes close the breaker; a probe
  failure opens it again.  A probe that never reports (its worker died) is written off after
  ``probe_timeout`` and another task probes.  Outcomes of calls that were not probes are
  ignored in this state (they were sent before the breaker opened).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

from . import spread

CLOSED, OPEN, HALF_OPEN = "closed", "open", "half_open"
#: What a call may do: go ahead, go ahead as a probe, or wait (be deferred).
CALL, PROBE, DEFER = "call", "probe", "defer"
#: What a call's outcome was: the network failed, answered, or nothing is known (release).
FAILURE, SUCCESS, RELEASE = "failure", "success", "release"

US = 1_000_000


@dataclass(frozen=True)
class Policy:
    """When a breaker opens, how long it stays open, how it probes and how fast waiting tasks
    come back.  Times in seconds, ``recovery_rate`` in tasks per second."""

    #: Failures within ``window`` seconds that open the breaker.
    threshold: int = 20
    window: float = 60.0
    #: First open period; each failed probe multiplies it by ``backoff``, up to ``max_open_for``.
    open_for: float = 30.0
    max_open_for: float = 300.0
    backoff: float = 2.0
    #: Probes in flight at once while half-open, and probe successes that close the breaker.
    probes: int = 3
    close_after: int = 2
    #: A probe not reported after this long is written off (another task probes).
    probe_timeout: float = 60.0
    #: While half-open, non-probe tasks wait at least this long (or for their slot).
    probe_wait: float = 5.0
    #: Waiting tasks come back at most this many per second after the probe time: set it at or
    #: below the network's rate limit, leaving room for new work.
    recovery_rate: float = 20.0
    #: State of a closed breaker with nothing waiting is dropped after this long.
    forget_after: float = 3600.0

    def __post_init__(self) -> None:
        if not (isinstance(self.threshold, int) and self.threshold >= 1):
            raise ValueError(f"threshold must be an int >= 1, got {self.threshold!r}")
        if not (isinstance(self.probes, int) and self.probes >= 1):
            raise ValueError(f"probes must be an int >= 1, got {self.probes!r}")
        if not (isinstance(self.close_after, int) and self.close_after >= 1):
            raise ValueError(f"close_after must be an int >= 1, got {self.close_after!r}")
        for name in ("window", "open_for", "max_open_for", "probe_timeout", "probe_wait", "forget_after"):
            value = getattr(self, name)
            if not (value > 0 and math.isfinite(value)):
                raise ValueError(f"{name} must be a positive number of seconds, got {value!r}")
        if self.max_open_for < self.open_for:
            raise ValueError("max_open_for must be >= open_for")
        if not (self.backoff >= 1 and math.isfinite(self.backoff)):
            raise ValueError(f"backoff must be >= 1, got {self.backoff!r}")
        spread.period_us(self.recovery_rate)  # validates the rate

    @property
    def period_us(self) -> int:
        return spread.period_us(self.recovery_rate)

    def arguments(self) -> list[int | str]:
        """The policy as the Redis scripts take it (ARGV 2…12), whole microseconds."""
        return [
            self.threshold,
            _us(self.window),
            _us(self.open_for),
            _us(self.max_open_for),
            repr(float(self.backoff)),
            self.probes,
            self.close_after,
            _us(self.probe_timeout),
            _us(self.probe_wait),
            self.period_us,
            _us(self.forget_after),
        ]


class State(NamedTuple):
    """One breaker's state; failures are their times, newest first (at most ``threshold``)."""

    mode: str = CLOSED
    opened_us: int = 0
    probe_us: int = 0
    #: Consecutive opens without closing (1 after the first trip); sets the open period.
    opens: int = 0
    #: Probes issued and not yet reported in this half-open round.
    issued: int = 0
    #: Probe successes in this half-open round.
    successes: int = 0
    #: When the last probe was issued.
    issued_us: int = 0
    #: End of the line of deferred tasks (see :mod:`.spread`), and where it starts.
    cursor_us: int = 0
    line_us: int = 0
    #: Deferrals ever made (a counter for status displays).
    deferred: int = 0
    failures: tuple[int, ...] = ()


class Admission(NamedTuple):
    """What one task may do now."""

    #: CALL, PROBE or DEFER.
    action: str
    #: For DEFER: when to come back (storage time, µs); else 0.
    due_us: int
    #: Storage time of the decision, µs.
    at_us: int
    #: The breaker's state after the decision ("unknown" when the storage was unavailable).
    mode: str
    #: True when the storage was unavailable and ``on_unavailable`` decided.
    degraded: bool = False

    @property
    def allowed(self) -> bool:
        return self.action != DEFER

    @property
    def probe(self) -> bool:
        return self.action == PROBE

    @property
    def wait(self) -> float:
        """Seconds until the task should come back (0 unless deferred)."""
        return max(0, self.due_us - self.at_us) / US if self.action == DEFER else 0.0


class Snapshot(NamedTuple):
    """A breaker as a status display shows it (times are storage UNIX seconds)."""

    name: str
    mode: str
    #: When it last opened (None if it never did / state forgotten).
    opened_at: float | None
    #: When the next probe may go (None unless open).
    probe_at: float | None
    #: Consecutive opens without closing.
    opens: int
    #: Failures within the window (closed) that count towards opening.
    failures: int
    #: Probes in flight (half-open).
    probes_in_flight: int
    #: Deferred tasks whose slot is still ahead (an upper bound).
    waiting: int
    #: When the last waiting task is due (None if none waits).
    drained_at: float | None
    #: Deferrals ever made by this breaker (while its state was kept).
    deferred: int
    #: Storage time of the snapshot.
    at: float


def open_period_us(policy: Policy, opens: int) -> int:
    """``open_for * backoff ** (opens - 1)``, capped at ``max_open_for`` (multiplied step by
    step, as the Lua script does, so both give the same microsecond)."""
    period, cap = float(_us(policy.open_for)), float(_us(policy.max_open_for))
    for _ in range(1, opens):
        period = min(cap, period * policy.backoff)
    return math.floor(min(cap, period))


def current(state: State, policy: Policy, now: int) -> State:
    """The state as time alone has changed it: an open breaker whose probe time has come is
    half-open; probes not reported for ``probe_timeout`` are written off."""
    if state.mode == OPEN and now >= state.probe_us:
        return state._replace(mode=HALF_OPEN, issued=0, successes=0, issued_us=0)
    if state.mode == HALF_OPEN and state.issued >= policy.probes and now - state.issued_us >= _us(policy.probe_timeout):
        return state._replace(issued=0)
    return state


def admit(state: State, policy: Policy, now: int, u: float) -> tuple[Admission, State]:
    """Decide one task at ``now``; ``u`` in [0, 1) places a deferred task inside its slot."""
    state = current(state, policy, now)
    if state.mode == CLOSED:
        return Admission(CALL, 0, now, CLOSED), state
    if state.mode == HALF_OPEN and state.issued < policy.probes:
        state = state._replace(issued=state.issued + 1, issued_us=now)
        return Admission(PROBE, 0, now, HALF_OPEN), state
    base = state.probe_us if state.mode == OPEN else now + _us(policy.probe_wait)
    due, cursor, line = spread.slot(state.cursor_us, state.line_us, base, policy.period_us, u)
    state = state._replace(cursor_us=cursor, line_us=line, deferred=state.deferred + 1)
    return Admission(DEFER, due, now, state.mode), state


def record(state: State, policy: Policy, now: int, outcome: str, probe: bool) -> State:
    """The outcome of a call (FAILURE, SUCCESS or RELEASE: nothing known) that was a probe or not."""
    if outcome not in (FAILURE, SUCCESS, RELEASE):
        raise ValueError(f"outcome must be one of {FAILURE!r}, {SUCCESS!r}, {RELEASE!r}, got {outcome!r}")
    state = current(state, policy, now)
    if state.mode == HALF_OPEN:
        if not probe:
            return state
        if outcome == FAILURE:
            return trip(state, policy, now, state.opens + 1)
        issued = max(0, state.issued - 1)
        if outcome == SUCCESS:
            successes = state.successes + 1
            if successes >= policy.close_after:
                return State(cursor_us=state.cursor_us, line_us=state.line_us, deferred=state.deferred)
            return state._replace(issued=issued, successes=successes)
        return state._replace(issued=issued)
    if state.mode == OPEN or outcome != FAILURE:
        return state
    window_start = now - _us(policy.window)
    recent = tuple(t for t in state.failures if t > window_start)[: policy.threshold - 1]
    if len(recent) + 1 >= policy.threshold:
        return trip(state, policy, now, 1)
    return state._replace(failures=(now, *recent))


def trip(state: State, policy: Policy, now: int, opens: int) -> State:
    """Open the breaker at ``now`` for its ``opens``-th consecutive time."""
    return State(
        mode=OPEN,
        opened_us=now,
        probe_us=now + open_period_us(policy, opens),
        opens=opens,
        cursor_us=state.cursor_us,
        line_us=state.line_us,
        deferred=state.deferred,
    )


def snapshot(name: str, state: State, policy: Policy, now: int) -> Snapshot:
    """What a status display shows for ``state`` at ``now``."""
    state = current(state, policy, now)
    window_start = now - _us(policy.window)
    waiting = spread.waiting(state.cursor_us, state.line_us, now, policy.period_us)
    return Snapshot(
        name=name,
        mode=state.mode,
        opened_at=state.opened_us / US if state.opened_us else None,
        probe_at=state.probe_us / US if state.mode == OPEN else None,
        opens=state.opens,
        failures=sum(1 for t in state.failures if t > window_start) if state.mode == CLOSED else 0,
        probes_in_flight=state.issued if state.mode == HALF_OPEN else 0,
        waiting=waiting,
        drained_at=state.cursor_us / US if waiting else None,
        deferred=state.deferred,
        at=now / US,
    )


def _us(seconds: float) -> int:
    return round(seconds * US)
