"""Reliability suite: throwaway RabbitMQ nodes (never the shared broker), real workers, counts.

Every test runs against RabbitMQ nodes of its own on loopback ports 5700-5760 (node names
``dlxrel*``, data under pytest's tmp dir, removed afterwards) and Redis on 127.0.0.1:6379 for
the records.  Outside CI a missing ``rabbitmq-server`` or Redis skips the suite; under CI=true
it fails, so CI cannot go green by skipping.

``DLX_RELIABILITY_FULL=1`` runs the full suite (every scenario at 10 000 messages); without
it the CI subset runs (see docs/reliability.md).  Each scenario adds a row to the results
table, printed at the end of the run and written to ``tests/reliability/results.md`` (or
``DLX_RELIABILITY_RESULTS``).
"""

from __future__ import annotations

import os
import shutil
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import redis
from celery import Celery
from kombu import Connection

from celery_dlx import Settings, Topology
from celery_dlx.testing.rabbitnode import RABBITMQ_BIN, RabbitNode
from celery_dlx.testing.worker import WorkerProcess, queue_counts

from ..support import ROOT, missing, reachable
from .rel_app import REDIS_URL, make_app

FULL = os.environ.get("DLX_RELIABILITY_FULL", "").lower() in ("1", "true", "yes")
#: Where the table is written: the committed results.md by a full run, else only if asked.
RESULTS = os.environ.get("DLX_RELIABILITY_RESULTS") or (str(Path(__file__).with_name("results.md")) if FULL else None)
#: A broker user with a password, so tests can check the password never reaches a message.
USER, PASSWORD = "dlxrel", "Br0ker-Pw-7f3a9c"
#: First loopback port: the single node listens here, the cluster on +10, +11, +12 (5700-5760).
PORT_BASE = int(os.environ.get("DLX_RELIABILITY_PORT_BASE", "5700"))
#: Skip reason of the tests that only the full suite runs.
FULL_ONLY = pytest.mark.skipif(not FULL, reason="full reliability suite only (DLX_RELIABILITY_FULL=1)")


def pytest_configure(config: pytest.Config) -> None:
    # Registered here too, so the suite runs under --strict-markers before pyproject lists it.
    config.addinivalue_line("markers", "reliability: tests/reliability suite on throwaway RabbitMQ nodes")


# ---------------------------------------------------------------------------------------------
# results table


@dataclass
class Row:
    scenario: str
    messages: int
    lost: int
    duplicates: int
    seconds: float
    notes: str = ""


_rows: list[Row] = []


@pytest.fixture(scope="session")
def report() -> Callable[..., None]:
    """``report(scenario, messages, lost, duplicates, seconds, notes="")`` adds a results row."""

    def add(scenario: str, messages: int, lost: int, duplicates: int, seconds: float, notes: str = "") -> None:
        _rows.append(Row(scenario, messages, lost, duplicates, seconds, notes))

    return add


def _table() -> str:
    lines = [
        "| scenario | messages | lost | duplicates | time | notes |",
        "|---|---|---|---|---|---|",
    ]
    for r in _rows:
        messages = f"{r.messages:,}".replace(",", " ")
        lines.append(f"| {r.scenario} | {messages} | {r.lost} | {r.duplicates} | {r.seconds:.0f} s | {r.notes} |")
    return "\n".join(lines)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not _rows:
        return
    terminalreporter.section("celery_dlx reliability results")
    terminalreporter.write_line(_table())
    if RESULTS is None:
        return
    mode = "full suite (DLX_RELIABILITY_FULL=1)" if FULL else "CI subset"
    Path(RESULTS).write_text(
        f"# Reliability results\n\n{mode}, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
        f"RabbitMQ nodes from {RABBITMQ_BIN}, {os.cpu_count()} cores.\n\n{_table()}\n"
    )
    terminalreporter.write_line(f"written to {RESULTS}")


# ---------------------------------------------------------------------------------------------
# services


def _missing(message: str) -> None:
    missing(message, "the reliability suite")


@pytest.fixture(scope="session")
def rabbit_installed() -> None:
    if not (RABBITMQ_BIN / "rabbitmq-server").exists() and shutil.which("rabbitmq-server") is None:
        _missing(f"rabbitmq-server is not installed ({RABBITMQ_BIN} or PATH; set DLX_RABBITMQ_BIN)")


