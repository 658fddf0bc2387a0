"""The Celery app of the rate-limit integration tests: dlx_app's app plus a rate-limited task.

Configured like dlx_app (DLX_TEST_PREFIX, DLX_TEST_QUEUES, ...) plus DLX_RL_PREFIX (Redis key
prefix of the limits) and DLX_RL_RATE (the rate of a per-queue limit, e.g. "2/1.5 seconds").
The task records, in Redis lists, every arrival (``<key>``), every admission
(``<key>:admitted``) and every deferral (``<key>:deferred``), so the test can check them
independently of Celery's result backend.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Mapping

import redis
from celery import Celery
from celery.exceptions import Retry

from celery_dlx import DLXTask
from celery_dlx.ratelimit import Limit, Limiter, RedisStorage, acquire_or_retry
from celery_dlx.testing.worker import record_arrival

from .dlx_app import REDIS_URL, make_app


def make_ratelimit_app(env: Mapping[str, str]) -> Celery:
    app = make_app(env)
    limiter = Limiter(
        RedisStorage.from_url(env.get("DLX_RL_URL") or REDIS_URL),  # the local cluster in its variant
        [Limit("trickle", env["DLX_RL_RATE"], by=("queue",))],
        prefix=env["DLX_RL_PREFIX"],
    )
    store = redis.Redis.from_url(REDIS_URL)

    def log(key: str, **entry: object) -> None:
        store.rpush(key, json.dumps({"t": time.time(), **entry}))

    @app.task(shared=False, bind=True, base=DLXTask, name="rl.call", max_retries=0)
    def call(self: DLXTask, key: str) -> str:
        """One rate-limited call: admitted by the queue's limit, or deferred through the broker.

        ``max_retries=0``: a deferral that counted as a retry would fail the task at once.
        """
        record_arrival(store, key, self.request)
        asked = time.time()
        try:
            decision = acquire_or_retry(self, limiter)
        except Retry as retry:
            log(f"{key}:deferred", id=self.request.id, asked=asked, wait=retry.exc.wait, countdown=retry.when)
            raise
        log(f"{key}:admitted", id=self.request.id, at_us=decision.at_us)
        return "done"

    return app


app = make_ratelimit_app(os.environ) if "DLX_RL_PREFIX" in os.environ else None
