"""Per-process worker memory, step by step, as long retries pile up in the broker.

Run (RabbitMQ and Redis on 127.0.0.1)::

    python -m benchmarks.rss_steps [--contender dlx_classic] [--warmup 2000] [--steps 6] [--step 1000] [--out FILE]

One prefork -c 2 worker: after ``--warmup`` tasks that each retry once after 50 ms (so every
code path of a retry has run in both pool processes), ``--steps`` rounds of ``--step`` tasks
that each retry after an hour.  After each round it prints the RSS of the parent and of each
pool child.  The rows before the steps show what the warm-up's retries themselves cost a pool
child; ``--contender countdown --steps 0`` shows the same for Celery's own retry (countdown
cannot take the one-hour steps: it holds them in the worker).  The full benchmark
(``benchmarks.run``) reports one sum per step; this shows
whether a change in that sum follows the pending retries or is the children's allocator
moving by a few MB either way.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import redis

from .bench_app import CONTENDERS, REDIS_URL
from .harness import Cleanup, Deployment
from .sections.growth import absorb


def per_process_mb(dep: Deployment) -> list[float]:
    """RSS of the worker's parent, then of each pool child, in MB."""
    return [round(rss / 2**20, 1) for rss in dep.worker.rss_by_process()]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--contender", choices=[c for c in CONTENDERS if c != "native"], default="dlx_classic")
    parser.add_argument("--warmup", type=int, default=2000)
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--step", type=int, default=1000)
    parser.add_argument("--out", type=Path, help="write the table here too")
    args = parser.parse_args()
    if args.contender == "countdown" and args.steps:
        parser.error("countdown holds one-hour retries in the worker: use --steps 0")
    store = redis.Redis.from_url(REDIS_URL)
    cleanup = Cleanup()
    lines = [
        (f"`python -m benchmarks.rss_steps --contender {args.contender} --warmup {args.warmup} --steps {args.steps} --step {args.step}`"
        f" on {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}"),
        "",
        "| after | pending in the broker | parent MB | children MB | total MB |",
        "|---|---|---|---|---|",
    ]
    print("\n".join(lines), flush=True)

    def row(label: str, pending: int, dep: Deployment) -> None:
        parent, *children = per_process_mb(dep)
        lines.append(f"| {label} | {pending:,} | {parent} | {' + '.join(map(str, children))} | {parent + sum(children):.1f} |")
        print(lines[-1], flush=True)

    try:
        with Deployment(args.contender, store, cleanup, Path(tempfile.mkdtemp(prefix="rss_steps."))) as dep:
            time.sleep(2)
            row("start", 0, dep)
            warm = dep.key()
            dep.send_retry_tasks(warm, [0.05] * args.warmup)
            while store.llen(f"{warm}:arrivals") < args.warmup:
                time.sleep(0.5)
            time.sleep(2)
            row(f"{args.warmup:,} short retries", 0, dep)
            key, total = dep.key(), 0
            for _ in range(args.steps):
                total += args.step
                _, _, reached = absorb(dep, key, args.step, total, 300, lambda _: None)
                time.sleep(1)
                row(f"{total:,} one-hour retries", reached, dep)
    finally:
        cleanup.run_all()
    if args.out:
        args.out.write_text("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
