"""Delay planning: turn a delay in seconds into a route through a fixed set of TTL levels.

Pure policy: imports neither Celery nor kombu.

RabbitMQ only expires the message at the *head* of a queue, so every delay queue has one
queue-level TTL and FIFO order equals due order.  Level ``k`` holds a message for
``unit_ms * 2**k`` milliseconds.  A delay is rounded *up* to whole units (a message is never
delivered early) and its binary digits pick the levels the message sits in; levels whose digit
is 0 are passed through by exchange-to-exchange bindings without waiting.  ``levels`` queues
therefore serve every delay from 0 to ``(2**levels - 1) * unit_ms``, and a delay costs one
dead-letter hop per 1-bit.

The route is carried in the routing key as one word per level, least significant first, up to
the highest level the message waits in (``"1.0.1"`` waits in levels 0 and 2).  It is at most
``levels`` words, so it never grows with retries.  The message is published straight to the
exchange of its highest level; level ``k``'s bindings look only at word ``k``
(``*.*.1.#`` for level 2).  Patterns that start with ``*`` cost RabbitMQ's topic matcher linear
time; ones that start with ``#`` made a 28-level chain cost 10 ms per publish here.  The
patterns do not depend on the number of levels, so changing ``levels`` keeps messages already
in flight routable.

Every 1-digit is a dead-letter hop, i.e. broker work (on quorum queues a Raft write), and a
30-day backoff does not need 10 ms resolution.  With ``precision`` ``p`` the planner may deliver
up to ``p * delay`` late (never early) and uses that slack to pick, among the unit counts from
``ceil(delay / unit)`` to ``floor(delay * (1 + p) / unit)``, the one with the fewest 1-digits
(the smallest of those, so lateness stays as low as the hop count allows).  A delay below
``unit / p`` has no slack and stays exact.  So a delivery is late by at most
``max(unit, p * delay)`` and costs at most ``log2(1/p) + 2`` hops, whatever the delay;
``benchmarks/hops.py`` measures the average.  The ladder is unchanged: old and new routes use
the same queues and keys.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from numbers import Real

#: Default resolution: 10 ms.  Lateness from rounding is below one unit.
DEFAULT_UNIT_MS = 10
#: Default level count: 28 levels of 10 ms cover 0 .. 31.07 days.
DEFAULT_LEVELS = 28
#: The most levels a topology may have; with the parking queue that is at most 40 queues.
MAX_LEVELS = 39
#: Default relative lateness allowed to save hops (``dlx_precision``): a retry may arrive up to
#: 1/8 of its delay late (a 1-hour backoff up to 7.5 minutes), never early.  The slack that
#: keeps average hops <= 2.6 on the mixes in ``benchmarks/hops.py``, at or below Celery's native
#: delayed delivery (which is early by up to 1 s instead) on two of the three; README justifies it.
DEFAULT_PRECISION = Fraction(1, 8)


def fewest_ones(low: int, high: int) -> int:
    """The smallest integer in ``low .. high`` with the fewest 1-digits (``low <= high``).

    Adding a number's lowest set bit to it (``x + (x & -x)``) gives the smallest number above it
    with more trailing zeros; every number between ``x`` and that one is ``x`` plus something
    below its trailing zeros, so it has at least as many 1-digits as ``x``.  Walking that chain
    from ``low`` while it stays within ``high`` therefore meets the minimum, first at the
    smallest number that has it.
    """
    best = x = low
    while x and x + (x & -x) <= high:
        x += x & -x
        if x.bit_count() < best.bit_count():
            best = x
    return best


@dataclass(frozen=True)
class Route:
    """Where one delayed message goes: the levels it waits in and the key that says so."""

    units: int
    unit_ms: int
    levels: int

    @property
    def delay_ms(self) -> int:
        """The delay the broker will apply, in milliseconds (>= the requested delay)."""
        return self.units * self.unit_ms

    @property
    def delay(self) -> float:
        """The delay the broker will apply, in seconds."""
        return self.delay_ms / 1000

    @property
    def waits(self) -> tuple[int, ...]:
        """The levels the message waits in, highest first (the order it passes them)."""
        return tuple(k for k in reversed(range(self.levels)) if self.units >> k & 1)

    @property
    def hops(self) -> int:
        """Dead-letter hops on the way: one per level the message waits in."""
        return self.units.bit_count()

    @property
    def top(self) -> int | None:
        """The highest level the message waits in, where it is published; None for no delay."""
        return self.units.bit_length() - 1 if self.units else None

    @property
    def routing_key(self) -> str:
        """One word per level up to :attr:`top`, least significant first: ``'1.0.1'``."""
        if not self.units:
            return "0"
        return ".".join("1" if self.units >> k & 1 else "0" for k in range(self.units.bit_length()))


@dataclass(frozen=True)
class DelayLevels:
    """The fixed ladder of TTL levels a topology is made of.

    ``unit_ms`` is the resolution (an integer because queue TTLs are whole milliseconds) and
    ``levels`` the number of delay queues.  ``precision`` (0 <= p < 1) is how late, relative to
    the delay, a route may deliver to save hops; it is planning policy only and no part of the
    topology, so changing it needs no redeclaration.
    """

    unit_ms: int = DEFAULT_UNIT_MS
    levels: int = DEFAULT_LEVELS
    precision: Fraction = DEFAULT_PRECISION

    def __post_init__(self) -> None:
        if isinstance(self.unit_ms, bool) or not isinstance(self.unit_ms, int) or self.unit_ms < 1:
            raise ValueError(f"unit_ms must be a whole number of milliseconds >= 1, got {self.unit_ms!r}")
        if isinstance(self.levels, bool) or not isinstance(self.levels, int) or not 1 <= self.levels <= MAX_LEVELS:
            raise ValueError(f"levels must be a whole number from 1 to {MAX_LEVELS}, got {self.levels!r}")
        precision = self.precision
        if isinstance(precision, bool) or not isinstance(precision, Real) or not 0 <= precision < 1:
            raise ValueError(f"precision must be a number from 0 (exact) to below 1, got {precision!r}")
        # Exact arithmetic for the bound: 0.1 is stored as 1/10, not as the float just above it.
        object.__setattr__(self, "precision", Fraction(str(precision)) if isinstance(precision, float) else Fraction(precision))

    @property
    def max_delay_ms(self) -> int:
        """The largest delay this ladder can hold, in milliseconds."""
        return ((1 << self.levels) - 1) * self.unit_ms

    @property
    def max_delay(self) -> float:
        """The largest delay this ladder can hold, in seconds."""
        return self.max_delay_ms / 1000

    def ttl_ms(self, level: int) -> int:
        """The queue TTL of ``level``."""
        if not 0 <= level < self.levels:
            raise ValueError(f"level must be in 0..{self.levels - 1}, got {level!r}")
        return self.unit_ms << level

    def plan(self, delay: float | Fraction) -> Route:
        """Route for ``delay`` seconds: never early, late by at most ``max(unit, precision * delay)``,
        with the fewest hops that allows.

        Raises ``ValueError`` for anything that is not a finite real number between 0 and
        :attr:`max_delay`, naming the limit.
        """
        if isinstance(delay, bool) or not isinstance(delay, Real):
            raise ValueError(f"delay must be a number of seconds, got {delay!r} ({type(delay).__name__})")
        if math.isnan(delay) or math.isinf(delay):
            raise ValueError(f"delay must be finite, got {delay!r}")
        if delay < 0:
            raise ValueError(f"delay must be >= 0 seconds, got {delay!r}")
        # Fraction is exact for floats: 0.3 s must become 300 ms, not 310 ms through 300.00000000000006.
        exact = Fraction(delay) * 1000 / self.unit_ms
        units = math.ceil(exact)
        most = (1 << self.levels) - 1
        if units > most:
            raise ValueError(
                f"delay {delay!r} s exceeds the maximum of {self.max_delay} s "
                f"({self.levels} levels of {self.unit_ms} ms); raise dlx_levels or dlx_unit_ms"
            )
        latest = min(most, max(units, math.floor(exact * (1 + self.precision))))
        return Route(units=fewest_ones(units, latest), unit_ms=self.unit_ms, levels=self.levels)

    def route_from_key(self, routing_key: str) -> Route:
        """Decode a routing key made by :meth:`plan` (for status and inspection tools)."""
        words = routing_key.split(".")
        if len(words) > self.levels or any(w not in ("0", "1") for w in words):
            raise ValueError(f"{routing_key!r} is not a celery_dlx route for {self.levels} levels")
        units = sum(1 << k for k, w in enumerate(words) if w == "1")
        return Route(units=units, unit_ms=self.unit_ms, levels=self.levels)

    def wait_pattern(self, level: int) -> str:
        """Topic pattern that sends a message into ``level``'s queue (its word is 1)."""
        return self._pattern(level, "1")

    def pass_pattern(self, level: int) -> str:
        """Topic pattern that passes a message on to the level below (its word is 0)."""
        return self._pattern(level, "0")

    def _pattern(self, level: int, digit: str) -> str:
        self.ttl_ms(level)  # validates the level
        return ".".join([*(["*"] * level), digit, "#"])
