"""A real worker against a local HTTP server that goes down and comes back: once the breaker
opens, tasks wait in the broker instead of calling, the server sees only probe calls until it
recovers, and then every task succeeds, its retry count untouched by the deferrals."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import redis

from celery_dlx.breaker import OPEN, Breaker, RedisStorage
from celery_dlx.testing.worker import WorkerProcess

from ..support import ROOT
from . import breaker_app
from .conftest import DLXEnv
from .dlx_app import BROKER_URL, REDIS_URL
from .test_networks import Reply, TwitterLike, twitter_like  # noqa: F401  (fixture)

pytestmark = pytest.mark.integration

TASKS = 12
#: How long the server stays down after the breaker opened: two probe rounds or more.
DOWN_AFTER_OPEN = 5.0


def entries(store: redis.Redis, key: str) -> list[dict[str, Any]]:
    return [json.loads(x) for x in store.lrange(key, 0, -1)]


def test_tasks_wait_out_an_outage_in_the_broker_and_only_probes_reach_the_server(
    make_env: Callable[..., DLXEnv], twitter_like: Callable[[list[Reply]], TwitterLike], tmp_path: Path  # noqa: F811
) -> None:
    down = True
    server = twitter_like(
        [lambda: (503, {}, {"error": {"message": "Service temporarily unavailable", "code": 2}}) if down
         else (200, {}, {"data": "ok"})]
    )
    dlx = make_env(worker=False)
    prefix = f"brtest:{uuid.uuid4().hex[:8]}"
    dlx.env["DLX_BR_PREFIX"] = prefix
    key = dlx.key()
    dlx.keys += [f"{key}:arrivals", f"{key}:calls", f"{prefix}:{{facebook}}", f"{prefix}:{{facebook}}:f"]
    dlx.worker = WorkerProcess(
        "tests.integration.breaker_app:app", dlx.queues, BROKER_URL, env=dlx.env, cwd=ROOT, logfile=tmp_path / "worker.log"
    ).start()
    app = breaker_app.make_app(dlx.env)
    breaker = Breaker(RedisStorage.from_url(REDIS_URL), breaker_app.POLICY, prefix=prefix)

    results = [app.tasks["br.fetch"].apply_async(kwargs={"url": server.url, "key": key}) for _ in range(TASKS)]

    deadline = time.monotonic() + 30
    while breaker.state("facebook").mode != OPEN and time.monotonic() < deadline:
        time.sleep(0.05)
    opened = breaker.state("facebook")
    assert opened.mode == OPEN, "three 503s open the breaker"
    assert opened.opened_at is not None
    time.sleep(DOWN_AFTER_OPEN)
    during = breaker.state("facebook")
    down = False
    up_at = time.time()

    assert [r.get(timeout=90) for r in results] == [{"data": "ok"}] * TASKS, "every task succeeds after recovery"

    calls, arrivals = entries(dlx.store, f"{key}:calls"), entries(dlx.store, f"{key}:arrivals")
    # Calls admitted before the breaker opened may still be under way when it opens (a busy
    # machine can delay them); the first probe cannot come before open_for (2 s) has passed.
    grace = 1.0
    after_open = [c for c in calls if opened.opened_at + grace <= c["t"] < up_at]
    hits_after_open = [h for h in server.hits if opened.opened_at + grace <= h["t"] < up_at]
    rounds = DOWN_AFTER_OPEN / breaker_app.POLICY.open_for
    print(
        f"\n{TASKS} tasks: {len(server.hits)} server hits in all, {len(hits_after_open)} while open "
        f"(probes: {sum(c['probe'] for c in after_open)}), {len(arrivals) - len(calls)} deferrals, "
        f"{during.waiting} waiting mid-outage"
    )
    assert all(c["probe"] for c in after_open), f"only probes call while the breaker is open: {after_open}"
    assert 1 <= len(hits_after_open) <= rounds + 2, "the server sees only the probes while the breaker is open"
    assert len(after_open) <= rounds + 2
    assert len(arrivals) > len(calls), "tasks were deferred without calling"
    assert during.deferred > 0 and during.waiting > 0
    # Deferrals do not count as attempts: a task's last run has seen exactly its failed calls.
    for result in results:
        own = [c for c in calls if c["id"] == result.id]
        assert own[-1]["retries"] == len(own) - 1, f"retries counted deferrals: {own}"
