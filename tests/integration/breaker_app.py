"""The Celery app of the circuit-breaker integration test, run in a real worker.

``dlx_app``'s app (same ``DLX_TEST_*`` environment) with a breaker in Redis under the key
prefix ``DLX_BR_PREFIX``, a short-timed policy for ``facebook``, and one ``FacebookTask`` that
calls a local HTTP server.  Each delivery is recorded in ``<key>:arrivals`` (before the breaker
is asked) and each call in ``<key>:calls`` (with whether it was a probe), so the test can tell
deferrals from calls independently of the result backend.
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

from celery_dlx.breaker import Policy
from celery_dlx.networks.tasks import FacebookTask

from .dlx_app import REDIS_URL
from .dlx_app import make_app as make_dlx_app

#: Opens after 3 failures, probes every 2 s (one probe), recovers at 5 tasks/s.
POLICY = Policy(threshold=3, window=30, open_for=2, max_open_for=2, probes=1, close_after=1, probe_wait=0.5,
                probe_timeout=10, recovery_rate=5)  # fmt: skip


def make_app(env: Mapping[str, str]) -> Celery:
    app = make_dlx_app(env)
    app.conf.update(dlx_breaker_url=REDIS_URL, dlx_breaker_prefix=env["DLX_BR_PREFIX"],
                    dlx_breaker_policies={"facebook": POLICY})  # fmt: skip
    store = redis.Redis.from_url(REDIS_URL)

    def log(key: str, task: Any, **entry: object) -> None:
        store.rpush(key, json.dumps({"t": time.time(), "id": task.request.id, "retries": task.request.retries, **entry}))

    class Fetch(FacebookTask):
        abstract = True
        retry_wait = wait_fixed(0.3)

        def before_start(self, task_id: str, args: Any, kwargs: Any) -> None:
            log(f"{kwargs['key']}:arrivals", self)
            super().before_start(task_id, args, kwargs)

    @app.task(shared=False, bind=True, base=Fetch, name="br.fetch", max_retries=5)
    def fetch(self: Fetch, url: str, key: str) -> Any:
        ticket = getattr(self.request, "dlx_breaker_ticket", None)
        log(f"{key}:calls", self, probe=bool(ticket and ticket.admission.probe))
        try:
            response = requests.get(url, timeout=5)
        except requests.RequestException as exc:
            self.handle_exception(exc)
        return self.check(response).json()

    return app


app = make_app(os.environ) if "DLX_BR_PREFIX" in os.environ else None
