"""Rate-limit decisions per second on local Redis: celery_dlx.ratelimit against ``limits``.

Run (Redis on 127.0.0.1:6379, the ``bench`` extra installed)::

    python -m benchmarks.ratelimit_bench [--redis redis://127.0.0.1:6379/0] [--calls 20000] [--runs 3]

Prints a markdown table and writes it to ``--out`` (default benchmarks/results/ratelimit.md).

What is compared, and how it is kept fair:

- Both libraries talk to the same Redis through the same redis-py (whatever parser is
  installed serves both), one client, one connection, one thread.  Every decision records the
  call when it is admitted, as a limiter must.
- The same limit, ``900/15 minutes``, enforced exactly by both: celery_dlx's sliding-window
  log and ``limits``' ``MovingWindowRateLimiter``.  ``limits``' ``SlidingWindowCounter`` (an
  approximation, two counters) is shown for reference.
- The same key pattern: one key per token, the calls cycling over 1000 tokens.
- Scenarios:

  1. *admitted*: 1 limit, every call admitted (the tokens never fill their windows).
  2. *denied, with the wait*: 1 limit on a full token, every call denied.  celery_dlx returns
     the wait in the same round trip; ``limits`` needs ``hit()`` and then
     ``get_window_stats()`` to know when to come back, and both count as one decision.
  3. *3 limits per call* (token, app, queue): celery_dlx decides all three atomically in one
     round trip; ``limits`` makes three ``hit()`` calls, which is not atomic (a denial by the
     third has already consumed the first two).
  4. *batches of 100*: celery_dlx's ``acquire_many`` (one script run, one round trip per
     batch).  ``limits`` has no batch API, so its own registered moving-window script
     (``storage.lua_acquire_moving_window``, what ``hit()`` runs) is sent 100 times on a
     redis-py pipeline, without its Python wrapper.  The other rows batch nothing for either.

Each figure is the median of ``--runs`` runs of ``--calls`` decisions; within a run the
libraries take turns every 500 decisions, so a machine busy for a moment slows both alike.
The ratio column is the median of the runs' own ratios, with their range.
"""

from __future__ import annotations

import argparse
import statistics
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import redis
from limits import parse
from limits.storage import RedisStorage as LimitsRedisStorage
from limits.strategies import (
    MovingWindowRateLimiter,
    RateLimiter,
    SlidingWindowCounterRateLimiter,
)

from celery_dlx.ratelimit import Limit, Limiter, RedisStorage

RESULTS = Path(__file__).parent / "results"
RATE = "900/15 minutes"
TOKENS = [f"token{n}" for n in range(1000)]
BATCH = 100
#: Decisions a runner makes before the next one takes its turn (a multiple of BATCH).
BLOCK = 500


def per_second(runners: list[Callable[[int, int], None]], calls: int, runs: int) -> list[list[float]]:
    """Decisions per second of each runner in each of ``runs`` runs of ``calls`` decisions.

    The runners take turns in blocks of :data:`BLOCK` decisions, so a machine that is busy
    for a moment slows every runner alike, and each run's ratio of two runners is a fair one.
    """
    rates: list[list[float]] = [[] for _ in runners]
    for _ in range(runs):
        spent = [0.0] * len(runners)
        for first in range(0, calls, BLOCK):
            for n, runner in enumerate(runners):
                start = time.perf_counter()
                runner(first, BLOCK)
                spent[n] += time.perf_counter() - start
        for measured, seconds in zip(rates, spent):
            measured.append(calls / seconds)
    return rates


def ratio(ours: list[float], theirs: list[float]) -> str:
    """The median of the runs' ratios, and their range."""
    ratios = [a / b for a, b in zip(ours, theirs)]
    return f"{statistics.median(ratios):.2f}x ({min(ratios):.2f}–{max(ratios):.2f})"


class Ours:
    """celery_dlx.ratelimit under the scenarios."""

    def __init__(self, url: str, prefix: str) -> None:
        storage = RedisStorage.from_url(url)
        self.one = Limiter(storage, [Limit("user", RATE, by=("token",))], prefix=prefix)
        self.three = Limiter(
            storage,
            [
                Limit("user", RATE, by=("token",)),
                Limit("app", "100000/day", by=("app",)),
                Limit("queue", "1000000/hour", by=("queue",)),
            ],
            prefix=prefix + ":3",
        )
        for _ in range(900):
            self.one.acquire(token="full")

    def admitted(self, first: int, count: int) -> None:
        for n in range(first, first + count):
            self.one.acquire(token=TOKENS[n % 1000])

    def denied(self, first: int, count: int) -> None:
        for _ in range(count):
            self.one.acquire(token="full").wait  # noqa: B018  (the wait is part of the answer)

    def three_limits(self, first: int, count: int) -> None:
        for n in range(first, first + count):
            self.three.acquire(token=TOKENS[n % 1000], app="app", queue="social")

    def batched(self, first: int, count: int) -> None:
        for start in range(first, first + count, BATCH):
            self.one.acquire_many([{"token": TOKENS[(start + n) % 1000]} for n in range(BATCH)])


