"""Per-process worker memory, step by step, as long retries pile up in the broker.

Run (RabbitMQ and Redis on 127.0.0.1)::

    python -m benchmarks.rss_steps [--contender dlx_classic] [--warmup 2000] [--steps 6] [--step 1000]

One prefork -c 2 worker: after ``--warmup`` tasks that each retry once after 50 ms (so every
code path of a retry has run in both pool processes), ``--steps`` rounds of ``--step`` tasks
that each retry after an hour.  After each round it prints the RSS of the parent and of each
pool child.  The full benchmark (``benchmarks.run``) reports one sum per step; this shows
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
from .run import Cleanup, Deployment, absorb


def per_process_mb(dep: Deployment) -> list[float]:
    """RSS of the worker's parent, then of each pool child, in MB."""
    return [round(rss / 2**20, 1) for rss in dep.worker.rss_by_process()]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--contender", choices=[c for c in CONTENDERS if c != "countdown"], default="dlx_classic")
    parser.add_argument("--warmup", type=int, default=2000)
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--step", type=int, default=1000)
    args = parser.parse_args()
    store = redis.Redis.from_url(REDIS_URL)
    cleanup = Cleanup()
    print("| after | pending in the broker | parent MB | children MB | total MB |\n|---|---|---|---|---|")

    def row(label: str, pending: int, dep: Deployment) -> None:
        parent, *children = per_process_mb(dep)
        print(f"| {label} | {pending:,} | {parent} | {' + '.join(map(str, children))} | {parent + sum(children):.1f} |", flush=True)

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
    return 0


if __name__ == "__main__":
    sys.exit(main())
