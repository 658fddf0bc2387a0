"""Celery countdown vs native delayed delivery vs celery_dlx: memory, throughput, lateness, timeouts.

Run: ``python -m benchmarks.run`` (full) or ``python -m benchmarks.run --quick`` (smoke, < 2 min),
with RabbitMQ and Redis on 127.0.0.1 (rabbitmqctl on PATH, or DLX_RABBITMQCTL set) and the
RabbitMQ server installed locally for the throwaway node of section 5.  The full mode writes
``benchmarks/results/benchmark.md`` and ``benchmark.png``; ``--quick`` writes to
``benchmarks/results/raw/quick/`` unless ``--out`` says otherwise; raw JSON and worker logs go to
``<out>/raw/`` (git-ignored under benchmarks/results/).

Measured runtime on the 2-core development machine (RabbitMQ 3.10.8, shared with other test runs):
full mode 32.5 min (1 950 s), quick mode 1.5 min (89 s); each results file states its own run's.
Sections can be left out with ``--skip`` and contenders chosen with ``--contenders``.

Contenders, each a real ``celery worker`` subprocess running :mod:`benchmarks.bench_app`:

- ``countdown``: Celery's ``self.retry(countdown=…)``; the worker holds the retry unacked;
- ``native``: the same call with Celery's native delayed delivery (quorum work queue, topic
  exchange, ``celery_delayed_*`` quorum queues declared by the worker's bootstep);
- ``dlx_classic`` / ``dlx_quorum``: :class:`celery_dlx.DLXTask` with classic / quorum delay queues.

Sections (numbers as in the results table):

1. worker RSS/USS (prefork, parent + children) and broker-side unacked while pending retries
   grow to 1 000, 10 000, 100 000 (delay 1 h, nothing comes due); measured after a warm-up
   (sections 3 and 4 run first on the same worker: a prefork child grows ~70 MB in its first
   ~1 000 retries whatever the retry mechanism, then stays flat).  Each step has a time cap;
   a contender that misses it is reported with what it absorbed and skips the larger steps;
2. time to absorb N failing tasks that each schedule one retry, prefork -c 2 and solo;
3. retry publish throughput: tasks that retry at once (10 ms; native: 1 s, its minimum),
   Celery countdown also with ``confirm_publish`` on;
4. delivery lateness (arrival - due) of retries with random delays, sent at a pace the worker
   keeps up with (the sender waits while the work queue has a backlog);
5. a 45-minute retry on a throwaway broker with ``consumer_timeout`` lowered (60 s; quick: 10 s):
   channel closures, redeliveries and unacked, from the node log, the worker log and rabbitmqctl;
6. broker memory per pending message in classic and quorum delay queues (``list_queues memory``);
7. a plain no-op task's throughput with 0 and with 1 000 000 celery_dlx retries pending.  The
   million are published straight into the classic delay topology with kombu (a real retry
   message, routed like one, 1 h delay), not through the worker.

Everything a run creates is removed at the end, also on Ctrl-C or an error: it works in a
virtual host of its own (``dlxbench-<random>``, deleted with all its queues, exchanges and
messages; native delayed delivery's global ``celery_delayed_*`` names stay out of the shared
``/``), stops its workers, deletes its Redis keys and destroys the throwaway node.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import re
import shlex
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import psutil
import redis
from kombu import Connection

from celery_dlx import Settings, Topology
from celery_dlx.testing.rabbitnode import RabbitNode, _tool
from celery_dlx.testing.worker import WorkerProcess, queue_counts

from .bench_app import BROKER_URL, CONTENDERS, REDIS_URL, make_app, work_queue

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
    ) -> None:
        broker_url = broker_url or globals()["broker_url"](VHOST)
        self.contender = contender
        self.prefix = f"dlxbench.{contender}.{uuid.uuid4().hex[:6]}"
        self.env = {
            "DLX_BENCH_CONTENDER": contender,
            "DLX_BENCH_PREFIX": self.prefix,
            "DLX_BENCH_BROKER": broker_url,
            "DLX_BENCH_REDIS": REDIS_URL,
            "DLX_BENCH_CONFIRM": "1" if confirm else "0",
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


# --------------------------------------------------------------------------------------------
# sections


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


Show = Callable[[str], None]


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
        rabbitmqctl("set_policy", "-p", VHOST, "--apply-to", "queues", "dlxbench-lazy",
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


class TickNode(RabbitNode):
    """A throwaway node whose channels check ``consumer_timeout`` every 5 s (``channel_tick_interval``,
    default 60 s, not settable in rabbitmq.conf), so a timeout shows within 5 s of expiring."""

    @property
    def env(self) -> dict[str, str]:
        return {**super().env, "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": "-rabbit channel_tick_interval 5000"}

    def ctl(self, *args: str, timeout: float = 120) -> str:
        """As :meth:`RabbitNode.ctl`, run outside the project: a failing escript writes erl_crash.dump to its cwd."""
        return subprocess.run(
            [_tool("rabbitmqctl"), "-n", self.nodename, *args], env=self.env, check=True,
            capture_output=True, text=True, timeout=timeout, cwd=tempfile.gettempdir(),
        ).stdout  # fmt: skip


def section_timeout(store: redis.Redis, cleanup: Cleanup, rawdir: Path, mode: Mode, stop: threading.Event) -> dict[str, Any]:
    """Section 5: a 45-minute retry on a broker with a short consumer_timeout (runs in a thread)."""
    port = free_port()
    node = TickNode(f"dlxbench{uuid.uuid4().hex[:6]}", port, config={"consumer_timeout": str(mode.timeout_ms)})
    cleanup.push("node", node.destroy)
    try:
        node.start()
        result: dict[str, Any] = {"consumer_timeout_ms": mode.timeout_ms, "observe_seconds": mode.timeout_observe}
        deps = {
            name: Deployment(name, store, cleanup, rawdir, broker_url=node.url, node=node, loglevel="INFO")
            for name in ("countdown", "dlx_classic")
        }
        for dep in deps.values():
            cleanup.push(dep.prefix, dep._teardown)
            dep.start()
        keys = {}
        for name, dep in deps.items():
            keys[name] = dep.key()
            dep.send_retry_tasks(keys[name], [2700.0] * mode.timeout_tasks)
        samples: dict[str, list[tuple[float, int, int, int]]] = {name: [] for name in deps}
        exits = dict.fromkeys(deps, 0)
        t0 = time.monotonic()
        while time.monotonic() - t0 < mode.timeout_observe and not stop.is_set():
            for name, dep in deps.items():
                # Celery 5 exits on the channel error ("Unrecoverable error"); restart it as a
                # process supervisor (systemd Restart=always, Kubernetes) would.
                if dep.worker.process is not None and dep.worker.process.poll() is not None:
                    exits[name] += 1
                    dep.worker.start(timeout=60)
            rows = list_queues(None, "messages_ready", "messages_unacknowledged", "consumers", node=node)
            for name, dep in deps.items():
                ready, unack, consumers = rows.get(dep.work, [0, 0, 0])
                samples[name].append((round(time.monotonic() - t0, 1), ready, unack, consumers))
            time.sleep(2)
        node_log = "\n".join(p.read_text(errors="replace") for p in (node.base / "log").glob("*.log"))
        for name, dep in deps.items():
            log = dep.logfile.read_text(errors="replace")
            result[name] = {
                "tasks": mode.timeout_tasks,
                "runs": dep.runs(keys[name]),
                "worker_log_precondition_failed": sum(
                    1 for line in log.splitlines() if "CRITICAL" in line and "PRECONDITION_FAILED" in line
                ),
                "worker_log_connection_lost": log.count("Connection to broker lost"),
                # Each delivery of a task is logged "received": 1 for the task, 1 for its retry
                # (countdown only: celery_dlx's retry is not delivered within the observation);
                # anything above that is a redelivery.
                "deliveries": log.count("] received"),
                "redeliveries": max(0, log.count("] received") - mode.timeout_tasks * (2 if name == "countdown" else 1)),
                "max_unacked": max(s[2] for s in samples[name]),
                "final_unacked": samples[name][-1][2],
                "broker_pending": dep.broker_pending(),
                "worker_exits_restarted": exits[name],
                "samples": samples[name],
            }
        for dep in deps.values():
            cleanup.pop(dep.prefix)
        result["node_log_ack_timeouts"] = sum(1 for line in node_log.splitlines() if "acknowledgement" in line)
        result["node_log_lines"] = [line for line in node_log.splitlines() if "acknowledgement" in line][:3]
        return result
    finally:
        cleanup.pop("node")


# --------------------------------------------------------------------------------------------
# report


def mb(n: float) -> str:
    return f"{n / 2**20:.1f} MB"


def fmt_rate(x: float) -> str:
    return "-" if x is None or math.isnan(x) else f"{x:,.0f}/s"


def report(data: dict[str, Any], out: Path) -> str:
    mode = data["mode"]
    c = data["contenders"]
    lines = [
        f"# celery_dlx benchmark ({mode['name']} mode)\n",
        f"`{data['command']}` on {data['date']}, RabbitMQ {data['rabbitmq']}, Celery {data['celery']}, kombu {data['kombu']}, "
        f"{os.cpu_count()} cores; runtime {data['runtime_s'] / 60:.1f} min. All contenders ran in this one run, one after "
        "another, on the same broker (shared with other work on the machine: compare ratios, not absolutes). "
        "Worker prefork -c 2 unless noted; `worker_prefetch_multiplier=4`.\n",
        "## 1. Worker memory and unacked as pending retries grow\n",
        f"Retries with a 1 h delay. Baseline measured after a warm-up on the same worker ({mode['warmup_note']}); "
        "growth = RSS/USS of the worker parent + prefork children minus that baseline. "
        "Unacked: `rabbitmqctl list_queues messages_unacknowledged` of the work queue. "
        "Absorb rate: new tasks per second in that step (each task runs once and publishes one retry).\n",
        "| contender | pending target | reached | in broker | worker unacked | time | absorb rate | RSS | RSS growth | USS growth |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name in CONTENDERS:
        if "growth" not in c.get(name, {}):
            continue
        g = c[name]["growth"]
        previous = 0
        for s in g["steps"]:
            status = f"{s['seconds']:.1f} s" if s["finished"] else f"did not finish in {s['cap']:.0f} s"
            step_rate = (min(s["reached"], s["target"]) - previous) / s["seconds"] if s["seconds"] else math.nan
            lines.append(
                f"| {LABELS[name]} | {s['target']:,} | {s['reached']:,} | {s['broker_pending']:,} | {s['unacked']:,} | {status} "
                f"| {fmt_rate(step_rate)} | {mb(s['rss'])} | {(s['rss'] - g['base_rss']) / 2**20:+.1f} MB "
                f"| {(s['uss'] - g['base_uss']) / 2**20:+.1f} MB |"
            )
            previous = s["target"]
    lines += [
        "\n## 2. Time to absorb N failing tasks that each schedule one retry\n",
        "Prefork -c 2: the steps of section 1. Solo: fresh solo workers (all started together, idle until their "
        f"turn), {data['solo_n']:,} tasks each, one contender at a time. Time includes the worker's first retry "
        "(celery_dlx declares its topology then).\n",
        "| contender | pool | N | time | tasks/s | unacked after |",
        "|---|---|---|---|---|---|",
    ]
    for name in CONTENDERS:
        if "growth" not in c.get(name, {}):
            continue
        steps = c[name]["growth"]["steps"]
        previous = 0
        for s in steps:
            if s["finished"]:
                lines.append(f"| {LABELS[name]} | prefork -c 2 | {s['target'] - previous:,} (to {s['target']:,}) | {s['seconds']:.1f} s | {fmt_rate((s['target'] - previous) / s['seconds'])} | {s['unacked']:,} |")
            else:
                lines.append(f"| {LABELS[name]} | prefork -c 2 | {s['target'] - previous:,} (to {s['target']:,}) | did not finish in {s['cap']:.0f} s: {s['reached']:,} pending | {fmt_rate((s['reached'] - previous) / s['seconds'])} | {s['unacked']:,} |")
            previous = s["target"]
        solo = c[name].get("solo")
        if solo:
            status = f"{solo['seconds']:.1f} s" if solo["finished"] else f"did not finish in {solo['cap']:.0f} s: {solo['reached']:,} pending"
            lines.append(f"| {LABELS[name]} | solo | {solo['n']:,} | {status} | {fmt_rate(solo['reached'] / solo['seconds'])} | {solo['unacked']:,} |")
    lines += [
        "\n## 3. Retry publish throughput\n",
        f"Tasks that retry at once (delay 10 ms; native: 1 s, the smallest it accepts) on the prefork workers; each "
        "task runs twice and publishes one retry. Rate = tasks / (last arrival − first send − delay). The contenders "
        f"take turns, {mode['publish_rounds']} rounds in rotating order with all workers up, so load from elsewhere "
        "hits them alike; median of the rounds. celery_dlx always publishes its retries confirmed, mandatory and "
        "persistent; Celery publishes without confirms unless `broker_transport_options={'confirm_publish': True}`.\n",
        "| contender | tasks per round | all back | median tasks/s | min – max | vs countdown |",
        "|---|---|---|---|---|---|",
    ]
    base = c.get("countdown", {}).get("publish", {}).get("rate")
    rows = [(n, c[n]["publish"]) for n in CONTENDERS if "publish" in c.get(n, {})]
    if "countdown_confirm" in data:
        rows.insert(1, ("countdown_confirm", data["countdown_confirm"]))
    for name, p in rows:
        ratio = f"{p['rate'] / base:.2f}×" if base else "-"
        lines.append(f"| {LABELS[name]} | {p['n']:,} | {'yes' if p['complete'] else 'no'} | {fmt_rate(p['rate'])} | {p['min']:,.0f} – {p['max']:,.0f} | {ratio} |")
    lines += [
        "\n## 4. Delivery lateness (arrival − due)\n",
        f"Delays uniform in 0.1–{mode['lateness_max_delay']:.0f} s; due = `time.time() + delay` computed by the task "
        f"just before `self.retry`, the same for every contender. One contender at a time (the others' workers idle), "
        f"sent at up to {mode['lateness_rate']:.0f}/s and only while the work queue has no backlog (≤ 20 ready), "
        f"for at most {mode['lateness_send_cap']:.0f} s. Early = arrived before due; missing = never arrived.\n",
        "| contender | planned | sent | arrived | missing | median | p90 | p99 | max | early | sub-second delays sent | mean hops | p99 of lateness − 25 ms·hops | over 100 ms + 25 ms·hops |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name in CONTENDERS:
        if "lateness" not in c.get(name, {}):
            continue
        L = c[name]["lateness"]
        late = L["lateness_ms"]
        if late:
            stats = (f"{statistics.median(late):.1f} ms | {percentile(late, 0.9):.1f} ms | {percentile(late, 0.99):.1f} ms "
                     f"| {max(late):.1f} ms | {sum(x < 0 for x in late)}")  # fmt: skip
        else:
            stats = "- | - | - | - | -"
        hops = L.get("hops")
        if hops:
            excess = [x - 25 * h for x, h in zip(late, hops)]
            budget = (f"{statistics.mean(hops):.1f} | {percentile(excess, 0.99):.1f} ms "
                      f"| {sum(e > 100 for e in excess)} of {len(excess)}")  # fmt: skip
        else:
            budget = "- | - | -"
        lines.append(f"| {LABELS[name]} | {L['planned']:,} | {L['sent']:,} | {L['arrived']:,} | {L['missing']:,} | {stats} | {L['sub_second_sent']:,} | {budget} |")
    t = data.get("timeout")
    if t and "error" in t:
        lines.append(f"\n## 5. consumer_timeout\n\nfailed: `{t['error']}`")
    elif t:
        lines += [
            "\n## 5. A 45-minute retry with `consumer_timeout` lowered\n",
            f"Throwaway RabbitMQ node with `consumer_timeout = {t['consumer_timeout_ms']}` ms (channels check it every 5 s: "
            f"`channel_tick_interval`); {t['countdown']['tasks']} tasks per contender, each retrying once with a 2 700 s "
            f"delay; observed for {t['observe_seconds']:.0f} s. Celery {data['celery']} treats the channel error as "
            "unrecoverable and the worker process exits; the benchmark restarts it, as a process supervisor would. "
            "Redeliveries: deliveries in the worker log (`received`) beyond the first of each message. Node log lines "
            f"about delivery acknowledgement timeouts: {t['node_log_ack_timeouts']}.\n",
            "| contender | channel closed (PRECONDITION_FAILED in worker log) | worker exits (restarted) | redeliveries | max unacked | unacked at end | in delay queues |",
            "|---|---|---|---|---|---|---|",
        ]
        for name in ("countdown", "dlx_classic"):
            r = t[name]
            lines.append(f"| {LABELS[name]} | {r['worker_log_precondition_failed']} | {r['worker_exits_restarted']} | {r['redeliveries']} | {r['max_unacked']} | {r['final_unacked']} | {r['broker_pending']} |")
        if t.get("node_log_lines"):
            lines.append(f"\nNode log, first line: `{t['node_log_lines'][0].strip()[:300]}`")
    lines += ["\n## 6. Broker memory per pending message\n",
              "`rabbitmqctl list_queues name messages memory` summed over the delay queues, with the pending retries of "
              "section 1 (or 7) minus the same queues empty, divided by the messages. The queue process memory only: "
              "message bodies that a classic queue has paged to disk and quorum queues' log on disk are not in it.\n",
              "| delay queues | source | messages | queue memory | per message |", "|---|---|---|---|---|"]  # fmt: skip
    for name, source in (("dlx_classic", "section 1"), ("dlx_quorum", "section 1"), ("native", "section 1 (celery_delayed_*)")):
        if "growth" in c.get(name, {}):
            q, e = c[name]["growth"]["queue_memory"], c[name]["growth"].get("queue_memory_empty", {})
            msgs = sum(v[0] for v in q.values()) - sum(v[0] for v in e.values())
            memory = sum(v[1] for v in q.values()) - sum(v[1] for v in e.values())
            per = f"{memory / msgs:,.0f} B" if msgs else "-"
            lines.append(f"| {LABELS[name]} | {source} | {msgs:,} | {mb(memory)} | {per} |")
    m = data.get("million")
    if m:
        q, e = m["queue_memory"], m["queue_memory_empty"]
        msgs = sum(v[0] for v in q.values()) - sum(v[0] for v in e.values())
        memory = sum(v[1] for v in q.values()) - sum(v[1] for v in e.values())
        lines.append(f"| {LABELS['dlx_classic']}, lazy policy | section 7 | {msgs:,} | {mb(memory)} | {memory / max(msgs, 1):,.0f} B |")
        lines += [
            "\n## 7. Other tasks' throughput with a million retries pending\n",
            f"{m['pending']:,} celery_dlx retry messages (1 h delay) published straight into the classic delay topology with "
            f"kombu in {m['fill_seconds']:.0f} s (not through the worker; the delay queues under a `queue-mode: lazy` "
            f"policy so the million sit on disk, not in the shared broker's RAM); {m['n']:,} no-op tasks (each one Redis INCR) "
            "through a celery_dlx worker, before, while they wait and after purging them.\n",
            "| pending | no-op tasks/s | vs 0 pending (mean of before and after) |", "|---|---|---|",
            f"| 0 (before) | {fmt_rate(m['before'])} | |",
            f"| {m['pending']:,} | {fmt_rate(m['during'])} | {m['during'] / ((m['before'] + m['after']) / 2):.2f}× |",
            f"| 0 (after purge) | {fmt_rate(m['after'])} | |",
        ]  # fmt: skip
    lines.append(f"\nPlot: [{out.name}]({out.name}) (worker RSS vs pending retries; lateness distribution).")
    return "\n".join(lines) + "\n"


def plot(data: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    c = data["contenders"]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(13, 5))
    for name in CONTENDERS:
        if "growth" not in c.get(name, {}):
            continue
        g = c[name]["growth"]
        xs = [0] + [s["reached"] for s in g["steps"]]
        ys = [g["base_rss"] / 2**20] + [s["rss"] / 2**20 for s in g["steps"]]
        ax1.plot([max(x, 1) for x in xs], ys, marker="o", label=LABELS[name])
        for s in g["steps"]:
            if not s["finished"]:
                ax1.annotate(f"capped at {s['cap']:.0f} s", (max(s["reached"], 1), s["rss"] / 2**20), fontsize=8)
    ax1.set_xscale("log")
    ax1.set_xlabel("pending retries (log; 1 = none)")
    ax1.set_ylabel("worker RSS, parent + children (MB)")
    ax1.set_title("Worker memory vs pending retries (prefork -c 2, after warm-up)")
    ax1.legend(fontsize=8)
    for name in CONTENDERS:
        if "lateness" not in c.get(name, {}):
            continue
        late = sorted(c[name]["lateness"]["lateness_ms"])
        if late:
            ys = [(i + 1) / len(late) for i in range(len(late))]
            ax2.plot(late, ys, label=f"{LABELS[name]} (n={len(late)})")
    ax2.set_xscale("symlog", linthresh=10)
    ax2.axvline(0, color="black", linewidth=0.8)
    ax2.set_xlabel("arrival − due (ms, symlog; < 0 = early)")
    ax2.set_ylabel("fraction of retries")
    ax2.set_title("Delivery lateness, cumulative")
    ax2.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# --------------------------------------------------------------------------------------------


def create_vhost() -> str:
    vhost = f"dlxbench-{uuid.uuid4().hex[:8]}"
    rabbitmqctl("add_vhost", vhost)
    rabbitmqctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
    return vhost


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smoke mode, < 2 min")
    parser.add_argument("--out", type=Path, help="output directory (default: benchmarks/results; --quick: benchmarks/results/raw/quick)")
    parser.add_argument("--contenders", default=",".join(CONTENDERS), help="comma-separated subset of " + ",".join(CONTENDERS))
    parser.add_argument("--skip", default="", help="comma-separated sections to skip: publish,lateness,growth,solo,confirm,timeout,million")
    args = parser.parse_args(argv)
    mode = quick_mode() if args.quick else full_mode()
    out: Path = args.out or (RESULTS / "raw" / "quick" if args.quick else RESULTS)
    rawdir = out / "raw"
    rawdir.mkdir(parents=True, exist_ok=True)
    contenders = [x for x in args.contenders.split(",") if x]
    unknown = set(contenders) - set(CONTENDERS)
    if unknown:
        parser.error(f"unknown contenders {sorted(unknown)}")
    skip = set(args.skip.split(","))
    store = redis.Redis.from_url(REDIS_URL)
    cleanup = Cleanup()
    progress = Progress(3 + 2 * len(contenders) + ("million" not in skip) + ("timeout" not in skip))

    def on_term(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    import celery
    import kombu

    data: dict[str, Any] = {
        "mode": asdict(mode), "contenders": {name: {} for name in contenders}, "solo_n": mode.solo_n,
        "command": "python -m benchmarks.run" + (" --quick" if args.quick else "") + (f" --contenders {args.contenders}" if args.contenders != ",".join(CONTENDERS) else "") + (f" --skip {args.skip}" if args.skip else ""),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "rabbitmq": rabbitmqctl("version").strip(), "celery": celery.__version__, "kombu": kombu.__version__,
    }  # fmt: skip
    t0 = time.monotonic()
    global VHOST
    VHOST = create_vhost()
    cleanup.push("vhost", lambda: rabbitmqctl("delete_vhost", VHOST))
    data["vhost"] = VHOST
    timeout_thread = None
    timeout_result: dict[str, Any] = {}
    timeout_stop = threading.Event()
    try:
        if "timeout" not in skip:
            # Mostly waiting on its own throwaway node: runs beside the other sections.
            def run_timeout() -> None:
                try:
                    timeout_result.update(section_timeout(store, cleanup, rawdir, mode, timeout_stop))
                except Exception as error:
                    timeout_result["error"] = repr(error)

            timeout_thread = threading.Thread(target=run_timeout, daemon=True)
            timeout_thread.start()

        progress.start("starting one prefork worker per contender")
        deps = {name: Deployment(name, store, cleanup, rawdir) for name in contenders}
        if "confirm" not in skip and "countdown" in contenders:
            deps["countdown_confirm"] = Deployment("countdown", store, cleanup, rawdir, confirm=True)
        start_all(list(deps.values()))
        progress.finish()

        progress.start("retry publish throughput, interleaved rounds (3)")
        publish = section_publish_rounds(deps, mode, progress) if "publish" not in skip else {}
        for name, result in publish.items():
            if name == "countdown_confirm":
                data["countdown_confirm"] = result
            else:
                data["contenders"][name]["publish"] = result
        if "countdown_confirm" in deps:
            cleanup.pop(deps.pop("countdown_confirm").prefix)
        progress.finish()

        for name, dep in deps.items() if "lateness" not in skip else ():
            progress.start(f"{LABELS[name]}: delivery lateness (4)")
            status: dict[str, str] = {}
            data["contenders"][name]["lateness"] = in_parallel(
                {name: lambda d=dep, st=status: section_lateness(d, mode, st)},
                lambda st=status, n=name: progress.show(st.get(n, "")),
            )[name]
            progress.finish()

        for name, dep in deps.items() if "growth" not in skip else ():
            progress.start(f"{LABELS[name]}: memory and unacked vs pending retries (1, 2)")
            data["contenders"][name]["growth"] = section_growth(dep, mode, progress)
            cleanup.pop(dep.prefix)  # stop it: the others' figures should not share the machine with it
            progress.finish()

        if "solo" not in skip:
            progress.start(f"solo pool: {mode.solo_n:,} failing tasks per contender, one at a time (2)")
            solo = {name: Deployment(name, store, cleanup, rawdir, pool="solo", concurrency=1) for name in contenders}
            start_all(list(solo.values()))
            for name, dep in solo.items():
                finished, seconds, reached = absorb(
                    dep, dep.key(), mode.solo_n, mode.solo_n, mode.solo_cap, lambda d, n=name: progress.show(f"{LABELS[n]}: {d}")
                )
                data["contenders"][name]["solo"] = {"n": mode.solo_n, "finished": finished, "seconds": seconds,
                                                    "reached": reached, "cap": mode.solo_cap, "unacked": unacked(dep.prefix)}  # fmt: skip
                cleanup.pop(dep.prefix)
            progress.finish()

        if "million" not in skip:
            progress.start(f"no-op throughput with {mode.million:,} celery_dlx retries pending (6, 7)")
            data["million"] = section_million(store, cleanup, rawdir, mode, progress)
            progress.finish()

        if timeout_thread is not None:
            progress.start(f"consumer_timeout {mode.timeout_ms // 1000} s on a throwaway node (5)")
            while timeout_thread.is_alive():
                progress.show("waiting for the observation to end")
                timeout_thread.join(1)
            data["timeout"] = timeout_result
            progress.finish()
    except KeyboardInterrupt:
        print("\ninterrupted: cleaning up", file=sys.stderr)
        raise
    finally:
        timeout_stop.set()
        if timeout_thread is not None:
            timeout_thread.join(30)  # let it stop using its node before the node is destroyed
        cleanup.run_all()
    data["runtime_s"] = time.monotonic() - t0
    (rawdir / f"results-{mode.name}.json").write_text(json.dumps(data, indent=1))
    png = out / "benchmark.png"
    md = out / "benchmark.md"
    plot(data, png)
    text = report(data, png)
    md.write_text(text)
    print("\n" + text)
    print(f"wrote {md} and {png} in {data['runtime_s']:.0f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
