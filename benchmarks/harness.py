"""The benchmark harness: modes, progress, cleanup, the broker seen from outside, and one
contender's deployment (app, work queue, topology, worker)."""

from __future__ import annotations

import json
import math
import os
import shlex
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
import redis
from kombu import Connection

from celery_dlx import Settings, Topology
from celery_dlx.testing.rabbitnode import RabbitNode
from celery_dlx.testing.worker import WorkerProcess, queue_counts

from .bench_app import BROKER_URL, REDIS_URL, make_app, work_queue

ROOT = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).parent / "results"
NATIVE_LEVELS = 28
NATIVE_QUEUES = [f"celery_delayed_{i}" for i in range(NATIVE_LEVELS)]
LONG_DELAY = 3600.0
LABELS = {
    "countdown": "Celery countdown",
    "countdown_confirm": "Celery countdown, confirm_publish",
    "native": "Celery native delayed delivery (quorum)",
    "dlx_classic": "celery_dlx classic",
    "dlx_quorum": "celery_dlx quorum",
}


@dataclass
class Mode:
    name: str
    warmup_note: str
    steps: list[int]
    step_caps: dict[str, list[float]]
    solo_n: int
    solo_cap: float
    publish_n: int
    publish_cap: float
    publish_rounds: int
    lateness_n: int
    lateness_max_delay: float
    lateness_send_cap: float
    lateness_rate: float
    timeout_ms: int
    timeout_observe: float
    timeout_tasks: int
    million: int
    noop_n: int
    settle: float = 2.0


def full_mode() -> Mode:
    return Mode(
        name="full",
        warmup_note="4 × 1 000 publish-throughput tasks + up to 10 000 lateness tasks",
        steps=[1_000, 10_000, 100_000],
        step_caps={"countdown": [150, 150, 150], "dlx_classic": [60, 120, 600], "default": [60, 120, 200]},
        solo_n=5_000,
        solo_cap=90,
        publish_n=1_000,
        publish_cap=60,
        publish_rounds=4,
        lateness_n=10_000,
        lateness_max_delay=30.0,
        lateness_send_cap=100,
        lateness_rate=120,
        timeout_ms=60_000,
        timeout_observe=180,
        timeout_tasks=20,
        million=1_000_000,
        noop_n=10_000,
    )


def quick_mode() -> Mode:
    return Mode(
        name="quick",
        warmup_note="2 × 150 publish-throughput tasks + 150 lateness tasks: shorter than the ~1 000-retry warm-up, so growth here includes Celery's own",
        steps=[300, 800],
        step_caps={"countdown": [5, 5], "default": [6, 10]},
        solo_n=100,
        solo_cap=4,
        publish_n=100,
        publish_cap=10,
        publish_rounds=2,
        lateness_n=120,
        lateness_max_delay=2.0,
        lateness_send_cap=5,
        lateness_rate=80,
        timeout_ms=10_000,
        timeout_observe=30,
        timeout_tasks=5,
        million=10_000,
        noop_n=500,
        settle=0.5,
    )


# --------------------------------------------------------------------------------------------
# progress, cleanup, broker observation


class Progress:
    """A one-line text progress bar on stderr: overall stages plus what the current one does."""

    def __init__(self, total: int) -> None:
        self.total, self.done, self.stage, self.t0 = total, 0, "", time.monotonic()
        self.tty = sys.stderr.isatty()

    def start(self, stage: str) -> None:
        self.stage = stage
        self.show("")

    def finish(self) -> None:
        self.done += 1
        self.show("done")
        if not self.tty:
            return
        sys.stderr.write("\n")

    def show(self, detail: str) -> None:
        width = 30
        filled = int(width * self.done / max(self.total, 1))
        elapsed = time.monotonic() - self.t0
        line = f"[{'#' * filled}{'.' * (width - filled)}] {self.done}/{self.total} {elapsed:5.0f}s {self.stage}: {detail}"
        if self.tty:
            sys.stderr.write("\r" + line[:160].ljust(160))
        elif detail in ("", "done"):
            sys.stderr.write(line + "\n")
        sys.stderr.flush()


