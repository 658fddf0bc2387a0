"""Sections 1, 2 and 6: worker memory and unacked while pending retries grow, time to absorb
failing tasks, broker memory per pending message."""

from __future__ import annotations

import threading
import time
from dataclasses import asdict, dataclass
from typing import Any

from ..harness import (
    LONG_DELAY,
    NATIVE_QUEUES,
    Deployment,
    Mode,
    Progress,
    Show,
    list_queues,
    unacked,
    worker_memory,
)


@dataclass
class Step:
    target: int
    reached: int
    seconds: float
    finished: bool
    rss: int
    uss: int
    unacked: int
    broker_pending: int
    cap: float




def absorb(dep: Deployment, key: str, n_new: int, total: int, cap: float, show: Show) -> tuple[bool, float, int]:
    """Send ``n_new`` tasks that retry after an hour; wait until ``total`` retries are pending.

    Returns (finished, seconds, pending retries reached).  Pending means: in the delay queues
    (celery_dlx, native), or taken from the work queue and held by the worker (countdown).
    """
    stop = threading.Event()
    sender = threading.Thread(target=dep.send_retry_tasks, args=(key, [LONG_DELAY] * n_new, stop), daemon=True)
    t0 = time.monotonic()
    sender.start()
    quiet = 0
    finished = False
    try:
        while time.monotonic() - t0 < cap:
            time.sleep(0.5)
            runs = dep.runs(key)
            if dep.contender == "countdown":
                ready = dep.ready()
                quiet = quiet + 1 if (not sender.is_alive() and runs >= total and ready == 0) else 0
                show(f"{runs}/{total} run, {ready} waiting in the work queue")
                if quiet >= 2:
                    finished = True
                    break
            else:
                pending = dep.broker_pending()
                show(f"{pending}/{total} pending in the broker")
                if pending >= total and not sender.is_alive():
                    finished = True
                    break
    finally:
        stop.set()
        sender.join(60)
    seconds = time.monotonic() - t0
    if finished:
        seconds -= 0.5 if dep.contender != "countdown" else 1.0  # the confirming poll(s)
    reached = unacked(dep.prefix) if dep.contender == "countdown" else dep.broker_pending()
    return finished, seconds, reached


def section_growth(dep: Deployment, mode: Mode, progress: Progress) -> dict[str, Any]:
    """Sections 1 and 2 (prefork): memory and unacked as pending retries grow."""
    key = dep.key()
    time.sleep(mode.settle)
    dep.mark()
    empty = delay_queue_memory(dep)
    base_rss, base_uss = worker_memory(dep.worker)
    caps = mode.step_caps.get(dep.contender, mode.step_caps["default"])
    steps: list[Step] = []
    previous = 0
    for target, cap in zip(mode.steps, caps):
        finished, seconds, reached = absorb(
            dep, key, target - previous, target, cap, lambda d, t=target: progress.show(f"step {t:,}: {d}")
        )
        time.sleep(mode.settle / 2)
        rss, uss = worker_memory(dep.worker)
        steps.append(Step(target, reached, seconds, finished, rss, uss, unacked(dep.prefix), dep.broker_pending(), cap))
        if not finished:
            break
        previous = target
    full: dict[str, list[int]] = {}
    deadline = time.monotonic() + 20  # quorum queues' counts in list_queues lag by seconds
    while time.monotonic() < deadline:
        full = delay_queue_memory(dep)
        if sum(v[0] for v in full.values()) >= steps[-1].broker_pending:
            break
        time.sleep(1)
    return {"base_rss": base_rss, "base_uss": base_uss, "steps": [asdict(s) for s in steps],
            "queue_memory_empty": empty, "queue_memory": full}  # fmt: skip


def delay_queue_memory(dep: Deployment) -> dict[str, list[int]]:
    """``{delay queue: [messages, memory bytes]}`` (rabbitmqctl) for the contender's delay queues."""
    if dep.topology is not None:
        names = {q.name for q in dep.topology.level_queues}
    elif dep.contender == "native":
        names = set(NATIVE_QUEUES)
    else:
        return {}
    return {k: v for k, v in list_queues(None, "messages", "memory").items() if k in names}
