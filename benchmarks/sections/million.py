"""Section 7: a no-op task's throughput with 0 and with 1 000 000 retries pending."""

from __future__ import annotations

import json
import re
import time
import uuid
from pathlib import Path
from typing import Any

import redis
from kombu import Connection

from .. import harness
from ..harness import (
    LONG_DELAY,
    Cleanup,
    Deployment,
    Mode,
    Progress,
    Show,
    rabbitmqctl,
    unacked,
)
from .growth import delay_queue_memory


def fill_delay_queue(dep: Deployment, count: int, progress: Progress) -> float:
    """Publish ``count`` real retry messages straight into the celery_dlx delay topology."""
    assert dep.topology is not None
    route = dep.topology.settings.levels.plan(LONG_DELAY)
    exchange = dep.topology.entry_exchange(route).name
    task = dep.app.tasks["bench.retry_once"]
    with Connection(dep.broker_url) as conn:
        dep.topology.declare(conn, [dep.app.amqp.queues[dep.work]])
        channel = conn.default_channel
        t0 = time.monotonic()
        headers, properties, body, _ = dep.app.amqp.as_task_v2(
            uuid.uuid4().hex, task.name, ("filler", LONG_DELAY), {"due": time.time() + LONG_DELAY}, retries=1
        )
        payload = json.dumps(body)
        for i in range(count):
            message = channel.prepare_message(
                payload, content_type="application/json", content_encoding="utf-8",
                headers={**headers, "id": f"{i:032x}", "dlx_queue": dep.work, "dlx_due": time.time() + LONG_DELAY},
                properties={**properties, "correlation_id": f"{i:032x}", "delivery_mode": 2},
            )  # fmt: skip
            channel.basic_publish(message, exchange=exchange, routing_key=route.routing_key)
            if i % 20000 == 0:
                progress.show(f"publishing retry messages into the delay topology: {i:,}/{count:,}")
        return time.monotonic() - t0


def noop_rate(dep: Deployment, n: int, show: Show) -> float:
    key = dep.key()
    task = dep.app.tasks["bench.noop"]
    t0 = time.monotonic()
    with dep.app.producer_or_acquire() as producer:
        for _ in range(n):
            task.apply_async((key,), producer=producer)
    done = 0
    while time.monotonic() - t0 < 300:
        done = int(dep.store.get(f"{key}:done") or 0)
        show(f"{done}/{n} no-op tasks")
        if done >= n:
            break
        time.sleep(0.05)
    return done / (time.monotonic() - t0)


def section_million(store: redis.Redis, cleanup: Cleanup, rawdir: Path, mode: Mode, progress: Progress) -> dict[str, Any]:
    """Section 7 (and the 1 M point of section 6): no-op throughput with 0 and with M pending."""
    with Deployment("dlx_classic", store, cleanup, rawdir) as dep:
        noop_rate(dep, min(1000, mode.noop_n), lambda d: progress.show(f"warm-up: {d}"))
        before = noop_rate(dep, mode.noop_n, lambda d: progress.show(f"0 pending: {d}"))
        empty = delay_queue_memory(dep)
        # Keep a million messages out of the shared broker's RAM: lazy mode pages them to disk
        # at once (what classic queues v2 do by default from RabbitMQ 3.12).
        rabbitmqctl("set_policy", "-p", harness.VHOST, "--apply-to", "queues", "dlxbench-lazy",
                    f"^{re.escape(dep.prefix)}\\.delay\\.", json.dumps({"queue-mode": "lazy"}))  # fmt: skip
        fill_seconds = fill_delay_queue(dep, mode.million, progress)
        deadline = time.monotonic() + 120
        while dep.broker_pending() < mode.million and time.monotonic() < deadline:
            time.sleep(1)
        pending = dep.broker_pending()
        during = noop_rate(dep, mode.noop_n, lambda d: progress.show(f"{pending:,} pending: {d}"))
        queues = delay_queue_memory(dep)
        with Connection(dep.broker_url) as conn, conn.channel() as channel:
            for q in dep.topology.level_queues:  # type: ignore[union-attr]
                channel.queue_purge(q.name)
        after = noop_rate(dep, mode.noop_n, lambda d: progress.show(f"0 pending again: {d}"))
        return {"n": mode.noop_n, "pending": pending, "fill_seconds": fill_seconds, "before": before,
                "during": during, "after": after, "queue_memory": queues, "queue_memory_empty": empty, "worker_unacked": unacked(dep.prefix)}  # fmt: skip