class Cleanup:
    """Undo actions run last-in first-out, whatever happens; each failure is reported, not raised."""

    def __init__(self) -> None:
        self.actions: list[tuple[str, Callable[[], None]]] = []

    def push(self, what: str, action: Callable[[], None]) -> None:
        self.actions.append((what, action))

    def pop(self, what: str) -> None:
        for i in range(len(self.actions) - 1, -1, -1):
            if self.actions[i][0] == what:
                name, action = self.actions.pop(i)
                self._run(name, action)
                return

    def run_all(self) -> None:
        while self.actions:
            name, action = self.actions.pop()
            self._run(name, action)

    @staticmethod
    def _run(name: str, action: Callable[[], None]) -> None:
        try:
            action()
        except BaseException as error:
            print(f"\ncleanup of {name} failed: {error!r}", file=sys.stderr)


#: The run's own virtual host on the shared broker (set by main): everything a run declares lives
#: there, so native delayed delivery's global ``celery_delayed_*`` names do not touch anyone
#: else's, and deleting the vhost at the end removes every queue, exchange and message.
VHOST = "/"

#: A callback showing one line of progress.
Show = Callable[[str], None]


def broker_url(vhost: str) -> str:
    host = BROKER_URL.split("://", 1)[1].split("/", 1)[0]
    return f"{BROKER_URL.split('://', 1)[0]}://{host}/{vhost}" if vhost != "/" else BROKER_URL


def rabbitmqctl(*args: str, node: RabbitNode | None = None) -> str:
    if node is not None:
        return node.ctl("-q", *args)
    command = shlex.split(os.environ.get("DLX_RABBITMQCTL", "rabbitmqctl"))
    return subprocess.run([*command, "-q", *args], check=True, capture_output=True, text=True, timeout=120).stdout


def list_queues(prefix: str | None, *columns: str, node: RabbitNode | None = None) -> dict[str, list[int]]:
    """``{queue: [column values]}`` from rabbitmqctl, the broker's own view."""
    rows: dict[str, list[int]] = {}
    vhost = ["-p", VHOST] if node is None else []
    for line in rabbitmqctl("list_queues", *vhost, "name", *columns, node=node).splitlines():
        parts = line.split()
        if len(parts) != len(columns) + 1 or parts[0] == "name":
            continue
        if prefix is None or parts[0].startswith(prefix):
            try:
                rows[parts[0]] = [int(x) for x in parts[1:]]
            except ValueError:
                continue
    return rows


def unacked(prefix: str, node: RabbitNode | None = None) -> int:
    rows = list_queues(None, "messages_unacknowledged", node=node)
    return sum(v[0] for name, v in rows.items() if name.startswith(prefix))


def worker_memory(worker: WorkerProcess) -> tuple[int, int]:
    """(RSS, USS) in bytes of the worker and all its descendants (prefork children)."""
    rss = uss = 0
    try:
        parent = psutil.Process(worker.pid)
        for proc in [parent, *parent.children(recursive=True)]:
            try:
                info = proc.memory_full_info()
                rss += info.rss
                uss += info.uss
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                pass
    except psutil.NoSuchProcess:
        pass
    return rss, uss


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))] if ordered else math.nan


def free_port() -> int:
    for _ in range(50):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port + 20000 < 65536:
            with socket.socket() as s:
                try:
                    s.bind(("127.0.0.1", port + 20000))
                except OSError:
                    continue
            return port
    raise RuntimeError("no free port pair found")


# --------------------------------------------------------------------------------------------
# one deployment: a contender's app, work queue, topology and worker


