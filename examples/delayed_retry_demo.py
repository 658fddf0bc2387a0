"""See celery_dlx hold retries in the broker while the worker holds nothing.

Run: ``make demo`` (or ``python -m examples.delayed_retry_demo``) with RabbitMQ and Redis on
127.0.0.1.  It starts a real worker, sends tasks that call a flaky "API" that fails once, and
shows the retries waiting in the delay queues, the worker's unacknowledged count and memory,
and how late the short retries arrived.  Everything it declares is deleted at the end.
"""

from __future__ import annotations

import os
import random
import statistics
import sys
import time
import uuid

import redis
from celery import Celery
from kombu import Connection

from celery_dlx import DLXTask, Settings, Topology
from celery_dlx.testing.worker import WorkerProcess, queue_counts, record_arrival, wait_for_arrivals

BROKER_URL = os.environ.get("DLX_DEMO_BROKER", "amqp://guest:guest@127.0.0.1:5672//")
REDIS_URL = os.environ.get("DLX_DEMO_REDIS", "redis://127.0.0.1:6379/0")
PREFIX = os.environ.setdefault("DLX_DEMO_PREFIX", f"dlxdemo.{uuid.uuid4().hex[:6]}")
QUEUE = f"{PREFIX}.work"

app = Celery("delayed_retry_demo", broker=BROKER_URL, set_as_current=False)
app.conf.update(dlx_prefix=PREFIX, task_default_queue=QUEUE, worker_hijack_root_logger=False)
store = redis.Redis.from_url(REDIS_URL)


@app.task(bind=True, base=DLXTask, name="demo.sync_profile", shared=False)
def sync_profile(self: DLXTask, account: int, retry_in: float, log_key: str) -> str:
    """Pretend to call an API that answers 503 the first time."""
    record_arrival(store, log_key, self.request)
    if self.request.retries == 0:
        raise self.retry(countdown=retry_in, exc=RuntimeError("503 from the API"))
    return f"account {account} synced"


def main() -> int:
    warmup, long, short = 1000, 2000, 500
    log_key = f"{PREFIX}:arrivals"
    topology = Topology(Settings.from_conf(app.conf))
    delay_queues = [q.name for q in topology.level_queues]
    rng = random.Random(1)
    print(f"celery_dlx demo: prefix {PREFIX}, {len(delay_queues)} delay queues, one worker (prefork, 2 processes)")
    with WorkerProcess("examples.delayed_retry_demo:app", [QUEUE], BROKER_URL, env={"DLX_DEMO_PREFIX": PREFIX}) as worker:
        phases = [
            ("warm-up: retries in 0.2-1 s", [round(rng.uniform(0.2, 1.0), 3) for _ in range(warmup)]),
            ("retries due in 1 hour", [3600.0] * long),
            ("retries in 0.2-3 s", [round(rng.uniform(0.2, 3.0), 3) for _ in range(short)]),
        ]
        expected, first = 0, 0
        for number, (title, delays) in enumerate(phases):
            if number == 1:
                rss_warm = worker.rss_bytes()
            if number == 2:
                first = store.llen(log_key)
            print(f"\n{title}: sending {len(delays)} tasks that fail once")
            # The last batch is paced below the worker's speed, so lateness shows the broker's
            # delay and not time spent queueing behind a backlog.
            pace = 1 / 150 if number == 2 else 0.0
            with app.producer_or_acquire() as producer:
                for account, delay in enumerate(delays):
                    sync_profile.apply_async((account, delay, log_key), producer=producer)
                    time.sleep(pace)
            expected += len(delays) * (1 if delay > 60 else 2)
            _progress(worker, log_key, expected, delay_queues)
        arrivals = wait_for_arrivals(store, log_key, expected, timeout=5)[first:]
        rss_end = worker.rss_bytes()
    late = sorted(a["t"] - a["due"] for a in arrivals if a["retries"] == 1)
    waiting = sum(ready for ready, _ in queue_counts(BROKER_URL, delay_queues).values())
    print(f"\n{long} retries due in 1 hour are waiting in the broker: {waiting}; the worker holds none of them")
    print(f"worker RSS after warm-up {rss_warm / 2**20:.1f} MiB, at the end {rss_end / 2**20:.1f} MiB")
    if late:
        p99 = late[min(len(late) - 1, int(len(late) * 0.99))]
        print(
            f"{len(late)} retries of 0.2-3 s arrived: lateness median {statistics.median(late) * 1000:.1f} ms, "
            f"p99 {p99 * 1000:.1f} ms, max {late[-1] * 1000:.1f} ms, early {sum(x < 0 for x in late)}"
        )
    _cleanup(topology)
    store.delete(log_key)
    ok = len(late) == short and waiting == long and all(x >= 0 for x in late)
    print("demo", "OK" if ok else "FAILED")
    return 0 if ok else 1


def _progress(worker: WorkerProcess, log_key: str, expected: int, delay_queues: list[str]) -> None:
    """Print deliveries, what waits in each delay level and the worker's memory until done."""
    started = time.monotonic()
    while time.monotonic() - started < 60:
        arrived = store.llen(log_key)
        counts = queue_counts(BROKER_URL, [*delay_queues, QUEUE])
        waiting = {q.rsplit(".", 1)[-1]: counts[q][0] for q in delay_queues if counts[q][0]}
        print(
            f"\r{time.monotonic() - started:5.1f}s deliveries {arrived:5d}  work queue {counts[QUEUE][0]:5d}"
            f"  waiting in broker {sum(waiting.values()):5d} {waiting}  worker RSS {worker.rss_bytes() / 2**20:6.1f} MiB  ",
            end="",
            flush=True,
        )
        if arrived >= expected and not counts[QUEUE][0]:
            return
        time.sleep(0.5)


def _cleanup(topology: Topology) -> None:
    with Connection(BROKER_URL) as conn:
        topology.delete(conn)
        with conn.channel() as channel:
            channel.queue_delete(QUEUE)
            channel.exchange_delete(QUEUE)


if __name__ == "__main__":
    sys.exit(main())
