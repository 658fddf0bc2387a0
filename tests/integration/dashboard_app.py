"""The Celery app the dashboard's browser test serves: ``breaker_app``'s app (same
``DLX_TEST_*`` and ``DLX_BR_PREFIX`` environment) with a breaker policy that stays open for ten
minutes, so the overview and ``celery dlx status --json`` see the same state during the test,
and a rate limit per account on Redis, named for the metrics (``dlx_metrics_limiters``)."""

from __future__ import annotations

import os
from collections.abc import Mapping

from celery import Celery

from celery_dlx.breaker import Policy
from celery_dlx.ratelimit import Limit, Limiter, RedisStorage

from .breaker_app import make_app as make_breaker_app
from .dlx_app import REDIS_URL

POLICY = Policy(threshold=3, window=600, open_for=600, max_open_for=600, probes=1, close_after=1)


def make_app(env: Mapping[str, str]) -> Celery:
    app = make_breaker_app(env)
    limiter = Limiter(RedisStorage.from_url(REDIS_URL), [Limit("fb-calls", "200/1 hour", by=("account",))], prefix=f"{env['DLX_BR_PREFIX']}:rl")
    app.conf.update(dlx_breaker_policies={"facebook": POLICY}, dlx_metrics_limiters=[limiter])
    return app


app = make_app(os.environ) if "DLX_BR_PREFIX" in os.environ else None
