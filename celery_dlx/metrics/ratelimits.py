"""Rate-limit usage read from Redis at scrape time: per limit and slot (one combination of the
limit's ``by`` factors, e.g. one token), calls in the current window against what the window
allows, what a server's headers said is left, and an adaptive limit's learned rate.

Which limits exist is not in Redis's keys alone (a window log does not say its rate), so the
app names its limiters: ``app.conf.dlx_metrics_limiters = [limiter, …]``.  Only limiters on
Redis storage are read (a memory storage lives in another process).  Slots are found with one
``SCAN`` of the limiter's prefix; at most :data:`MAX_SLOTS` per limit are reported (the most
used), and ``celery_dlx_ratelimit_slots`` counts them all, so a limit kept per token cannot
turn a scrape into thousands of series.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from ..ratelimit.adaptive import AdaptiveRate, AdaptiveState
from ..ratelimit.limit import Limit
from ..ratelimit.limiter import Limiter
from ..ratelimit.rates import Rate
from ..ratelimit.storage import ADAPTIVE, BUDGET, WINDOW
from ..redisio.keys import tagged_prefix
from ..redisio.store import ScriptedStore

#: Most slots per limit reported as series.
MAX_SLOTS = 50


@dataclass(frozen=True)
class SlotUsage:
    """One limit for one combination of its factors, now."""

    limit: str
    #: The factor values of the slot, as in its key (percent-encoded, ``:``-separated; '' for a limit without ``by``).
    slot: str
    used: int
    allowed: int
    window_seconds: float
    #: Calls left per the server's headers until ``budget_reset`` (None: nothing learned).
    budget_remaining: int | None
    #: Calls per second of an adaptive limit (None for other limits).
    adaptive_rate: float | None


def limiters_of(conf: Any) -> list[Limiter]:
    """The limiters named in ``dlx_metrics_limiters`` that keep their state in Redis."""
    return [x for x in conf.get("dlx_metrics_limiters") or () if isinstance(getattr(x, "storage", None), ScriptedStore)]


def usage(limiter: Limiter) -> tuple[list[SlotUsage], dict[str, int]]:
    """Each reported slot's usage, and how many slots each limit has (raises redis errors, or
    the storage's unavailable error while its cluster cannot be reached)."""
    client = limiter.storage.client  # type: ignore[attr-defined]  # checked by limiters_of
    slots = _slots(client, limiter)
    counts = {name: len(found) for name, found in slots.items()}
    seconds, micros = client.time()
    now_us = int(seconds) * 1_000_000 + int(micros)
    chosen = [(limiter.limits[name], slot) for name, found in slots.items() for slot in sorted(found)]
    with client.pipeline(transaction=False) as pipe:
        for limit, slot in chosen:
            key = _key(limiter.prefix, limit.name, slot)
            pipe.zrange(key + WINDOW, -_burst(limit.rate), -1, withscores=True) if _burst(limit.rate) else pipe.echo("")
            pipe.hmget(key + BUDGET, "r", "t")
            pipe.hmget(key + ADAPTIVE, "p", "n", "d", "u")
        replies = pipe.execute()
    out = [
        _usage(limit, slot, now_us, *replies[3 * i : 3 * i + 3]) for i, (limit, slot) in enumerate(chosen)
    ]
    kept: list[SlotUsage] = []
    for name in slots:
        mine = sorted((u for u in out if u.limit == name), key=lambda u: (-u.used, u.slot))
        kept += mine[:MAX_SLOTS]
    return kept, counts


def _slots(client: Any, limiter: Limiter) -> dict[str, set[str]]:
    """Per limit, the slots that have state in Redis (one SCAN of the limiter's prefix)."""
    found: dict[str, set[str]] = {name: set() for name in limiter.limits}
    head = tagged_prefix(limiter.prefix) + ":"
    for raw in client.scan_iter(match=_glob_escape(head) + "*", count=1000):
        key = raw.decode() if isinstance(raw, bytes) else raw
        rest, suffix = key[len(head) : -2], key[-2:]
        if suffix not in (WINDOW, BUDGET, ADAPTIVE):
            continue
        name, _, slot = rest.partition(":")
        if name in found:
            found[name].add(slot)
    return found


def _usage(limit: Limit, slot: str, now_us: int, log: list[Any], budget: list[Any], adaptive: list[Any]) -> SlotUsage:
    rate = limit.rate
    allowed, period_us, learned = _burst(rate), 0, None
    if isinstance(rate, Rate):
        period_us = rate.period_us
    elif isinstance(rate, AdaptiveRate):
        state = None
        if adaptive[0] is not None:
            p, n, d, u = adaptive
            state = AdaptiveState(float(p), int(n), int(d), int(u))
        learned = rate.rate(rate.current(state, now_us))
        period_us = round(rate.burst * 1_000_000 / learned)
    # The window: a sorted set of the latest time each call (or reservation) may run.
    used = sum(1 for _, entry in log or () if int(entry) + period_us > now_us)
    remaining = None
    if budget[1] is not None and int(budget[1]) > now_us:
        remaining = int(budget[0])
    return SlotUsage(limit.name, slot, used, allowed, period_us / 1_000_000, remaining, learned)


def _burst(rate: Rate | AdaptiveRate | None) -> int:
    """Calls a window of ``rate`` allows (0: a limit learned from headers only)."""
    if isinstance(rate, Rate):
        return rate.limit
    if isinstance(rate, AdaptiveRate):
        return rate.burst
    return 0


def _key(prefix: str, name: str, slot: str) -> str:
    head = tagged_prefix(prefix)
    return f"{head}:{name}:{slot}" if slot else f"{head}:{name}"


def _glob_escape(text: str) -> str:
    return "".join("\\" + c if c in "*?[]\\" else c for c in text)


def series(usages: Iterable[SlotUsage]) -> Iterator[tuple[str, tuple[str, str], float]]:
    """(metric suffix, (limit, slot), value) of each usage, for the collector."""
    for u in usages:
        labels = (u.limit, u.slot)
        yield "used", labels, u.used
        yield "allowed", labels, u.allowed
        yield "window_seconds", labels, u.window_seconds
        if u.budget_remaining is not None:
            yield "budget_remaining", labels, u.budget_remaining
        if u.adaptive_rate is not None:
            yield "adaptive_rate", labels, u.adaptive_rate
