"""Dead-letter hops per delayed retry, by delay mix: celery_dlx exact, celery_dlx with its
default ``dlx_precision``, other precisions, and Celery's native delayed delivery.

Run: ``python -m benchmarks.hops [--n 50000] [--out benchmarks/results/hops.md]`` (pure
computation, no broker, ~30 s).

Each hop is one dead-letter publish in the broker (a Raft write on quorum queues), so hops per
retry is broker work per retry.  celery_dlx's count is ``DelayLevels.plan(d).hops``.  Native
delayed delivery's is modelled on its code (Celery 5.5+ ``Celery.send_task`` with a quorum
queue, kombu ``native_delayed_delivery.calculate_routing_key``): the countdown is truncated
with ``int()`` to whole seconds and each 1-digit of that number is a level the message waits
in, i.e. ``int(d).bit_count()`` hops.  That truncation makes it early by up to 0.99 s, and
kombu refuses a countdown below 1 s (``ValueError``), so sub-second delays are counted as 0 hops
and listed apart.
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path

from celery_dlx.broker.plan import DEFAULT_PRECISION, DelayLevels

RESULTS = Path(__file__).parent / "results"


def exponential_backoff(rng: random.Random) -> float:
    """``min(2**n, 3600) + U(0, 5)`` s for a retry number ``n`` uniform in 0..12."""
    return float(min(2 ** rng.randint(0, 12), 3600)) + rng.uniform(0, 5)


#: The three delay mixes of issue 23, by name: a draw of one delay in seconds.
MIXES: dict[str, Callable[[random.Random], float]] = {
    "exponential backoff min(2^n, 3600) + U(0, 5) s": exponential_backoff,
    "rate-limit resets U(1, 900) s": lambda rng: rng.uniform(1, 900),
    "uniform 0.1-30 s": lambda rng: rng.uniform(0.1, 30),
}

#: Precisions shown besides the default, to justify it.
PRECISIONS = (Fraction(0), Fraction(1, 128), Fraction(1, 64), Fraction(1, 32), Fraction(1, 16), Fraction(1, 10), DEFAULT_PRECISION)


def delays(mix: str, n: int, seed: int = 23) -> list[float]:
    """``n`` delays of ``mix``, the same for a given seed."""
    rng = random.Random(seed)
    return [MIXES[mix](rng) for _ in range(n)]


def native_hops(delay: float) -> int:
    """Hops of native delayed delivery: the 1-digits of the countdown truncated to seconds."""
    return int(delay).bit_count()


def dlx_stats(levels: DelayLevels, sample: list[float]) -> tuple[float, float, float]:
    """Mean hops, mean and largest lateness relative to the delay (planned / asked - 1)."""
    routes = [levels.plan(d) for d in sample]
    late = [float(Fraction(r.delay_ms, 1000) / Fraction(d)) - 1 for r, d in zip(routes, sample, strict=True)]
    return statistics.mean(r.hops for r in routes), statistics.mean(late), max(late)


def _label(precision: Fraction) -> str:
    if precision == 0:
        return "celery_dlx exact (`dlx_precision=0`, before issue 23)"
    default = " **(default)**" if precision == DEFAULT_PRECISION else ""
    return f"celery_dlx `dlx_precision={precision}`{default}"


def report(n: int, command: str) -> str:
    lines = [
        "# Dead-letter hops per retry, by delay mix\n",
        f"`{command}` on {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}: {n:,} delays per mix "
        "(seed 23), unit 10 ms, 28 levels. Pure computation; no broker involved. Lateness is planned "
        "delay / asked delay - 1 (broker and worker latency come on top); never negative for celery_dlx.\n",
    ]
    for mix in MIXES:
        sample = delays(mix, n)
        early = [d - int(d) for d in sample]
        sub_second = sum(d < 1 for d in sample)
        lines += [
            f"## {mix}\n",
            "| planner | hops/retry | mean lateness | worst lateness | note |",
            "|---|---|---|---|---|",
        ]
        for precision in PRECISIONS:
            hops, mean_late, worst = dlx_stats(DelayLevels(precision=precision), sample)
            lines.append(f"| {_label(precision)} | {hops:.2f} | {mean_late:.2%} | {worst:.2%} | never early |")
        lines.append(
            f"| native delayed delivery (`int(d)` seconds) | {statistics.mean(native_hops(d) for d in sample):.2f} "
            f"| early {statistics.mean(early) * 1000:.0f} ms | early {max(early) * 1000:.0f} ms "
            f"| {sub_second:,} delays < 1 s refused (kombu ValueError) |\n"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=50_000)
    parser.add_argument("--out", type=Path, default=RESULTS / "hops.md")
    args = parser.parse_args()
    command = "python -m benchmarks.hops" + (f" --n {args.n}" if args.n != 50_000 else "")
    text = report(args.n, command)
    args.out.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