class Theirs:
    """``limits`` under the same scenarios, with ``strategy``."""

    def __init__(self, url: str, prefix: str, strategy: type[RateLimiter]) -> None:
        self.storage = LimitsRedisStorage(url, key_prefix=prefix)
        self.limiter = strategy(self.storage)
        self.rate = parse(RATE)
        self.app = parse("100000/day")
        self.queue = parse("1000000/hour")
        for _ in range(900):
            self.limiter.hit(self.rate, "full")

    def admitted(self, first: int, count: int) -> None:
        for n in range(first, first + count):
            self.limiter.hit(self.rate, TOKENS[n % 1000])

    def denied(self, first: int, count: int) -> None:
        for _ in range(count):
            if not self.limiter.hit(self.rate, "full"):
                self.limiter.get_window_stats(self.rate, "full")

    def three_limits(self, first: int, count: int) -> None:
        for n in range(first, first + count):
            self.limiter.hit(self.rate, TOKENS[n % 1000])
            self.limiter.hit(self.app, "app")
            self.limiter.hit(self.queue, "social")

    def batched(self, first: int, count: int) -> None:
        script = self.storage.lua_acquire_moving_window
        client = self.storage.get_connection()
        expiry = self.rate.get_expiry()
        for start in range(first, first + count, BATCH):
            pipe = client.pipeline(transaction=False)
            now = time.time()
            for n in range(BATCH):
                key = self.storage.prefixed_key(self.rate.key_for(TOKENS[(start + n) % 1000]))
                script([key], [now, self.rate.amount, expiry, 1], client=pipe)
            pipe.execute()


class RoundTrip:
    """An empty script on the same client: the ceiling for any decision made in one round trip."""

    def __init__(self, url: str) -> None:
        self.script = redis.Redis.from_url(url).register_script("return 1")

    def admitted(self, first: int, count: int) -> None:
        for _ in range(count):
            self.script(["k"], [1])


SCENARIOS = [
    ("1 limit, admitted", "admitted"),
    ("1 limit, denied, with the wait", "denied"),
    ("3 limits per call", "three_limits"),
    (f"1 limit, batches of {BATCH}", "batched"),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--calls", type=int, default=20000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--out", type=Path, default=RESULTS / "ratelimit.md")
    args = parser.parse_args()
    if args.calls < BLOCK or args.calls % BLOCK:
        parser.error(f"--calls must be a multiple of {BLOCK}")

    prefix = f"rlbench:{uuid.uuid4().hex[:8]}"
    ours = Ours(args.redis, f"{prefix}:ours")
    moving = Theirs(args.redis, f"{prefix}:moving", MovingWindowRateLimiter)
    counter = Theirs(args.redis, f"{prefix}:counter", SlidingWindowCounterRateLimiter)
    [ceiling] = map(statistics.median, per_second([RoundTrip(args.redis).admitted], args.calls, args.runs))
    rows = [
        "| scenario | celery_dlx (decisions/s) | limits moving window | limits sliding window counter | celery_dlx / moving window (range of the runs) |",
        "|---|---:|---:|---:|---:|",
    ]
    try:
        for title, name in SCENARIOS:
            contenders = [ours, moving] if name == "batched" else [ours, moving, counter]
            runs = per_second([getattr(x, name) for x in contenders], args.calls, args.runs)
            a, b, *c = map(statistics.median, runs)
            rows.append(f"| {title} | {a:,.0f} | {b:,.0f} | {f'{c[0]:,.0f}' if c else 'n/a'} | {ratio(runs[0], runs[1])} |")
    finally:
        client = redis.Redis.from_url(args.redis)
        keys = list(client.scan_iter(f"{prefix}*", count=10_000))
        if keys:
            client.delete(*keys)
    redis_version = redis.Redis.from_url(args.redis).info("server")["redis_version"]
    note = (
        f"{args.calls} decisions per run, median of {args.runs} (the ratio: median of the runs' ratios); Redis {redis_version}, redis-py {redis.__version__}; "
        f"an empty script (one round trip, nothing decided) runs {ceiling:,.0f}/s on this client."
    )
    table = "\n".join([*rows, "", note])
    print(table)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(table + "\n")


if __name__ == "__main__":
    main()
