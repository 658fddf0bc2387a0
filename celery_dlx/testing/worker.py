"""Run a real Celery worker in a subprocess, for integration tests and benchmarks.

"Don't use always eager": retry behaviour only shows against the real broker with a real
worker, so tests start one, wait until it consumes, and stop it afterwards.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

import redis
from kombu import Connection

from ..broker.topology import DESTINATION_HEADER, DUE_HEADER


def record_arrival(store: redis.Redis, key: str, request: Any) -> None:
    """Append one delivery of a task (``task.request``) to the Redis list ``key``.

    Counting deliveries in Redis is independent of Celery's result backend and of celery_dlx:
    it is what the tests and benchmarks trust.  ``due`` is when celery_dlx promised the
    delivery, so ``t - due`` is its lateness.
    """
    store.rpush(
        key,
        json.dumps(
            {
                "t": time.time(),
                "id": request.id,
                "retries": request.retries,
                "due": request.get(DUE_HEADER),
                "queue": request.get(DESTINATION_HEADER),
                "x_death": sum(int(e.get("count", 1)) for e in request.get("x-death") or []),
                "root_id": request.root_id,
                "parent_id": request.parent_id,
            }
        ),
    )


def wait_until(predicate: Callable[[], bool], timeout: float, interval: float = 0.1) -> bool:
    """Poll ``predicate`` until it is true or ``timeout`` s passed; its last answer."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()


def wait_for_arrivals(store: redis.Redis, key: str, count: int, timeout: float) -> list[dict[str, Any]]:
    """Wait until ``count`` deliveries are recorded under ``key`` (or ``timeout`` s) and return all."""
    wait_until(lambda: store.llen(key) >= count, timeout, interval=0.05)
    return [json.loads(x) for x in store.lrange(key, 0, -1)]


def queue_counts(broker_url: str, queues: Iterable[str]) -> dict[str, tuple[int, int]]:
    """``{queue: (messages ready, consumers)}`` by passive declares.

    A passive declare answers with the queue's current state, also for quorum queues, whose
    counts in ``rabbitmqctl list_queues`` lag by seconds.  A missing queue counts as (0, 0).
    """
    counts: dict[str, tuple[int, int]] = {}
    with Connection(broker_url) as conn:
        for name in queues:
            channel = conn.channel()
            try:
                _, ready, consumers = channel.queue_declare(queue=name, passive=True)
                counts[name] = (ready, consumers)
            except conn.channel_errors:
                counts[name] = (0, 0)
            finally:
                try:
                    channel.close()
                except conn.channel_errors + conn.connection_errors:
                    pass
    return counts


class WorkerProcess:
    """``celery -A app_module worker`` as a child process.

    ``env`` is added to the current environment; the worker consumes ``queues``.  Use it as a
    context manager or call :meth:`start` / :meth:`stop`.
    """

    def __init__(
        self,
        app_module: str,
        queues: Sequence[str],
        broker_url: str,
        *,
        pool: str = "prefork",
        concurrency: int = 2,
        env: Mapping[str, str] | None = None,
        cwd: str | os.PathLike[str] | None = None,
        logfile: str | os.PathLike[str] | None = None,
        extra_args: Sequence[str] = (),
    ) -> None:
        if not queues:
            raise ValueError("a worker needs at least one queue to consume")
        self.app_module = app_module
        self.queues = list(queues)
        self.broker_url = broker_url
        self.pool = pool
        self.concurrency = concurrency
        self.env = dict(env or {})
        self.cwd = cwd
        self.logfile = Path(logfile) if logfile else None
        self.extra_args = list(extra_args)
        self.name = f"dlxtest-{uuid.uuid4().hex[:8]}@%h"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def command(self) -> list[str]:
        return [
            sys.executable, "-m", "celery", "-A", self.app_module, "worker",
            "-P", self.pool, "-c", str(self.concurrency), "-Q", ",".join(self.queues), "-n", self.name,
            "--without-mingle", "--without-gossip", "--without-heartbeat", "-l", "INFO",
            *self.extra_args,
        ]  # fmt: skip

    def start(self, timeout: float = 60.0) -> WorkerProcess:
        """Start the worker and return once it consumes every one of its queues."""
        out = open(self.logfile, "ab") if self.logfile else subprocess.DEVNULL  # noqa: SIM115
        try:
            self.process = subprocess.Popen(
                self.command, env={**os.environ, **self.env}, cwd=self.cwd, stdout=out, stderr=subprocess.STDOUT
            )
        finally:
            if self.logfile:
                out.close()  # type: ignore[union-attr]
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"worker exited with code {self.process.returncode}; see {self.logfile}")
            if all(consumers > 0 for _, consumers in queue_counts(self.broker_url, self.queues).values()):
                return self
            time.sleep(0.2)
        self.stop()
        raise TimeoutError(f"worker did not consume {self.queues} within {timeout} s; see {self.logfile}")

    @property
    def pid(self) -> int:
        if self.process is None:
            raise RuntimeError("worker not started")
        return self.process.pid

    def stop(self, timeout: float = 20.0, *, warm: bool = True) -> None:
        """Warm shutdown (SIGTERM: finish running tasks), or cold (SIGQUIT: unacked work goes
        back to the broker) with ``warm=False``; SIGKILL if it does not exit in ``timeout`` s."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM if warm else signal.SIGQUIT)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()

    def rss_bytes(self) -> int:
        """Resident memory of the worker and its pool children, from /proc (Linux)."""
        return sum(self.rss_by_process())

    def rss_by_process(self) -> list[int]:
        """Resident memory of the worker's parent, then of each pool child, from /proc (Linux)."""
        return [_rss(pid) for pid in [self.pid, *_children(self.pid)]]

    def kill(self) -> None:
        """SIGKILL the worker and its pool children (a crash, for reliability tests)."""
        if self.process is None or self.process.poll() is not None:
            return
        children = _children(self.process.pid)
        self.process.kill()
        for pid in children:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.process.wait()

    def __enter__(self) -> WorkerProcess:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def _rss(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def _children(pid: int) -> list[int]:
    """Direct children of ``pid`` from /proc (Linux), so a kill leaves no orphaned pool process."""
    path = Path(f"/proc/{pid}/task/{pid}/children")
    try:
        return [int(p) for p in path.read_text().split()]
    except OSError:
        return []
