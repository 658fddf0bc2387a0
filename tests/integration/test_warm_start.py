"""Warm start: a fresh worker's first retries find their connection open and the topology in
place (issue 23), seen in the worker's log, which names every retry connection a process opens
and whether it declared the topology."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from pathlib import Path

import pytest

from celery_dlx import warm_up
from celery_dlx.broker.publish import TaskMessage, publish_delayed
from celery_dlx.testing.worker import WorkerProcess, queue_counts, wait_until

from ..support import ROOT
from .conftest import DLXEnv
from .dlx_app import BROKER_URL

APP = "tests.integration.dlx_app:app"
OPENED = re.compile(r"celery_dlx: process (\d+) opened its retry connection \(([^)]*)\)")


def _opened(log: Path) -> list[tuple[str, str]]:
    return OPENED.findall(log.read_text()) if log.exists() else []


@pytest.mark.parametrize("pool, concurrency", [("prefork", 2), ("threads", 2), ("solo", 1)])
def test_a_fresh_worker_retries_on_connections_opened_at_start_without_declaring(
    make_env: Callable[..., DLXEnv], tmp_path: Path, pool: str, concurrency: int
) -> None:
    env = make_env(worker=False)
    log = tmp_path / "worker.log"
    processes = concurrency if pool == "prefork" else 1  # threads and solo publish from the worker process
    worker = WorkerProcess(
        APP, env.queues, BROKER_URL, pool=pool, concurrency=concurrency,
        env={**env.env, "DLX_TEST_BOOTSTEP": "declare"}, cwd=ROOT, logfile=log,
    )  # fmt: skip
    with worker:
        # Before any task is sent: one retry connection per publishing process, none declaring.
        assert wait_until(lambda: len(_opened(log)) == processes, timeout=30), log.read_text()
        at_start = _opened(log)
        assert {how for _, how in at_start} == {"the worker declared the topology"}
        assert len({pid for pid, _ in at_start}) == processes
        key = env.key()
        for _ in range(10):
            env.app.tasks["it.flaky"].delay(key, 2, 0.05)
        arrivals = env.arrivals(key, 30, timeout=60)
        assert sorted(a["retries"] for a in arrivals) == [0] * 10 + [1] * 10 + [2] * 10
        # The 20 retries opened no connection and declared nothing: the topology was declared
        # once, by the worker's bootstep.
        assert _opened(log) == at_start
        assert log.read_text().count(f"celery_dlx: topology {env.prefix} declared") == 1


def test_warm_up_opens_the_connection_a_publish_only_process_then_uses(
    make_env: Callable[..., DLXEnv], caplog: pytest.LogCaptureFixture
) -> None:
    env = make_env(worker=False)
    work = env.queues[0]
    with caplog.at_level(logging.INFO, logger="celery_dlx.broker.publish"):
        warm_up(env.app)
        warmed = [r.getMessage() for r in caplog.records if "opened its retry connection" in r.getMessage()]
        assert len(warmed) == 1 and "(declared the topology)" in warmed[0]
        caplog.clear()
        publish_delayed(env.app, work, 0.05, message=TaskMessage("it.flaky", (env.key(), 0, 0)))
        assert not [r for r in caplog.records if "opened its retry connection" in r.getMessage()]
    assert wait_until(lambda: queue_counts(BROKER_URL, [work])[work][0] == 1, timeout=10)
