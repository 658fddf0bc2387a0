"""What Celery hands from a pool process to the worker's main process after each retry.

Run (RabbitMQ and Redis on 127.0.0.1)::

    python -m benchmarks.retry_einfo [--retries 300]

For Celery's own retry (countdown) and for :class:`DLXTask`, the benchmark task retries
``--retries`` times through Celery's real tracer (``build_tracer``, the code a prefork child
runs; the retries are published to the real broker).  The tracer's return value is what the
pool pickles back to the main process; the table gives its pickled size and the time to
pickle it (in the child) and to unpickle it (in the main process, the one that consumes).
On Python 3.11+ billiard's copy of the traceback (``einfo.tb``) carries every frame's
``co_positions`` table; ``DLXTask.on_retry`` drops it.
"""

from __future__ import annotations

import argparse
import os
import pickle
import statistics
import sys
import time
import uuid

import redis
from celery.app.trace import build_tracer
from kombu import Connection

from celery_dlx import Topology
from celery_dlx.settings import Settings

from .bench_app import BROKER_URL, REDIS_URL, make_app, work_queue

CONTENDERS = {"countdown": "Celery countdown", "dlx_classic": "celery_dlx (DLXTask)"}


def measure(contender: str, retries: int) -> dict[str, float]:
    """Median pickled size and pickle/unpickle times of the tracer's result for one retry."""
    prefix = f"dlxeinfo.{contender}.{uuid.uuid4().hex[:6]}"
    app = make_app({**os.environ, "DLX_BENCH_CONTENDER": contender, "DLX_BENCH_PREFIX": prefix})
    task = app.tasks["bench.retry_once"]
    tracer = build_tracer(task.name, task, eager=False, app=app)
    sizes, dumps, loads = [], [], []
    try:
        for _ in range(retries):
            task_id = str(uuid.uuid4())
            request = {
                "id": task_id, "task": task.name, "hostname": "bench", "retries": 0, "headers": {},
                "delivery_info": {"exchange": "", "routing_key": work_queue(prefix), "priority": 0, "redelivered": False},
            }  # fmt: skip
            result, info, runtime, _ = tracer(task_id, (), {"key": prefix, "delay": 3600}, request)
            if info is None:
                raise RuntimeError(f"{contender}: the task did not retry")
            t0 = time.perf_counter()
            payload = pickle.dumps((1, result, runtime), protocol=pickle.HIGHEST_PROTOCOL)
            t1 = time.perf_counter()
            pickle.loads(payload)
            t2 = time.perf_counter()
            sizes.append(len(payload))
            dumps.append(t1 - t0)
            loads.append(t2 - t1)
    finally:
        with Connection(BROKER_URL) as conn:
            if contender.startswith("dlx_"):
                Topology(Settings.from_conf(app.conf)).delete(conn)
            with conn.channel() as channel:
                channel.queue_delete(work_queue(prefix))
        redis.Redis.from_url(REDIS_URL).delete(f"{prefix}:runs")
    return {
        "bytes": statistics.median(sizes),
        "dumps_us": statistics.median(dumps) * 1e6,
        "loads_us": statistics.median(loads) * 1e6,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--retries", type=int, default=300)
    args = parser.parse_args(argv)
    if args.retries < 1:
        parser.error("--retries must be at least 1")
    print(f"`python -m benchmarks.retry_einfo --retries {args.retries}`, Python {sys.version.split()[0]}\n")
    print("| contender | pickled per retry | pickle (pool process) | unpickle (main process) |\n|---|---|---|---|")
    for contender, label in CONTENDERS.items():
        m = measure(contender, args.retries)
        print(f"| {label} | {m['bytes']:,.0f} B | {m['dumps_us']:.0f} µs | {m['loads_us']:.0f} µs |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
