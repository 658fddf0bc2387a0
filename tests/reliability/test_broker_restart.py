"""Scenario 2: 10 000 retries wait in the delay queues while the broker node is stopped and
started again.  Every one arrives, none before it was due (classic durable and quorum)."""

from __future__ import annotations

import os
import random
import time
from collections.abc import Callable

import pytest

from celery_dlx.testing.rabbitnode import RabbitNode
from celery_dlx.testing.worker import queue_counts, wait_until

from .conftest import FULL_ONLY, RelEnv, preload_retries, url_of

pytestmark = pytest.mark.reliability

N = int(os.environ.get("DLX_RELIABILITY_N", "10000"))
#: The quorum case runs in the full suite, and where DLX_RELIABILITY_QUORUM_RESTART=1 asks for it
#: (``make test-rabbitmq4``: quorum delay queues on RabbitMQ 4 across a broker restart).
QUORUM_RESTART = os.environ.get("DLX_RELIABILITY_QUORUM_RESTART", "").lower() in ("1", "true", "yes")


@pytest.mark.parametrize("queue_type", ["classic", pytest.param("quorum", marks=[] if QUORUM_RESTART else FULL_ONLY)])
def test_broker_restart_keeps_every_pending_retry_and_none_arrives_early(
    node: RabbitNode,
    make_rel: Callable[..., RelEnv],
    report: Callable[..., None],
    queue_type: str,
) -> None:
    rel = make_rel(url_of(node), queue_type=queue_type, work_queue_type=queue_type)
    rng = random.Random(2)
    started = time.monotonic()
    # Due 45-75 s after the start, whatever the publish rate (at least 15 s after each
    # publication): after the publish phase and the restart, so all are pending at the stop;
    # spread over 30 s so they come out of every level.
    target = time.time() + 45
    publish_s = preload_retries(rel, N, lambda i: round(max(15.0, target - time.time()) + rng.uniform(0, 30), 3))
    assert wait_until(lambda: rel.pending() == N, 60, interval=0.5), f"{rel.pending()} of {N} pending after publishing"
    rel.start_worker()
    pending_at_stop = rel.pending()
    stop_started = time.monotonic()
    node.stop()
    node.start()
    restart_s = time.monotonic() - stop_started
    arrived_before_restart = rel.count("arrived")
    assert wait_until(lambda: rel.pending() + rel.count("arrived") == N, 60, interval=0.5), (
        f"only {rel.pending()} of {N} pending after the restart"
    )
    done = rel.wait_for("effects", N, timeout=300, stall=120)
    elapsed = time.monotonic() - started
    asked, arrived = rel.hash_floats("asked"), rel.hash_floats("arrived")
    # Independent of celery_dlx's header: arrival vs the moment the retry was asked for + delay.
    early_vs_request = sum(1 for i, due in asked.items() if i in arrived and arrived[i] < due)
    early_vs_header = sum(rel.hash_ints("early").values())
    effects = rel.hash_ints("effects")
    lost = N - len(effects)
    duplicates = sum(v - 1 for v in effects.values())
    report(
        f"2. broker node stop/start, {queue_type} delay queues ({queue_type} work queue)",
        N, lost, duplicates, elapsed,
        f"{pending_at_stop} pending at the stop, {arrived_before_restart} arrived before the restart; publish {publish_s:.0f} s, restart {restart_s:.0f} s; "
        f"early {early_vs_request} (request) / {early_vs_header} (dlx_due)",
    )  # fmt: skip
    assert pending_at_stop == N
    assert done == N and lost == 0, f"{lost} of {N} retries never arrived; see {rel.logdir}"
    assert early_vs_request == 0 and early_vs_header == 0
    counts = queue_counts(
        rel.first_url,
        [*rel.delay_queue_names, rel.topology.parking_queue.name, rel.queue],
    )
    assert sum(ready for ready, _ in counts.values()) == 0, {k: v for k, v in counts.items() if v[0]}
