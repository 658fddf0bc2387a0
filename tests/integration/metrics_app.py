"""The Celery app of the metrics integration tests: dlx_app's app (retries, parks) plus a
rate-limited task and a task behind a circuit breaker, both deferring for an hour.

Configured like dlx_app (DLX_TEST_PREFIX, DLX_TEST_QUEUES, ...) plus DLX_MX_PREFIX (Redis key
prefix of the limits and the breaker) and DLX_MX_AUTO_DECLARE (``0``: ``dlx_auto_declare=False``).  Each deferral is also logged in Redis (``<key>:deferred``)
by the task itself, so a test compares the counters with what the worker did.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

import redis
from celery import Celery
from celery.exceptions import Retry

from celery_dlx import DLXTask
from celery_dlx.breaker import Policy
from celery_dlx.breaker.tasks import guard
from celery_dlx.ratelimit import Limit, Limiter, RedisStorage, acquire_or_retry
from celery_dlx.testing.worker import record_arrival

from .dlx_app import REDIS_URL, make_app

#: The breaker's name, and its policy: one failure opens it for an hour.
BREAKER = "mxnet"
POLICY = Policy(threshold=1, window=60, open_for=3600, max_open_for=3600)
#: One call an hour per queue: every call after the first is deferred for about an hour.
RATE = "1/1 hour"


def make_metrics_app(env: Mapping[str, str]) -> Celery:
    app = make_app(env)
    prefix = env["DLX_MX_PREFIX"]
    limiter = Limiter(RedisStorage.from_url(REDIS_URL), [Limit("mx-trickle", RATE, by=("queue",))], prefix=f"{prefix}:rl")
    app.conf.update(
        dlx_breaker_url=REDIS_URL,
        dlx_breaker_prefix=f"{prefix}:br",
        dlx_breaker_policies={BREAKER: POLICY},
        dlx_metrics_limiters=[limiter],
        # "0": retries find no delay topology (nobody declared it), so every retry publish fails.
        dlx_auto_declare=env.get("DLX_MX_AUTO_DECLARE", "1") == "1",
    )
    store = redis.Redis.from_url(REDIS_URL)

    @app.task(shared=False, bind=True, base=DLXTask, name="mx.throttled")
    def throttled(self: DLXTask, key: str) -> str:
        record_arrival(store, key, self.request)
        try:
            acquire_or_retry(self, limiter)
        except Retry:
            store.rpush(f"{key}:deferred", self.request.id)
            raise
        return "done"

    @app.task(shared=False, bind=True, base=DLXTask, name="mx.guarded")
    def guarded(self: DLXTask, key: str) -> str:
        record_arrival(store, key, self.request)
        try:
            guard(self, BREAKER)
        except Retry:
            store.rpush(f"{key}:deferred", self.request.id)
            raise
        return "done"

    return app


app = make_metrics_app(os.environ) if "DLX_MX_PREFIX" in os.environ else None
