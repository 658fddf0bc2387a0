"""The Celery app ``python -m benchmarks.run`` runs in a real worker, one per contender.

Configured by environment variables, so the benchmark process and the worker subprocess build
the same app:

- ``DLX_BENCH_CONTENDER``: ``countdown`` (Celery's ``self.retry(countdown=…)``, classic work
  queue, direct exchange: Celery's defaults), ``native`` (the same call with Celery's native
  delayed delivery: quorum work queue on a topic exchange, ``celery_delayed_*`` topology declared
  by the worker's DelayedDelivery bootstep), ``dlx_classic`` / ``dlx_quorum`` (:class:`DLXTask`,
  celery_dlx delay queues of that type);
- ``DLX_BENCH_PREFIX``: names the work queue (``<prefix>.work``) and celery_dlx's topology;
- ``DLX_BENCH_CONFIRM=1``: publisher confirms for Celery's own publishes too (celery_dlx always
  confirms its retries);
- ``DLX_BENCH_METRICS=1``: celery_dlx records its counters (:mod:`celery_dlx.metrics`) in
  ``DLX_BENCH_REDIS``; otherwise the app has no Redis and records none;
- ``DLX_BENCH_BROKER`` / ``DLX_BENCH_REDIS``: service URLs;
- ``DLX_BENCH_RL_RATE`` (e.g. ``50/second``, celery_dlx contenders only): adds ``bench.limited``,
  a task that :func:`~celery_dlx.ratelimit.acquire_or_retry` s one limit per work queue (Redis
  keys under ``<prefix>:rl``) before it runs (:mod:`benchmarks.ratelimit_herd`).

Every contender runs the same task code; only the task base class and the queue setup differ.
The intended due time of a retry is computed by the task itself, the same way for everyone
(``time.time() + delay`` just before ``self.retry``), and travels in the task's kwargs.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Mapping

import redis
from celery import Celery, Task
from kombu import Exchange, Queue

from celery_dlx import DLXTask
from celery_dlx.ratelimit import Limit, Limiter, RedisStorage, acquire_or_retry
from celery_dlx.testing.worker import record_arrival

BROKER_URL = os.environ.get("DLX_BENCH_BROKER", "amqp://guest:guest@127.0.0.1:5672//")
REDIS_URL = os.environ.get("DLX_BENCH_REDIS", "redis://127.0.0.1:6379/0")
CONTENDERS = ("countdown", "native", "dlx_classic", "dlx_quorum")


def work_queue(prefix: str) -> str:
    return f"{prefix}.work"


def make_app(env: Mapping[str, str]) -> Celery:
    contender = env["DLX_BENCH_CONTENDER"]
    if contender not in CONTENDERS:
        raise ValueError(f"DLX_BENCH_CONTENDER must be one of {CONTENDERS}, got {contender!r}")
    prefix = env["DLX_BENCH_PREFIX"]
    broker = env.get("DLX_BENCH_BROKER", BROKER_URL)
    work = work_queue(prefix)
    app = Celery("dlx_bench_run", broker=broker, set_as_current=False)
    app.conf.update(
        task_default_queue=work,
        task_serializer="json",
        accept_content=["json"],
        task_ignore_result=True,
        worker_hijack_root_logger=False,
        worker_prefetch_multiplier=4,
        broker_connection_retry_on_startup=True,
    )
    if env.get("DLX_BENCH_CONFIRM") == "1":
        app.conf.broker_transport_options = {"confirm_publish": True}
    if contender == "native":
        exchange = Exchange(work, type="topic")
        app.conf.update(
            task_queues=[Queue(work, exchange, routing_key=work, queue_arguments={"x-queue-type": "quorum"})],
            task_default_exchange=work,
            task_default_exchange_type="topic",
            task_default_routing_key=work,
            broker_native_delayed_delivery_queue_type="quorum",
        )
    elif contender.startswith("dlx_"):
        app.conf.update(dlx_prefix=prefix, dlx_queue_type=contender.removeprefix("dlx_"))
        if env.get("DLX_BENCH_METRICS") == "1":
            app.conf.dlx_metrics_url = env.get("DLX_BENCH_REDIS", REDIS_URL)
    base: type[Task] = DLXTask if contender.startswith("dlx_") else Task
    store = redis.Redis.from_url(env.get("DLX_BENCH_REDIS", REDIS_URL))

    @app.task(bind=True, base=base, name="bench.retry_once", shared=False, max_retries=None)
    def retry_once(self: Task, key: str, delay: float, due: float | None = None) -> None:
        """First run: count it and retry after ``delay`` s; second run: record the arrival."""
        if due is None:
            store.incr(f"{key}:runs")
            due = time.time() + delay
            raise self.retry(kwargs={"key": key, "delay": delay, "due": due}, countdown=delay)
        store.rpush(f"{key}:arrivals", json.dumps({"t": time.time(), "due": due, "delay": delay}))

    @app.task(name="bench.noop", shared=False)
    def noop(key: str) -> None:
        store.incr(f"{key}:done")

    if "DLX_BENCH_RL_RATE" in env:
        storage = RedisStorage.from_url(env.get("DLX_BENCH_REDIS", REDIS_URL))
        limit = Limit("herd", env["DLX_BENCH_RL_RATE"], by=("queue",))
        add_limited_task(app, store, Limiter(storage, [limit], prefix=f"{prefix}:rl"))
    return app


def add_limited_task(app: Celery, store: redis.Redis, limiter: Limiter) -> None:
    """``bench.limited``: every delivery recorded in ``<key>:tries`` (:func:`record_arrival`),
    then admitted by ``limiter`` (and its admission recorded in ``<key>:admitted``) or deferred.

    The admission records the task body's own clock and the limiter's (storage time), so a
    window that admitted more than the limit shows whichever clock is read.
    ``max_retries=0``: a deferral that counted as a retry would fail the task at once.
    """
    @app.task(bind=True, base=DLXTask, name="bench.limited", shared=False, max_retries=0)
    def limited(self: DLXTask, key: str) -> None:
        record_arrival(store, f"{key}:tries", self.request)
        decision = acquire_or_retry(self, limiter)
        store.rpush(f"{key}:admitted", json.dumps({"t": time.time(), "at_us": decision.at_us}))


app = make_app(os.environ) if "DLX_BENCH_CONTENDER" in os.environ else None
