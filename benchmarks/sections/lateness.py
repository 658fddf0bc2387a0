"""Section 4: delivery lateness (arrival - due) of retries with random delays."""

from __future__ import annotations

import random
import time
from typing import Any

from ..harness import (
    Deployment,
    Mode,
)


def section_lateness(dep: Deployment, mode: Mode, status: dict[str, str], seed: int = 42) -> dict[str, Any]:
    """Section 4: random delays, paced so the work queue never builds a backlog."""
    key = dep.key()
    rng = random.Random(seed)
    delays = [rng.uniform(0.1, mode.lateness_max_delay) for _ in range(mode.lateness_n)]
    task = dep.app.tasks["bench.retry_once"]
    sent = 0
    t0 = time.monotonic()
    interval = 1 / mode.lateness_rate
    throttled = 0.0
    with dep.app.producer_or_acquire() as producer:
        next_at = time.monotonic()
        for delay in delays:
            if time.monotonic() - t0 > mode.lateness_send_cap:
                break
            if sent % 25 == 0:
                while dep.ready() > 20 and time.monotonic() - t0 < mode.lateness_send_cap:
                    time.sleep(0.2)  # the worker is behind: wait, so lateness is not queueing
                    throttled += 0.2
                    next_at = time.monotonic()
                status[dep.contender] = f"sent {sent}"
            task.apply_async((key, delay), producer=producer)
            sent += 1
            next_at += interval
            pause = next_at - time.monotonic()
            if pause > 0:
                time.sleep(pause)
    send_seconds = time.monotonic() - t0
    sub_second = sum(1 for d in delays[:sent] if d < 1)
    expected = sent - (sub_second if dep.contender == "native" else 0)
    deadline = time.monotonic() + mode.lateness_max_delay + 15
    while time.monotonic() < deadline:
        n = dep.store.llen(f"{key}:arrivals")
        status[dep.contender] = f"{n}/{sent} back"
        if n >= sent or (n >= expected and time.monotonic() > deadline - 12):
            break
        time.sleep(0.25)
    arrivals = dep.arrivals(key)
    late = [(a["t"] - a["due"]) * 1000 for a in arrivals]
    # celery_dlx: dead-letter hops of each retry's route (one per 1-digit of its delay in units)
    hops = [dep.topology.settings.levels.plan(a["delay"]).hops for a in arrivals] if dep.topology is not None else None
    return {
        "hops": hops,
        "sent": sent, "planned": mode.lateness_n, "send_seconds": send_seconds, "throttled_seconds": throttled,
        "arrived": len(arrivals), "missing": sent - len(arrivals), "lateness_ms": late, "sub_second_sent": sub_second,
    }  # fmt: skip
