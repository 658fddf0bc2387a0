"""A limit: which calls it covers, how they are partitioned, and what rate each part gets.

Pure: imports neither Celery, kombu nor redis.  A call is described by *factors*, plain
strings such as ``network``, ``endpoint``, ``token``, ``app``, ``ip`` or ``queue``.  A limit
covers the calls whose factors match its ``where`` and keeps one state per combination of its
``by`` factors::

    Limit("twitter-user", "900/15 minutes", by=("endpoint", "token"), where={"network": "twitter"})
    Limit("trickle", "2/second", by=("queue",), where={"queue": "social.trickle"})

Factor values become part of storage keys: pass an identifier of a token, never the secret.
Values are percent-encoded in keys, so ``:`` cannot make two parts collide and ``{``/``}``
cannot create Redis Cluster hash tags.  Every key starts with the limiter's prefix as its hash
tag (``{celery_dlx:ratelimit}:<limit>:…``, :func:`celery_dlx.redisio.keys.tagged_prefix`): any
combination of limits may cover one call, and a call's limits (and a batch's) are decided in
one script, so on Redis Cluster all of a limiter's keys live in one slot.  Spread load over a
cluster with several limiters (several prefixes).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from functools import lru_cache
from urllib.parse import quote

from ..redisio.keys import tagged_prefix
from .adaptive import AdaptiveRate
from .rates import Rate
from .storage import Slot

_NAME_RE = re.compile(r"^[A-Za-z0-9_.-]{1,100}$")


@lru_cache(maxsize=65536)
def _key_part(value: str) -> str:
    """``value`` percent-encoded for a key (cached: the same tokens and queues come back)."""
    return quote(value, safe="")


class Limit:
    """A named limit.

    ``rate`` is a known :class:`~.rates.Rate` (or its text, ``"900/15 minutes"``), an
    :class:`~.adaptive.AdaptiveRate` for a limit that must be learned, or ``None`` for a limit
    known only from response headers (:meth:`.Limiter.observe`).  Every limit, whatever its
    rate, also obeys what headers said about it.  Treat a limit as immutable once a
    :class:`~.limiter.Limiter` has it (limiters remember the keys they built from it).
    """

    __slots__ = ("_window", "by", "name", "rate", "where")

    def __init__(
        self,
        name: str,
        rate: Rate | AdaptiveRate | str | None,
        *,
        by: Iterable[str] = (),
        where: Mapping[str, object] | None = None,
    ) -> None:
        if not isinstance(name, str) or not _NAME_RE.match(name):
            raise ValueError(f"a limit's name must be 1-100 letters, digits, '_', '.' or '-', got {name!r}")
        if rate is not None and not isinstance(rate, (Rate, AdaptiveRate, str)):
            raise ValueError(f"limit {name!r}: rate must be a Rate, its text, an AdaptiveRate or None, got {rate!r}")
        self.name = name
        self.rate: Rate | AdaptiveRate | None = Rate.of(rate) if isinstance(rate, str) else rate
        self.by = tuple(by)
        self.where = {factor: str(value) for factor, value in (where or {}).items()}
        if isinstance(by, str) or len(set(self.by)) != len(self.by):
            raise ValueError(f"limit {name!r}: 'by' must be distinct factor names, got {by!r}")
        self._window = _window(self.rate)

    def __repr__(self) -> str:
        return f"Limit({self.name!r}, {self.rate!r}, by={self.by!r}, where={self.where!r})"

    def covers(self, factors: Mapping[str, str]) -> bool:
        """Whether a call with ``factors`` falls under this limit."""
        return not self.where or all(factors.get(factor) == value for factor, value in self.where.items())

    def slot(self, prefix: str, factors: Mapping[str, str]) -> Slot:
        """This limit for a call with ``factors``: its key and what its window allows."""
        missing = [factor for factor in self.by if factor not in factors]
        if missing:
            raise ValueError(
                f"limit {self.name!r} is kept per {', '.join(self.by)}, but the call gave no {', '.join(missing)}"
            )
        key = ":".join([tagged_prefix(prefix), self.name, *(_key_part(factors[factor]) for factor in self.by)])
        return Slot(self.name, key, *self._window)


def _window(rate: Rate | AdaptiveRate | None) -> tuple[int, int, AdaptiveRate | None]:
    """What a slot of ``rate`` holds besides its name and key: limit, period and adaptive rate."""
    if isinstance(rate, Rate):
        return rate.limit, rate.period_us, None
    if isinstance(rate, AdaptiveRate):
        return rate.burst, rate.longest_period_us, rate
    return 0, 0, None
