"""Delivery lateness against how busy the machine and the broker were when each retry arrived.

Run (RabbitMQ and Redis on 127.0.0.1, nothing else running)::

    python -m benchmarks.lateness_cpu [--contenders dlx_classic,dlx_quorum] [--out benchmarks/results/lateness_cpu.md]

For each contender: the lateness workload of ``benchmarks.run`` section 4 (10 000 retries,
delays uniform in 0.1–30 s, sent at up to 120/s) on a prefork -c 2 worker, while a sampler
reads every 0.25 s how much CPU the broker's ``beam.smp`` used (in cores) and how busy the
whole machine was (``/proc/stat``).  Each arrival is put in the interval it arrived in, and
the table gives lateness by machine load.  It answers whether the late tail of a contender
follows the broker (a pause of its own) or the machine running out of CPU (queueing
everywhere), which one run of section 4 cannot tell apart.
"""

from __future__ import annotations

import argparse
import bisect
import os
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis

from . import run
from .bench_app import REDIS_URL

INTERVAL = 0.25
#: Rows of the table: label, and the machine-busy share [low, high) of the intervals in it.
BUCKETS = (("all", 0.0, 1.01), ("0% – 50%", 0.0, 0.5), ("50% – 80%", 0.5, 0.8), ("80% – 90%", 0.8, 0.9), ("90% – 100%", 0.9, 1.01))


@dataclass(frozen=True)
class Sample:
    """One interval ending at ``t``: broker CPU in cores, machine busy as a share of all cores."""

    t: float
    broker_cores: float
    machine_busy: float


class CpuSampler(threading.Thread):
    """Samples the broker process's and the machine's CPU use every :data:`INTERVAL` seconds."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        pids = subprocess.run(["pgrep", "-o", "beam.smp"], capture_output=True, text=True, check=True).stdout.split()
        self.pid = int(pids[0])  # the oldest beam.smp: the shared node, not a throwaway one
        self.hz = os.sysconf("SC_CLK_TCK")
        self.samples: list[Sample] = []
        self.stop = threading.Event()

    def _broker_ticks(self) -> int:
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return int(fields[11]) + int(fields[12])  # utime + stime

    @staticmethod
    def _machine() -> tuple[int, int]:
        fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
        return sum(fields), fields[3] + fields[4]  # all, idle + iowait

    def run(self) -> None:
        broker0, (all0, idle0), t0 = self._broker_ticks(), self._machine(), time.monotonic()
        while not self.stop.wait(INTERVAL):
            broker1, (all1, idle1), t1 = self._broker_ticks(), self._machine(), time.monotonic()
            busy = 1 - (idle1 - idle0) / max(1, all1 - all0)
            self.samples.append(Sample(time.time(), (broker1 - broker0) / self.hz / (t1 - t0), busy))
            broker0, all0, idle0, t0 = broker1, all1, idle1, t1


def measure(contender: str, store: redis.Redis, cleanup: run.Cleanup) -> dict[str, Any]:
    """Run section 4 for ``contender`` under the sampler: each arrival's (lateness ms, hops,
    machine busy, broker cores) in ``rows``, and the ``samples``."""
    sampler = CpuSampler()
    with run.Deployment(contender, store, cleanup, Path(tempfile.mkdtemp(prefix="lateness_cpu."))) as dep:
        time.sleep(2)
        sampler.start()
        try:
            section = run.section_lateness(dep, run.full_mode(), {})
            time.sleep(2 * INTERVAL)  # so the last arrivals fall in a sampled interval
        finally:
            sampler.stop.set()
            sampler.join()
        arrivals = dep.arrivals(dep.keys[-1])
    ends = [s.t for s in sampler.samples]
    rows = []
    for arrival, hops in zip(arrivals, section["hops"] or [0] * len(arrivals)):
        i = bisect.bisect_left(ends, arrival["t"])
        if i < len(sampler.samples):
            sample = sampler.samples[i]
            rows.append(((arrival["t"] - arrival["due"]) * 1000, hops, sample.machine_busy, sample.broker_cores))
    return {"rows": rows, "samples": sampler.samples}


def table(contender: str, result: dict[str, Any]) -> list[str]:
    rows = result["rows"]
    samples: list[Sample] = result["samples"]
    lines = [
        f"### {run.LABELS[contender]}",
        "",
        (f"{len(rows):,} arrivals; broker CPU mean {sum(s.broker_cores for s in samples) / len(samples):.2f} cores, "
        f"machine busy mean {sum(s.machine_busy for s in samples) / len(samples):.0%}."),
        "",
        "| machine busy when it arrived | intervals | arrivals | broker CPU (mean) | lateness median | p99 | max | over 100 ms + 25 ms·hops |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for label, low, high in BUCKETS:
        inside = [r for r in rows if low <= r[2] < high]
        intervals = [s for s in samples if low <= s.machine_busy < high]
        late = [r[0] for r in inside]
        over = sum(1 for r in inside if r[0] > 100 + 25 * r[1])
        cpu = sum(s.broker_cores for s in intervals) / len(intervals) if intervals else float("nan")
        lines.append(
            f"| {label} | {len(intervals)} | {len(inside):,} | {cpu:.2f} cores | {run.percentile(late, 0.5):.1f} ms | "
            f"{run.percentile(late, 0.99):.1f} ms | {max(late, default=float('nan')):.1f} ms | {over} |"
        )
    return [*lines, ""]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--contenders", default="dlx_classic,dlx_quorum")
    parser.add_argument("--out", type=Path, help="write the markdown here too")
    args = parser.parse_args(argv)
    contenders = [c for c in args.contenders.split(",") if c]
    unknown = set(contenders) - set(run.CONTENDERS)
    if unknown:
        parser.error(f"unknown contenders {sorted(unknown)}")
    store = redis.Redis.from_url(REDIS_URL)
    cleanup = run.Cleanup()
    run.VHOST = run.create_vhost()
    cleanup.push("vhost", lambda: run.rabbitmqctl("delete_vhost", run.VHOST))
    lines = [
        "# Delivery lateness by machine load",
        "",
        (f"`python -m benchmarks.lateness_cpu --contenders {','.join(contenders)}` on "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, RabbitMQ {run.rabbitmqctl('version').strip()}, "
        f"{os.cpu_count()} cores shared by the broker, the worker (prefork -c 2) and the sender. "
        "Section 4's workload; each arrival is put in the 0.25 s interval it arrived in."),
        "",
    ]
    try:
        for contender in contenders:
            print(f"{contender}: 10 000 retries of 0.1–30 s …", file=sys.stderr, flush=True)
            lines += table(contender, measure(contender, store, cleanup))
    finally:
        cleanup.run_all()
    text = "\n".join(lines)
    print(text)
    if args.out:
        args.out.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
