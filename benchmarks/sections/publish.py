"""Section 3: retry publish throughput."""

from __future__ import annotations

import statistics
import time
from typing import Any

from ..harness import (
    LABELS,
    Deployment,
    Mode,
    Progress,
)


def section_publish(dep: Deployment, n: int, cap: float) -> dict[str, Any]:
    """Section 3: tasks that retry at once; throughput through the worker, 2 runs + 1 retry each."""
    key = dep.key()
    delay = 1.0 if dep.contender == "native" else 0.01
    t0 = time.monotonic()
    w0 = time.time()
    dep.send_retry_tasks(key, [delay] * n)
    while time.monotonic() - t0 < cap and dep.store.llen(f"{key}:arrivals") < n:
        time.sleep(0.05)
    arrivals = dep.arrivals(key)
    last = max((a["t"] for a in arrivals), default=time.time())
    seconds = max(last - w0 - delay, 1e-6)
    return {"n": n, "delay": delay, "arrived": len(arrivals), "seconds": seconds, "rate": len(arrivals) / seconds}


def section_publish_rounds(deps: dict[str, Deployment], mode: Mode, progress: Progress) -> dict[str, Any]:
    """Section 3, interleaved: every contender once per round, in a rotating order, so load from
    elsewhere on the machine hits all of them alike; the median round counts."""
    names = list(deps)
    rounds: dict[str, list[dict[str, Any]]] = {name: [] for name in names}
    for r in range(mode.publish_rounds):
        order = names[r % len(names):] + names[: r % len(names)]
        for name in order:
            progress.show(f"round {r + 1}/{mode.publish_rounds}: {LABELS[name]}")
            rounds[name].append(section_publish(deps[name], mode.publish_n, mode.publish_cap))
    result = {}
    for name, runs in rounds.items():
        rates = [x["rate"] for x in runs]
        result[name] = {"n": mode.publish_n, "rounds": runs, "rate": statistics.median(rates), "min": min(rates),
                        "max": max(rates), "delay": runs[0]["delay"],
                        "complete": all(x["arrived"] >= x["n"] for x in runs)}  # fmt: skip
    return result
