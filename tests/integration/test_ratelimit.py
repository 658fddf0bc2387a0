"""A rate-limited task with a real worker: denied runs wait in the broker, not in the worker."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pika
import pytest
import redis

from celery_dlx.ratelimit import Rate
from celery_dlx.ratelimit.tasks import MAX_JITTER
from celery_dlx.redisio.client import Client, client_from_url
from celery_dlx.settings import Settings
from celery_dlx.testing.worker import WorkerProcess
from tests.unit.test_ratelimit_concurrency import busiest_window

from ..support import ROOT
from .conftest import DLXEnv, _cleanup
from .dlx_app import BROKER_URL
from .ratelimit_app import make_ratelimit_app

pytestmark = pytest.mark.integration

RATE = Rate.parse("2/1.5 seconds")
TASKS = 5


@pytest.fixture(params=["standalone", pytest.param("cluster", marks=pytest.mark.redis_cluster)])
def trickle(
    request: pytest.FixtureRequest,
    services: None,
    store: redis.Redis,
    observer: pika.BlockingConnection,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[DLXEnv]:
    """A unique deployment whose work queue is limited to RATE, with a worker consuming it; the
    limiter's state in the standalone Redis, or in the local Redis Cluster."""
    prefix = f"dlxtest.{uuid.uuid4().hex[:8]}"
    queues = [f"{prefix}.trickle"]
    env = {
        "DLX_TEST_PREFIX": prefix,
        "DLX_TEST_QUEUES": ",".join(queues),
        "DLX_RL_PREFIX": f"rltest:{prefix}",
        "DLX_RL_RATE": f"{RATE.limit}/{RATE.period} seconds",
    }
    limits: Client = store
    if request.param == "cluster":
        env["DLX_RL_URL"] = str(request.getfixturevalue("redis_cluster_url"))
        limits = client_from_url(env["DLX_RL_URL"], 5.0)
    dlx = DLXEnv(prefix=prefix, queues=queues, env=env, app=make_ratelimit_app(env), store=store)
    dlx.worker = WorkerProcess(
        "tests.integration.ratelimit_app:app",
        queues,
        BROKER_URL,
        env=env,
        cwd=ROOT,
        logfile=tmp_path_factory.mktemp("worker") / "worker.log",
    ).start()
    yield dlx
    dlx.worker.stop(warm=False)
    _cleanup(observer, dlx)
    for key in list(limits.scan_iter("{" + env["DLX_RL_PREFIX"] + "}:*")):  # tagged by the limiter's prefix
        limits.delete(key)


def entries(store: redis.Redis, key: str) -> list[dict[str, Any]]:
    return [json.loads(x) for x in store.lrange(key, 0, -1)]


@pytest.mark.compat
def test_a_denied_task_comes_back_through_the_broker_after_its_wait(trickle: DLXEnv) -> None:
    key = trickle.key()
    trickle.keys += [f"{key}:admitted", f"{key}:deferred"]
    ids = {trickle.app.tasks["rl.call"].delay(key).id for _ in range(TASKS)}

    deadline = time.monotonic() + 20
    while trickle.store.llen(f"{key}:admitted") < TASKS and time.monotonic() < deadline:
        time.sleep(0.05)
    admitted = entries(trickle.store, f"{key}:admitted")
    deferred = entries(trickle.store, f"{key}:deferred")
    arrivals = entries(trickle.store, key)

    assert sorted(a["id"] for a in admitted) == sorted(ids), "every task ran exactly once"
    assert busiest_window([a["at_us"] for a in admitted], RATE.period_us) <= RATE.limit
    assert len(deferred) >= TASKS - RATE.limit, "the queue's limit deferred the tasks beyond it"
    levels = Settings.from_conf(trickle.app.conf).levels
    for deferral in deferred:
        assert 0 <= deferral["countdown"] - deferral["wait"] <= min(0.1 * deferral["wait"], MAX_JITTER)
        back = next(a for a in arrivals if a["id"] == deferral["id"] and a["t"] > deferral["t"])
        # Through the delay topology: due after the countdown (late by at most the planner's
        # documented bound, max(unit, precision x countdown)), never early, back to the same queue ...
        slack = max(levels.unit_ms / 1000, float(levels.precision) * deferral["countdown"])
        assert deferral["asked"] + deferral["countdown"] <= back["due"] <= deferral["t"] + deferral["countdown"] + slack
        assert back["t"] >= back["due"], "delivered before it was due"
        assert back["t"] - back["due"] < 1.0
        assert back["queue"] == trickle.queues[0] and back["x_death"] > 0
        # ... and a deferral is not a failed attempt (the task allows no retries at all).
        assert back["retries"] == 0


BURST = 16


def test_a_burst_comes_back_one_reserved_slot_at_a_time_not_as_a_herd(trickle: DLXEnv) -> None:
    """Every task denied in the burst reserves its own slot and runs on it when it comes back:
    about one deferral per task beyond the first window, never more than the limit in a window."""
    key = trickle.key()
    trickle.keys += [f"{key}:admitted", f"{key}:deferred"]
    ids = {trickle.app.tasks["rl.call"].delay(key).id for _ in range(BURST)}

    deadline = time.monotonic() + 60
    while trickle.store.llen(f"{key}:admitted") < BURST and time.monotonic() < deadline:
        time.sleep(0.1)
    admitted = entries(trickle.store, f"{key}:admitted")
    deferred = entries(trickle.store, f"{key}:deferred")

    assert sorted(a["id"] for a in admitted) == sorted(ids), "every task ran exactly once"
    assert busiest_window([a["at_us"] for a in admitted], RATE.period_us) <= RATE.limit
    assert len(deferred) <= 1.2 * BURST, f"{len(deferred)} deferrals for {BURST} tasks"
    # Planned exactly: each deferral's countdown is the wait to its slot, without jitter.
    assert all(d["countdown"] == d["wait"] for d in deferred)
