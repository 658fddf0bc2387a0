"""Scenario 1: the worker is killed with SIGKILL, again and again, while 10 000 tasks fail once
and come back through the delay queues.  acks_late + task_reject_on_worker_lost: nothing is lost;
duplicates of the side effect are counted, and with celery_dlx.idempotency there are none."""

from __future__ import annotations

import os
import random
import signal
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from celery_dlx.testing.rabbitnode import RabbitNode
from celery_dlx.testing.worker import queue_counts

from .conftest import RelEnv, url_of

pytestmark = pytest.mark.reliability

N = int(os.environ.get("DLX_RELIABILITY_N", "10000"))
#: Kill points as fractions of tasks completed; even ones kill the whole worker (main process
#: and pool), odd ones one pool child (the worker stays and replaces it).
KILL_AT = (0.1, 0.25, 0.4, 0.55, 0.7, 0.85)


def _children(pid: int) -> list[int]:
    try:
        return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def run_with_kills(rel: RelEnv, n: int, seed: int) -> dict[str, object]:
    rng = random.Random(seed)
    rel.start_worker()
    started = time.monotonic()
    rel.send("rel.flow", [(rel.run, i, round(rng.uniform(0.1, 3.0), 2)) for i in range(n)])
    whole, child = 0, 0
    for k, fraction in enumerate(KILL_AT):
        if rel.wait_for("effects", int(n * fraction), timeout=900) >= n:
            break
        worker = rel.worker
        assert worker is not None
        if k % 2 == 0:
            worker.kill()  # SIGKILL main process and pool children: a crash
            whole += 1
            time.sleep(rng.uniform(0.5, 2.0))  # retries keep expiring into the queue meanwhile
            rel.start_worker()
        else:
            children = _children(worker.pid)
            if children:
                os.kill(rng.choice(children), signal.SIGKILL)
                child += 1
    done = rel.wait_for("effects", n, timeout=1200)
    elapsed = time.monotonic() - started
    effects = rel.hash_ints("effects")
    runs = rel.hash_ints("runs")
    return {
        "done": done,
        "elapsed": elapsed,
        "lost": n - len(effects),
        "duplicates": sum(v - 1 for v in effects.values()),
        "executions": sum(runs.values()),
        "early": sum(rel.hash_ints("early").values()),
        "whole": whole,
        "child": child,
    }


@pytest.mark.parametrize("idempotent", [False, True], ids=["plain", "idempotency_helper"])
def test_worker_killed_repeatedly_loses_no_task(
    node: RabbitNode,
    make_rel: Callable[..., RelEnv],
    report: Callable[..., None],
    idempotent: bool,
) -> None:
    rel = make_rel(url_of(node), idempotent=idempotent, DLX_REL_WORK_MS="1", DLX_REL_LEASE="3")
    result = run_with_kills(rel, N, seed=9 + idempotent)
    helper = "with idempotency helper" if idempotent else "no idempotency helper"
    report(
        f"1. worker kill -9 ×{result['whole']} (+{result['child']} pool child), classic delay queues, {helper}",
        N, result["lost"], result["duplicates"], result["elapsed"],
        f"{result['executions']} executions for {2 * N} needed; early arrivals {result['early']}",
    )  # fmt: skip
    assert result["lost"] == 0, f"{result['lost']} of {N} tasks never did their side effect; see {rel.logdir}"
    assert result["early"] == 0
    # Nothing stuck anywhere once every task completed.
    time.sleep(4)
    counts = queue_counts(
        rel.first_url,
        [*rel.delay_queue_names, rel.topology.parking_queue.name, rel.queue],
    )
    assert sum(ready for ready, _ in counts.values()) == 0, {k: v for k, v in counts.items() if v[0]}
    if idempotent:
        assert result["duplicates"] == 0, "the idempotency helper let a side effect happen twice"
