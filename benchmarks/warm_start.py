"""Lateness of a freshly started worker's first retries: the cost warm start removes (issue 23).

Run (RabbitMQ and Redis on 127.0.0.1)::

    python -m benchmarks.warm_start [--runs 3] [--retries 300] [--rate 50] [--queue-type classic] [--label after]

Each run uses a new prefix (its topology does not exist yet) and starts a new worker, prefork
-c 2, with celery_dlx's bootstep (``install(app)``, as the README says to deploy).  As soon as
the worker consumes, ``--retries`` tasks are sent at ``--rate`` per second (a pace a prefork -c 2
worker keeps up with on this shared machine, so queueing in the worker does not count), each failing once and retrying after
a random delay of 0.1-5 s; lateness is each retry's arrival minus its ``dlx_due`` header.  Before
issue 23 ``dlx_due`` was the delay asked for (rounded up < 10 ms); since, it is when the route
delivers (the delay rounded up by ``dlx_precision``), so the figure is the broker's and the
worker's lateness either way.  To measure the code of another commit, run this module from a
directory holding that commit's ``celery_dlx`` next to this ``benchmarks`` package.

Prints one markdown row per run.
"""

from __future__ import annotations

import argparse
import random
import time
import uuid
from pathlib import Path

import redis
from kombu import Connection

from celery_dlx import Settings, Topology
from celery_dlx.testing.worker import WorkerProcess, wait_for_arrivals

from .foundation import percentile
from .probe_app import BROKER_URL, REDIS_URL, make_app


def one_run(queue_type: str, retries: int, rate: float, seed: int) -> list[float]:
    """Lateness in ms of the first ``retries`` retries of a fresh worker, in publishing order."""
    prefix = f"dlxwarm.{uuid.uuid4().hex[:6]}"
    app = make_app(prefix, queue_type)
    store = redis.Redis.from_url(REDIS_URL)
    key, work = f"{prefix}:late", f"{prefix}.work"
    env = {"DLX_BENCH_PREFIX": prefix, "DLX_BENCH_QUEUE_TYPE": queue_type, "DLX_BENCH_BOOTSTEP": "1"}
    rng = random.Random(seed)
    task = app.tasks["bench.fail_once"]
    try:
        with WorkerProcess("benchmarks.probe_app:app", [work], BROKER_URL, env=env, cwd=Path(__file__).parents[1]):
            with app.producer_or_acquire() as producer:
                for _ in range(retries):
                    task.apply_async((key, rng.uniform(0.1, 5.0)), producer=producer)
                    time.sleep(1 / rate)
            arrivals = wait_for_arrivals(store, key, 2 * retries, timeout=120)
        # In the order the retries were published (their first delivery's order): the first ones
        # are those a cold process would have published while declaring.
        first_seen = {a["id"]: a["t"] for a in arrivals if a["retries"] == 0}
        retried = sorted((a for a in arrivals if a["retries"] == 1), key=lambda a: first_seen.get(a["id"], a["t"]))
        return [(a["t"] - a["due"]) * 1000 for a in retried]
    finally:
        store.delete(key)
        with Connection(BROKER_URL) as conn:
            Topology(Settings.from_conf(app.conf)).delete(conn)
            with conn.channel() as channel:
                channel.queue_delete(work)
                channel.exchange_delete(work)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--retries", type=int, default=300)
    parser.add_argument("--rate", type=float, default=50.0)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--queue-type", default="classic")
    parser.add_argument("--label", default="this checkout")
    args = parser.parse_args()
    print("| code | run | retries | lateness p50 | p99 | max | max of the first 10 | early |\n|---|---|---|---|---|---|---|---|")
    for run in range(1, args.runs + 1):
        late = one_run(args.queue_type, args.retries, args.rate, seed=args.seed + run - 1)
        print(
            f"| {args.label} | {run} | {len(late)} | {percentile(late, 0.5):.1f} ms | {percentile(late, 0.99):.1f} ms "
            f"| {max(late):.1f} ms | {max(late[:10]):.1f} ms | {sum(x < 0 for x in late)} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
