"""The Celery app the integration tests run in a real worker.

Configured from environment variables so the test process and the worker subprocess build the
same app: DLX_TEST_PREFIX, DLX_TEST_QUEUE_TYPE (delay queues), DLX_TEST_WORK_QUEUE_TYPE,
DLX_TEST_QUEUES (comma-separated work queues, the first is the default), DLX_TEST_ACKS_LATE,
DLX_TEST_PARKING_MAX_MESSAGES and DLX_TEST_PARKING_MAX_AGE (``none`` for no limit; absent: the
defaults).
Each task records every arrival in a Redis list so tests can count them independently of
Celery's result backend.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from datetime import datetime, timezone

import redis
from celery import Celery, Task
from kombu import Queue

from celery_dlx import DLXTask, delayed_retry
from celery_dlx.ops.bootstep import install
from celery_dlx.testing.worker import record_arrival

from ..support import BROKER_URL
from . import retry_options_app

REDIS_URL = os.environ.get("DLX_TEST_REDIS", "redis://127.0.0.1:6379/0")


def make_app(env: Mapping[str, str]) -> Celery:
    prefix = env["DLX_TEST_PREFIX"]
    queue_names = env["DLX_TEST_QUEUES"].split(",")
    work_args = {"x-queue-type": "quorum"} if env.get("DLX_TEST_WORK_QUEUE_TYPE") == "quorum" else None
    app = Celery("dlx_it", broker=BROKER_URL, backend=REDIS_URL, set_as_current=False)
    app.conf.update(
        dlx_prefix=prefix,
        dlx_queue_type=env.get("DLX_TEST_QUEUE_TYPE", "classic"),
        task_queues=[Queue(name, routing_key=name, queue_arguments=work_args) for name in queue_names],
        task_default_queue=queue_names[0],
        task_acks_late=env.get("DLX_TEST_ACKS_LATE") == "1",
        task_serializer="json",
        accept_content=["json"],
        worker_prefetch_multiplier=4,
        worker_hijack_root_logger=False,
        broker_connection_retry_on_startup=True,
    )
    for name, key in (("MESSAGES", "dlx_parking_max_messages"), ("AGE", "dlx_parking_max_age")):
        value = env.get(f"DLX_TEST_PARKING_MAX_{name}")
        if value is not None:
            app.conf[key] = None if value == "none" else float(value) if name == "AGE" else int(value)
    store = redis.Redis.from_url(REDIS_URL)

    def record(task: Task, key: str) -> None:
        record_arrival(store, key, task.request)

    @app.task(shared=False, bind=True, base=DLXTask, name="it.flaky")
    def flaky(self: DLXTask, key: str, fails: int, delay: float, queue: str | None = None) -> str:
        """Fails ``fails`` times, each time retried after ``delay`` s (to ``queue`` if given)."""
        record(self, key)
        if self.request.retries < fails:
            raise self.delayed_retry(countdown=delay, queue=queue, max_retries=fails)
        return "done"

    @app.task(shared=False, bind=True, base=DLXTask, name="it.eta")
    def at_eta(self: DLXTask, key: str, eta_epoch: float) -> None:
        """Retries once with ``eta`` = the given UNIX time."""
        record(self, key)
        if self.request.retries == 0:
            raise self.delayed_retry(eta=datetime.fromtimestamp(eta_epoch, tz=timezone.utc))

    @app.task(shared=False, bind=True, name="it.plain_flaky", max_retries=2)
    def plain_flaky(self: Task, key: str, fails: int, delay: float) -> str:
        """A plain Celery task using the delayed_retry function; max_retries=2 is honoured."""
        record(self, key)
        if self.request.retries < fails:
            raise delayed_retry(self, countdown=delay, exc=RuntimeError(f"attempt {self.request.retries}"))
        return "done"

    @app.task(shared=False, bind=True, base=DLXTask, name="it.until_fixed", max_retries=1)
    def until_fixed(self: DLXTask, key: str) -> str:
        """Fails (retried once, then parked) until Redis has ``<key>:fixed``; the error names a
        token that must not show anywhere."""
        record(self, key)
        if not store.exists(f"{key}:fixed"):
            raise self.retry(countdown=0.05, exc=RuntimeError("API down for https://api.example/x?access_token=SECRET123"))
        return "fixed"

    @app.task(shared=False, bind=True, base=DLXTask, name="it.spawn")
    def spawn(self: DLXTask, key: str, delay: float) -> None:
        """Starts a child that retries once, to check root and parent ids survive a retry."""
        record(self, key)
        flaky.apply_async((key, 1, delay))

    @app.task(shared=False, bind=True, base=DLXTask, name="it.member")
    def member(self: DLXTask, key: str, value: int, fails: int) -> int:
        """A canvas member: returns ``value`` after failing ``fails`` times, each failure retried
        by ``self.retry`` through the broker after 50 ms."""
        record(self, key)
        if self.request.retries < fails:
            raise self.retry(countdown=0.05, max_retries=fails, exc=RuntimeError(f"{value}: attempt {self.request.retries}"))
        return value

    @app.task(shared=False, bind=True, base=DLXTask, name="it.step")
    def step(self: DLXTask, previous: int, key: str, fails: int) -> int:
        """A chain link: ``previous + 1`` after failing ``fails`` times (retried as ``it.member``)."""
        record(self, key)
        if self.request.retries < fails:
            raise self.retry(countdown=0.05, max_retries=fails)
        return previous + 1

    @app.task(shared=False, bind=True, name="it.collect")
    def collect(self: Task, results: list[int], key: str) -> list[int]:
        """A chord callback: records each run and the results it was given under ``key``."""
        record(self, key)
        store.rpush(f"{key}:results", json.dumps(results))
        return results

    retry_options_app.register(app, record)
    if env.get("DLX_TEST_BOOTSTEP"):
        install(app)
        app.conf.dlx_worker_topology = env["DLX_TEST_BOOTSTEP"]
    return app


app = make_app(os.environ) if "DLX_TEST_PREFIX" in os.environ else None