@pytest.fixture(scope="session")
def store() -> redis.Redis:
    if not reachable("127.0.0.1", 6379):
        _missing("Redis is not reachable on 127.0.0.1:6379")
    return redis.Redis.from_url(REDIS_URL)


def new_node(name: str, port: int, base: Path) -> RabbitNode:
    """A RabbitNode on 127.0.0.1:``port`` (must be free: a leftover node is an error, not reused)."""
    if reachable("127.0.0.1", port):
        pytest.fail(f"port {port} is taken; a node from an earlier run may still be up (node {name})")
    return RabbitNode(name, port, base_dir=base, config={"log.file.level": "warning"})


def add_user(node: RabbitNode) -> None:
    node.ctl("add_user", USER, PASSWORD)
    node.ctl("set_user_tags", USER, "administrator")
    node.ctl("set_permissions", "-p", "/", USER, ".*", ".*", ".*")


def url_of(node: RabbitNode) -> str:
    return f"amqp://{USER}:{PASSWORD}@127.0.0.1:{node.amqp_port}//"


@pytest.fixture(scope="session")
def node(rabbit_installed: None, store: redis.Redis, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RabbitNode]:
    """One throwaway node, ``dlxrel5700`` on 127.0.0.1:5700, for the single-node scenarios."""
    n = new_node(f"dlxrel{PORT_BASE}", PORT_BASE, tmp_path_factory.mktemp("dlxrel1"))
    try:
        n.start()
        add_user(n)
        yield n
    finally:
        n.destroy()


# ---------------------------------------------------------------------------------------------
# one deployment per test: prefix, work queue, app, worker(s)


@dataclass
class RelEnv:
    broker_url: str  # may hold several URLs separated by ";"
    prefix: str
    queue: str
    env: dict[str, str]
    app: Celery
    store: redis.Redis
    logdir: Path
    run: str
    workers: list[WorkerProcess] = field(default_factory=list)

    @property
    def first_url(self) -> str:
        return self.broker_url.split(";")[0]

    @property
    def topology(self) -> Topology:
        return Topology(Settings.from_conf(self.app.conf))

    @property
    def delay_queue_names(self) -> list[str]:
        return [q.name for q in self.topology.level_queues]

    @property
    def worker(self) -> WorkerProcess | None:
        return self.workers[-1] if self.workers else None

    def start_worker(self, *, concurrency: int = 2, level: str = "WARNING", url: str | None = None) -> WorkerProcess:
        worker = WorkerProcess(
            "tests.reliability.rel_app:app",
            [self.queue],
            url or self.first_url,
            pool="prefork",
            concurrency=concurrency,
            env=self.env,
            cwd=ROOT,
            logfile=self.logdir / "worker.log",
            extra_args=["-l", level],
        )
        self.workers.append(worker)
        return worker.start(timeout=120)

    def log(self) -> str:
        path = self.logdir / "worker.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def hash_ints(self, name: str) -> dict[int, int]:
        return {int(k): int(v) for k, v in self.store.hgetall(f"{self.run}:{name}").items()}

    def hash_floats(self, name: str) -> dict[int, float]:
        return {int(k): float(v) for k, v in self.store.hgetall(f"{self.run}:{name}").items()}

    def count(self, name: str) -> int:
        return int(self.store.hlen(f"{self.run}:{name}"))

    def pending(self, url: str | None = None) -> int:
        """Messages ready in the delay queues (passive declares on ``url``)."""
        return sum(ready for ready, _ in queue_counts(url or self.first_url, self.delay_queue_names).values())

    def send(self, task: str, arg_list: list[tuple[Any, ...]], **options: Any) -> None:
        """Publish many tasks on one connection (fast; the test's own producer)."""
        with self.app.producer_or_acquire() as producer:
            for args in arg_list:
                self.app.send_task(task, args, producer=producer, **options)

    def wait_for(self, name: str, count: int, timeout: float, *, stall: float = 180.0) -> int:
        """Wait until the hash ``name`` has ``count`` fields; give up at ``timeout`` s or after
        ``stall`` s without progress.  Returns the count reached."""
        deadline = time.monotonic() + timeout
        last, last_change = -1, time.monotonic()
        while time.monotonic() < deadline:
            now_count = self.count(name)
            if now_count >= count:
                return now_count
            if now_count != last:
                last, last_change = now_count, time.monotonic()
            elif time.monotonic() - last_change > stall:
                break
            time.sleep(0.5)
        return self.count(name)


