"""Foundation figures: queues declared, largest delay, lateness, and unacked while retries wait.

Run: ``make bench`` or ``python -m benchmarks.foundation [--retries 1000] [--pending 5000]``
with RabbitMQ and Redis on 127.0.0.1 (rabbitmqctl on PATH, or DLX_RABBITMQCTL set).
For each delay queue type it starts a real worker (prefork, 2 processes) and measures:

- lateness (arrival - due) of ``--retries`` tasks that each fail once and retry after a random
  delay of 0.1-5 s, sent at a pace the worker keeps up with so queueing does not count;
- the worker's unacknowledged messages, seen by rabbitmqctl, while ``--pending`` retries of
  600 s wait in the delay queues.

Writes a markdown table to benchmarks/results/foundation.md.
"""

from __future__ import annotations

import argparse
import os
import random
import shlex
import statistics
import subprocess
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import redis
from kombu import Connection

from celery_dlx import Settings, Topology
from celery_dlx.testing.worker import WorkerProcess, queue_counts, wait_for_arrivals

from .probe_app import BROKER_URL, REDIS_URL, make_app

RESULTS = Path(__file__).parent / "results"


def rabbitmqctl(*args: str) -> str:
    command = shlex.split(os.environ.get("DLX_RABBITMQCTL", "rabbitmqctl"))
    return subprocess.run([*command, "-q", *args], check=True, capture_output=True, text=True).stdout


@dataclass
class Result:
    queue_type: str
    queues_declared: int
    max_delay_days: float
    lateness_ms: list[float]
    mean_hops: float
    pending: int
    unacked: int


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


def measure(queue_type: str, retries: int, pending: int) -> Result:
    prefix = f"dlxbench.{uuid.uuid4().hex[:6]}"
    app = make_app(prefix, queue_type)
    topology = Topology(Settings.from_conf(app.conf))
    store = redis.Redis.from_url(REDIS_URL)
    task = app.tasks["bench.fail_once"]
    env = {"DLX_BENCH_PREFIX": prefix, "DLX_BENCH_QUEUE_TYPE": queue_type}
    work = f"{prefix}.work"
    rng = random.Random(42)
    try:
        with WorkerProcess("benchmarks.probe_app:app", [work], BROKER_URL, env=env, cwd=Path(__file__).parents[1]):
            key = f"{prefix}:late"
            delays = [rng.uniform(0.1, 5.0) for _ in range(retries)]
            with app.producer_or_acquire() as producer:
                for delay in delays:
                    task.apply_async((key, delay), producer=producer)
                    time.sleep(1 / 200)
            arrivals = wait_for_arrivals(store, key, 2 * retries, timeout=120)
            late = [(a["t"] - a["due"]) * 1000 for a in arrivals if a["retries"] == 1]
            hops = statistics.mean(topology.settings.levels.plan(d).hops for d in delays)

            key = f"{prefix}:pending"
            with app.producer_or_acquire() as producer:
                for _ in range(pending):
                    task.apply_async((key, 600), producer=producer)
            delay_queues = [q.name for q in topology.level_queues]
            deadline = time.monotonic() + 300
            while sum(r for r, _ in queue_counts(BROKER_URL, delay_queues).values()) < pending:
                if time.monotonic() > deadline:
                    raise TimeoutError("retries did not reach the delay queues")
                time.sleep(0.5)
            waiting = sum(r for r, _ in queue_counts(BROKER_URL, delay_queues).values())
            rows = [line.split() for line in rabbitmqctl("list_queues", "name", "messages_unacknowledged").splitlines()]
            unacked = sum(int(n) for name, n in rows if name.startswith(prefix))
            declared = sum(1 for name, _ in rows if name.startswith(prefix) and name != work)
            store.delete(f"{prefix}:late", key)
    finally:
        _cleanup(topology, work)
    return Result(queue_type, declared, topology.settings.levels.max_delay / 86400, late, hops, waiting, unacked)


def _cleanup(topology: Topology, work: str) -> None:
    with Connection(BROKER_URL) as conn:
        topology.delete(conn)
        with conn.channel() as channel:
            channel.queue_delete(work)
            channel.exchange_delete(work)


def table(results: list[Result], retries: int, command: str) -> str:
    version = rabbitmqctl("version").strip()
    lines = [
        f"# Foundation benchmark\n\n`{command}` on {time.strftime('%Y-%m-%d')}, RabbitMQ {version}, "
        f"worker prefork -c 2, {retries} retries with random delays 0.1-5 s.\n",
        "| delay queues | queues declared | largest delay | lateness median | p90 | p99 | max | early | mean hops | retries pending | worker unacked |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        late = r.lateness_ms
        lines.append(
            f"| {r.queue_type} | {r.queues_declared} | {r.max_delay_days:.2f} days | {statistics.median(late):.1f} ms "
            f"| {percentile(late, 0.90):.1f} ms | {percentile(late, 0.99):.1f} ms | {max(late):.1f} ms "
            f"| {sum(x < 0 for x in late)} | {r.mean_hops:.1f} | {r.pending} | {r.unacked} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--retries", type=int, default=1000)
    parser.add_argument("--pending", type=int, default=5000)
    parser.add_argument("--queue-types", default="classic,quorum")
    args = parser.parse_args()
    results = []
    for queue_type in args.queue_types.split(","):
        print(f"measuring {queue_type} delay queues ...", flush=True)
        results.append(measure(queue_type, args.retries, args.pending))
    command = "python -m benchmarks.foundation " + " ".join(
        f"--{k.replace('_', '-')} {v}" for k, v in vars(args).items()
    )
    text = table(results, args.retries, command)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "foundation.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
