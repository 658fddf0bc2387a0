"""The Celery app of the network-task integration tests, run in a real worker.

It is ``dlx_app``'s app (same ``DLX_TEST_*`` environment, same queues and topology) with
tasks built on :mod:`celery_dlx.networks.tasks` that call a test HTTP server with ``requests``.
Every attempt is recorded in a Redis list (time, retry number, the exchange the delivery
came from and the ``kwargsrepr`` header it carried) so tests can check what the broker
delivered, and when, independently of the result backend.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Mapping
from typing import Any

import redis
import requests
from celery import Celery
from tenacity import wait_fixed

from celery_dlx.classify import Verdict
from celery_dlx.networks.tasks import TwitterTask

from .dlx_app import REDIS_URL
from .dlx_app import make_app as make_dlx_app


def make_app(env: Mapping[str, str]) -> Celery:
    app = make_dlx_app(env)
    store = redis.Redis.from_url(REDIS_URL)

    class Timeline(TwitterTask):
        """Marks the account's token as bad the way an application would: in its own store."""

        abstract = True
        # Short backoffs: the test server's resets are seconds away.
        retry_wait = wait_fixed(0.5)
        rate_limit_jitter = wait_fixed(0.2)

        def on_auth_invalid(self, verdict: Verdict) -> None:
            store.rpush(f"{self.request.kwargs['key']}:auth", json.dumps(verdict.as_dict()))

    def record(task: TwitterTask, key: str) -> None:
        request = task.request
        store.rpush(
            key,
            json.dumps(
                {
                    "t": time.time(),
                    "retries": request.retries,
                    "exchange": (request.delivery_info or {}).get("exchange"),
                    "kwargsrepr": request.get("kwargsrepr"),
                }
            ),
        )

    class Refreshing(Timeline):
        """Refreshes an expired token the way an application would: a new one in its store."""

        abstract = True

        def on_token_expired(self, verdict: Verdict) -> bool:
            key = self.request.kwargs["key"]
            store.rpush(f"{key}:refreshed", json.dumps(verdict.as_dict()))
            store.set(f"{key}:token", f"refreshed-{store.llen(f'{key}:refreshed')}")
            return True

    @app.task(shared=False, bind=True, base=Refreshing, name="it.refreshing_timeline", max_retries=0)
    def refreshing_timeline(self: Refreshing, url: str, key: str) -> Any:
        """Reads the account's current token from the store on every run; no retry to spare."""
        record(self, key)
        token = (store.get(f"{key}:token") or b"first-token").decode()
        return self.check(requests.get(url, params={"access_token": token}, timeout=5)).json()

    @app.task(shared=False, bind=True, base=Timeline, name="it.timeline", max_retries=3)
    def timeline(self: Timeline, url: str, key: str, access_token: str) -> Any:
        """Reads a timeline, passing the token the way Graph-style APIs take it (in the URL)."""
        record(self, key)
        try:
            response = requests.get(url, params={"access_token": access_token}, timeout=5)
            response.raise_for_status()
        except requests.RequestException as exc:
            self.handle_exception(exc)
        return self.check(response).json()

    return app


app = make_app(os.environ) if "DLX_TEST_PREFIX" in os.environ else None