def _cleanup(rel: RelEnv, url: str) -> None:
    for worker in rel.workers:
        worker.stop(timeout=20, warm=False)
    try:
        with Connection(url, connect_timeout=10) as conn:
            conn.ensure_connection(max_retries=3)
            rel.topology.delete(conn)
            with conn.channel() as channel:
                channel.queue_delete(rel.queue)
                channel.exchange_delete(rel.queue)
    except Exception as exc:
        print(f"cleanup of {rel.prefix} on the broker skipped: {exc!r}")
    keys = list(rel.store.scan_iter(f"{rel.run}:*")) + list(rel.store.scan_iter("dlxrel:once:{" + f"{rel.run}:*", count=1000))
    for start in range(0, len(keys), 1000):
        rel.store.delete(*keys[start : start + 1000])


@pytest.fixture
def make_rel(store: redis.Redis, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., RelEnv]]:
    """Factory: ``make_rel(broker_url, queue_type=…, work_queue_type=…, acks_late=…, idempotent=…, **env)``."""
    made: list[RelEnv] = []

    def factory(
        broker_url: str,
        *,
        queue_type: str = "classic",
        work_queue_type: str = "classic",
        acks_late: bool = True,
        idempotent: bool = False,
        prefetch: int = 4,
        **extra: str,
    ) -> RelEnv:
        tag = uuid.uuid4().hex[:8]
        prefix = f"dlxrel.{tag}"
        env = {
            "DLX_REL_BROKER": broker_url,
            "DLX_REL_REDIS": REDIS_URL,
            "DLX_REL_PREFIX": prefix,
            "DLX_REL_QUEUE": f"{prefix}.work",
            "DLX_REL_QUEUE_TYPE": queue_type,
            "DLX_REL_WORK_QUEUE_TYPE": work_queue_type,
            "DLX_REL_ACKS_LATE": "1" if acks_late else "0",
            "DLX_REL_IDEMPOTENT": "1" if idempotent else "0",
            "DLX_REL_PREFETCH": str(prefetch),
            **extra,
        }
        rel = RelEnv(
            broker_url=broker_url, prefix=prefix, queue=env["DLX_REL_QUEUE"], env=env, app=make_app(env),
            store=store, logdir=tmp_path_factory.mktemp(f"rel-{tag}"), run=f"dlxrel:{tag}",
        )  # fmt: skip
        made.append(rel)
        return rel

    yield factory
    for rel in made:
        _cleanup(rel, rel.broker_url)
        rel.app.close()


def preload_retries(rel: RelEnv, n: int, countdown_for: Callable[[int], float]) -> float:
    """Put one pending retry of task ``rel.flow(run, i, …)`` for each ``i < n`` into the delay
    queues, as a worker would, with the delay ``countdown_for(i)`` (called at publish time).

    Runs celery_dlx's own ``delayed_retry`` in this process on a request built as the worker
    builds it, so the messages are exactly the ones a worker publishes, at a rate the test
    controls (no worker needed, and the due times do not depend on how busy the machine is).
    Each retry is confirmed by the broker before the next.  Records ``run:first`` (the time the
    retry was asked for) and ``run:asked`` (that time + the delay: the earliest allowed
    arrival, computed here, independently of celery_dlx).  Returns the seconds it took.
    """
    from celery_dlx import delayed_retry

    task = rel.app.tasks["rel.flow"]
    started = time.monotonic()
    for i in range(n):
        countdown = countdown_for(i)
        task.push_request(
            id=str(uuid.uuid4()), args=[rel.run, i, countdown], kwargs={}, retries=0, called_directly=False,
            is_eager=False, delivery_info={"exchange": "", "routing_key": rel.queue}, headers={}, root_id=None,
            parent_id=None,
        )  # fmt: skip
        try:
            now = time.time()
            rel.store.hsetnx(f"{rel.run}:first", i, now)
            rel.store.hsetnx(f"{rel.run}:asked", i, now + countdown)
            delayed_retry(task, countdown=countdown, throw=False)
        finally:
            task.pop_request()
    return time.monotonic() - started
