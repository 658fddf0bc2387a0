"""Scenario 3: a 3-node RabbitMQ cluster on loopback, quorum delay and work queues; the node the
worker and publisher talk to first is stopped while 10 000 retries are pending and flowing.
Worker and publisher know all three URLs (``broker_url="amqp://n1;amqp://n2;amqp://n3"``) and
fail over.  Nothing is lost."""

from __future__ import annotations

import os
import random
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from celery_dlx.testing.rabbitnode import RabbitNode
from celery_dlx.testing.worker import queue_counts

from .conftest import (
    FULL_ONLY,
    PORT_BASE,
    RelEnv,
    add_user,
    new_node,
    preload_retries,
    url_of,
)

pytestmark = [pytest.mark.reliability, FULL_ONLY]

N = int(os.environ.get("DLX_RELIABILITY_N", "10000"))
#: Fresh tasks sent just before the stop: their retries are published by the worker during
#: the failover.
FRESH = max(1, N // 5)


@pytest.fixture(scope="module")
def cluster(rabbit_installed: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[RabbitNode]]:
    nodes = [
        new_node(
            f"dlxrel{PORT_BASE + 10 + k}",
            PORT_BASE + 10 + k,
            Path(tmp_path_factory.mktemp(f"dlxrelc{k}")),
        )
        for k in range(3)
    ]
    try:
        for n in nodes:
            n.start()
        for n in nodes[1:]:
            n.join(nodes[0])
        add_user(nodes[0])  # users are cluster-wide
        status = nodes[0].ctl("cluster_status")
        assert all(n.nodename in status for n in nodes), status
        yield nodes
    finally:
        for n in nodes:
            n.destroy()


def test_cluster_node_stopped_while_retries_pending_and_flowing_loses_none(
    cluster: list[RabbitNode],
    make_rel: Callable[..., RelEnv],
    report: Callable[..., None],
) -> None:
    urls = ";".join(url_of(n) for n in cluster)
    rel = make_rel(urls, queue_type="quorum", work_queue_type="quorum")
    rng = random.Random(3)
    started = time.monotonic()
    # Pending: due 30-70 s after the start (at least 10 s after each publication, however slow
    # the publishing), so most are still in the delay queues at the stop and keep flowing out
    # of them during and after it.
    target = time.time() + 30
    publish_s = preload_retries(rel, N, lambda i: round(max(10.0, target - time.time()) + rng.uniform(0, 40), 3))
    rel.start_worker()
    # Flowing: fresh tasks that fail once; the worker publishes their retries around the stop.
    rel.send("rel.flow", [(rel.run, N + j, round(rng.uniform(0.5, 10), 2)) for j in range(FRESH)])
    total = N + FRESH
    rel.wait_for("effects", FRESH // 4, timeout=600)
    done_before_stop = rel.count("effects")
    pending_at_stop = rel.pending(url_of(cluster[0]))
    cluster[0].stop()  # the first URL of worker and publisher: leaders move, clients fail over
    stopped_at = time.monotonic()
    done = rel.wait_for("effects", total, timeout=900, stall=180)
    elapsed = time.monotonic() - started
    effects = rel.hash_ints("effects")
    lost = total - len(effects)
    duplicates = sum(v - 1 for v in effects.values())
    early = sum(rel.hash_ints("early").values())
    asked, arrived = rel.hash_floats("asked"), rel.hash_floats("arrived")
    early += sum(1 for i, due in asked.items() if i in arrived and arrived[i] < due)
    report(
        "3. 3-node cluster, quorum delay + work queues, first node stopped (clients fail over)",
        total, lost, duplicates, elapsed,
        f"{N} preloaded + {FRESH} fresh; at the stop {pending_at_stop} in the delay queues, {total - done_before_stop} "
        f"not done; "
        f"publish {publish_s:.0f} s; rest done {time.monotonic() - stopped_at:.0f} s after it; early {early}",
    )  # fmt: skip
    stuck = _stuck_in_dead_lettering(cluster[1], rel)
    if stuck:
        report(
            "3. … of which held by the broker: dead-lettered, not forwarded (quorum at-least-once DLX)",
            total, lost - sum(stuck.values()), 0, elapsed, ", ".join(f"{q}: {c}" for q, c in stuck.items()),
        )  # fmt: skip
    lost_outright = lost - sum(stuck.values())
    assert lost_outright == 0, f"{lost_outright} of {total} neither arrived nor are in any queue; see {rel.logdir}"
    if stuck:
        pytest.xfail(
            f"{sum(stuck.values())} retries held by RabbitMQ in at-least-once dead-letter state and never forwarded "
            f"after the leader change ({stuck}); RabbitMQ issue, see docs/reliability.md"
        )
    assert done == total
    assert early == 0
    assert pending_at_stop > 0, "nothing was pending at the stop: the scenario did not test what it should"
    time.sleep(5)
    live = url_of(cluster[1])
    counts = queue_counts(live, [*rel.delay_queue_names, rel.topology.parking_queue.name, rel.queue])
    assert sum(ready for ready, _ in counts.values()) == 0, {k: v for k, v in counts.items() if v[0]}


def _stuck_in_dead_lettering(live: RabbitNode, rel: RelEnv) -> dict[str, int]:
    """Delay queues whose broker count exceeds ready + unacked: messages a quorum queue keeps in
    its at-least-once dead-letter state (discarded, waiting to be forwarded)."""
    names = set(rel.delay_queue_names) | {rel.topology.parking_queue.name, rel.queue}
    out = live.ctl(
        "list_queues",
        "-q",
        "--no-table-headers",
        "name",
        "messages",
        "messages_ready",
        "messages_unacknowledged",
    )
    stuck: dict[str, int] = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 4 and parts[0] in names and parts[1].isdigit():
            held = int(parts[1]) - int(parts[2]) - int(parts[3])
            if held > 0:
                stuck[parts[0]] = held
    return stuck
