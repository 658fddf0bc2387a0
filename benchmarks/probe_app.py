"""The Celery app the benchmarks run in a real worker, configured by environment variables.

DLX_BENCH_PREFIX (required), DLX_BENCH_QUEUE_TYPE (classic | quorum delay queues),
DLX_BENCH_BOOTSTEP (``1``: the worker runs celery_dlx's bootstep, ``install(app)``).
"""

from __future__ import annotations

import os

import redis
from celery import Celery

from celery_dlx import DLXTask
from celery_dlx.testing.worker import record_arrival

BROKER_URL = os.environ.get("DLX_BENCH_BROKER", "amqp://guest:guest@127.0.0.1:5672//")
REDIS_URL = os.environ.get("DLX_BENCH_REDIS", "redis://127.0.0.1:6379/0")


def make_app(prefix: str, queue_type: str) -> Celery:
    app = Celery("dlx_bench", broker=BROKER_URL, set_as_current=False)
    app.conf.update(
        dlx_prefix=prefix,
        dlx_queue_type=queue_type,
        task_default_queue=f"{prefix}.work",
        worker_hijack_root_logger=False,
    )
    store = redis.Redis.from_url(REDIS_URL)

    @app.task(bind=True, base=DLXTask, name="bench.fail_once", shared=False)
    def fail_once(self: DLXTask, key: str, delay: float) -> None:
        """Record the delivery; the first one is retried after ``delay`` seconds."""
        record_arrival(store, key, self.request)
        if self.request.retries == 0:
            raise self.retry(countdown=delay)

    if os.environ.get("DLX_BENCH_BOOTSTEP") == "1":
        from celery_dlx.ops.bootstep import install

        install(app)
    return app


app = make_app(os.environ["DLX_BENCH_PREFIX"], os.environ.get("DLX_BENCH_QUEUE_TYPE", "classic")) if "DLX_BENCH_PREFIX" in os.environ else None
