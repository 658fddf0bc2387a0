"""The Celery app the pagination integration tests run in real workers.

Configured from environment variables so the test process and the worker subprocesses build
the same app: PAGING_TEST_PREFIX (dlx_prefix), PAGING_TEST_QUEUES (comma-separated work
queues, the first is the default) and PAGING_TEST_API (base URL of tests/integration/fake_api).
Trees and page ledgers live in the result backend's Redis (dlx_tracking_url's default), or at
PAGING_TRACKING_URL when set (the local Redis Cluster, in the cluster variant of the tests).
"""

from __future__ import annotations

import os
import urllib.request
from collections.abc import Mapping

import redis
from celery import Celery, Task
from kombu import Queue

from celery_dlx.pagination.plans import Page
from celery_dlx.pagination.tasks import PageTask
from celery_dlx.softlimit.http_session import TimedSession
from celery_dlx.softlimit.task import SoftLimitTask
from celery_dlx.testing.worker import record_arrival

from .dlx_app import BROKER_URL, REDIS_URL

#: Seconds a task gets before its soft time limit in the hanging-socket tests.
SOFT_LIMIT = 1.5
#: What TimedSession keeps back from the soft limit in these tests.
SESSION_MARGIN = 0.5
RETRY_DELAY = 0.3


def make_app(env: Mapping[str, str]) -> Celery:
    queue_names = env["PAGING_TEST_QUEUES"].split(",")
    api = env.get("PAGING_TEST_API", "")
    app = Celery("paging_it", broker=BROKER_URL, backend=REDIS_URL, set_as_current=False)
    app.conf.update(
        dlx_prefix=env["PAGING_TEST_PREFIX"],
        dlx_tracking_ttl=3600,
        dlx_tracking_url=env.get("PAGING_TRACKING_URL") or None,
        task_queues=[Queue(name, routing_key=name) for name in queue_names],
        task_default_queue=queue_names[0],
        task_serializer="json",
        accept_content=["json"],
        result_expires=3600,
        worker_prefetch_multiplier=1,
        worker_hijack_root_logger=False,
        broker_connection_retry_on_startup=True,
    )
    store = redis.Redis.from_url(REDIS_URL)
    http = TimedSession(connect=2.0, read=10.0, margin=SESSION_MARGIN)

    @app.task(shared=False, bind=True, base=PageTask, name="pg.page", default_retry_delay=RETRY_DELAY)
    def fetch_page(self: PageTask, kind: str, dataset: str, key: str, page: Page) -> int:
        """One page of the fake API; the items this page owns are "processed" into list ``key``."""
        params = {"cursor": page.cursor} if kind == "cursor" else {"offset": page.offset}
        response = http.get(f"{api}/{kind}/{dataset}", params={**params, "limit": page.size})
        if response.status_code == 503:
            raise self.retry()
        response.raise_for_status()
        body = response.json()
        owned = self.turn_page(page, [item["id"] for item in body["items"]], cursor=body.get("next"))
        if owned:
            store.rpush(key, *owned)
        return len(owned)

    @app.task(
        shared=False, bind=True, base=SoftLimitTask, name="pg.raw_hang",
        soft_time_limit=SOFT_LIMIT, time_limit=30, default_retry_delay=RETRY_DELAY,
    )  # fmt: skip
    def raw_hang(self: Task, key: str, hang_key: str) -> str:
        """A socket read without any timeout: only the soft limit's signal can end it."""
        record_arrival(store, key, self.request)
        with urllib.request.urlopen(f"{api}/hang/{hang_key}") as response:
            return "ok" if response.status == 200 else "unexpected"

    @app.task(
        shared=False, bind=True, base=SoftLimitTask, name="pg.session_hang",
        soft_time_limit=SOFT_LIMIT, time_limit=30, default_retry_delay=RETRY_DELAY,
    )  # fmt: skip
    def session_hang(self: Task, key: str, hang_key: str) -> str:
        """The same hang through TimedSession, whose read timeout comes from the soft limit."""
        record_arrival(store, key, self.request)
        return "ok" if http.get(f"{api}/hang/{hang_key}").json()["ok"] else "unexpected"

    @app.task(shared=False, name="pg.noop")
    def noop() -> None:
        """A tracked task for state checks (sent to a queue nobody consumes)."""

    return app


app = make_app(os.environ) if "PAGING_TEST_PREFIX" in os.environ else None