class Deployment:
    def __init__(
        self,
        contender: str,
        store: redis.Redis,
        cleanup: Cleanup,
        rawdir: Path,
        *,
        pool: str = "prefork",
        concurrency: int = 2,
        broker_url: str | None = None,
        confirm: bool = False,
        node: RabbitNode | None = None,
        loglevel: str = "WARNING",
        env: Mapping[str, str] | None = None,
    ) -> None:
        """``env``: more ``DLX_BENCH_*`` settings for the app (see :mod:`benchmarks.bench_app`)."""
        broker_url = broker_url or globals()["broker_url"](VHOST)
        self.contender = contender
        self.prefix = f"dlxbench.{contender}.{uuid.uuid4().hex[:6]}"
        self.env = {
            "DLX_BENCH_CONTENDER": contender,
            "DLX_BENCH_PREFIX": self.prefix,
            "DLX_BENCH_BROKER": broker_url,
            "DLX_BENCH_REDIS": REDIS_URL,
            "DLX_BENCH_CONFIRM": "1" if confirm else "0",
            **(env or {}),
        }
        self.broker_url = broker_url
        self.node = node
        self.app = make_app(self.env)
        self.store = store
        self.work = work_queue(self.prefix)
        self.keys: list[str] = []
        self.cleanup = cleanup
        self.logfile = rawdir / f"worker-{self.prefix}-{pool}.log"
        self.worker = WorkerProcess(
            "benchmarks.bench_app:app", [self.work], broker_url, pool=pool, concurrency=concurrency,
            env=self.env, cwd=ROOT, logfile=self.logfile, extra_args=["-l", loglevel],
        )  # fmt: skip
        self.topology = Topology(Settings.from_conf(self.app.conf)) if contender.startswith("dlx_") else None
        self.native_base = 0

    def __enter__(self) -> Deployment:
        self.cleanup.push(self.prefix, self._teardown)
        return self.start()

    def start(self) -> Deployment:
        self.worker.start(timeout=90)
        self.mark()
        return self

    def mark(self) -> None:
        """Take what the shared native delay queues hold now as zero for :meth:`broker_pending`."""
        if self.contender == "native":
            self.native_base = self.native_pending_raw()

    def __exit__(self, *exc: object) -> None:
        self.cleanup.pop(self.prefix)

    def _teardown(self) -> None:
        try:
            self.worker.kill()  # its queues and messages are deleted next: no shutdown to wait for
        finally:
            with Connection(self.broker_url) as conn:
                if self.topology is not None:
                    self.topology.delete(conn)
                with conn.channel() as channel:
                    channel.queue_delete(self.work)
                    channel.exchange_delete(self.work)
            for key in self.keys:
                self.store.delete(f"{key}:runs", f"{key}:arrivals", f"{key}:done")

    def key(self) -> str:
        key = f"{self.prefix}:{uuid.uuid4().hex[:6]}"
        self.keys.append(key)
        return key

    # observation ---------------------------------------------------------------------------

    def ready(self) -> int:
        return queue_counts(self.broker_url, [self.work])[self.work][0]

    def native_pending_raw(self) -> int:
        return sum(r for r, _ in queue_counts(self.broker_url, NATIVE_QUEUES).values())


    def broker_pending(self) -> int:
        """Retries waiting in the broker's delay queues (0 for countdown: they wait in the worker)."""
        if self.topology is not None:
            return sum(r for r, _ in queue_counts(self.broker_url, [q.name for q in self.topology.level_queues]).values())
        if self.contender == "native":
            return self.native_pending_raw() - self.native_base
        return 0

    def runs(self, key: str) -> int:
        return int(self.store.get(f"{key}:runs") or 0)

    def arrivals(self, key: str) -> list[dict[str, float]]:
        return [json.loads(x) for x in self.store.lrange(f"{key}:arrivals", 0, -1)]

    # load ------------------------------------------------------------------------------------

    def send_retry_tasks(self, key: str, delays: list[float], stop: threading.Event | None = None) -> int:
        task = self.app.tasks["bench.retry_once"]
        sent = 0
        with self.app.producer_or_acquire() as producer:
            for delay in delays:
                if stop is not None and stop.is_set():
                    break
                task.apply_async((key, delay), producer=producer)
                sent += 1
        return sent


def in_parallel(jobs: dict[str, Callable[[], Any]], show: Callable[[], None]) -> dict[str, Any]:
    """Run ``jobs`` in threads, calling ``show`` while they run; re-raise the first error."""
    results: dict[str, Any] = {}
    errors: list[BaseException] = []

    def run(name: str, job: Callable[[], Any]) -> None:
        try:
            results[name] = job()
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=run, args=item, daemon=True) for item in jobs.items()]
    for t in threads:
        t.start()
    while any(t.is_alive() for t in threads):
        show()
        time.sleep(0.5)
    if errors:
        raise errors[0]
    return results


def start_all(deps: list[Deployment]) -> None:
    """Start the workers side by side (each registers its own cleanup first)."""
    for dep in deps:
        dep.cleanup.push(dep.prefix, dep._teardown)
    in_parallel({dep.prefix: dep.start for dep in deps}, lambda: None)
