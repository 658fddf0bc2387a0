"""The run as a PNG: retries waiting in the broker and worker memory over time (matplotlib, Agg)."""

from __future__ import annotations

from collections.abc import Sequence
from itertools import pairwise
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # after use(): the backend must be chosen first

from .progress import MIB, Sample


def draw(samples: Sequence[Sample], path: Path, title: str) -> Path:
    """Two panels sharing the time axis: retries waiting in the delay queues (and tasks parked,
    API refusals per second), and each worker's resident memory."""
    path.parent.mkdir(parents=True, exist_ok=True)
    t = [s.t for s in samples]
    figure, (top, bottom) = plt.subplots(2, 1, sharex=True, figsize=(10, 6.5))
    top.plot(t, [s.retries_waiting for s in samples], label="retries waiting in delay queues")
    top.plot(t, [s.parked for s in samples], label="parked")
    refusals = [0, *(b.rate_limited - a.rate_limited for a, b in pairwise(samples))]
    top.bar(t, refusals, width=0.8, alpha=0.35, color="tab:red", label="rate-limited answers per sample")
    top.set_ylabel("messages / answers")
    top.legend(loc="upper right")
    top.set_title(title)
    for name in samples[0].rss if samples else ():
        bottom.plot(t, [s.rss.get(name, 0) / MIB for s in samples], label=f"{name} worker")
    bottom.set_ylabel("RSS (MiB)")
    bottom.set_xlabel("seconds since the first task was sent")
    bottom.set_ylim(bottom=0)
    bottom.legend(loc="lower right")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path
