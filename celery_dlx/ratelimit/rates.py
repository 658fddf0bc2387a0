"""Known rates such as ``"900/15 minutes"``: how many calls one period allows.

Pure: imports neither Celery, kombu nor redis.  A rate is *what* is limited; how it is enforced
(:mod:`.window`) and where the state lives (:mod:`.storage`) are separate, as in ``limits``.
Storage works in whole microseconds, so :attr:`Rate.period_us` is the period every backend uses.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

#: Seconds per unit name, singular, plural and short forms.
UNITS: dict[str, float] = {
    **dict.fromkeys(("s", "sec", "secs", "second", "seconds"), 1.0),
    **dict.fromkeys(("m", "min", "mins", "minute", "minutes"), 60.0),
    **dict.fromkeys(("h", "hr", "hrs", "hour", "hours"), 3600.0),
    **dict.fromkeys(("d", "day", "days"), 86400.0),
}

_RATE_RE = re.compile(r"^\s*(\d+)\s*(?:/|per)\s*(\d+(?:\.\d+)?)?\s*([a-z]+)\s*$", re.IGNORECASE)


@dataclass(frozen=True)
class Rate:
    """At most ``limit`` calls in any window of ``period`` seconds."""

    limit: int
    period: float

    def __post_init__(self) -> None:
        if isinstance(self.limit, bool) or not isinstance(self.limit, int) or self.limit < 1:
            raise ValueError(f"a rate's limit must be a whole number >= 1, got {self.limit!r}")
        period = self.period
        if isinstance(period, bool) or not isinstance(period, (int, float)) or not math.isfinite(period) or period <= 0:
            raise ValueError(f"a rate's period must be a positive number of seconds, got {period!r}")
        if self.period_us < 1:
            raise ValueError(f"a rate's period must be at least one microsecond, got {period!r}")

    @classmethod
    def parse(cls, text: str) -> Rate:
        """``"900/15 minutes"``, ``"10 per second"``, ``"100/day"``, ``"5/1.5s"``."""
        match = _RATE_RE.match(text) if isinstance(text, str) else None
        if match is None or match.group(3).lower() not in UNITS:
            raise ValueError(
                f"cannot read {text!r} as a rate; write '<calls>/<count> <unit>' such as '900/15 minutes' "
                f"(units: {', '.join(sorted(set(UNITS)))})"
            )
        count = float(match.group(2)) if match.group(2) else 1.0
        return cls(int(match.group(1)), count * UNITS[match.group(3).lower()])

    @classmethod
    def of(cls, value: Rate | str) -> Rate:
        """``value`` itself, or parsed if it is a string."""
        return value if isinstance(value, Rate) else cls.parse(value)

    @property
    def period_us(self) -> int:
        """The period in whole microseconds, the unit every storage counts in."""
        return round(self.period * 1_000_000)

    def __str__(self) -> str:
        return f"{self.limit}/{self.period:g} seconds"
