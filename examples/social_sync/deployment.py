"""Everything one demo run puts on the broker, in Redis and in processes, and taking it away.

A run has its own prefix, so its delay topology, work queues and Redis keys never meet another
run's; :meth:`Deployment.teardown` deletes all of them (also after Ctrl-C), and stops the
workers first so nothing is re-created behind its back.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from celery import Celery
from kombu import Connection

from celery_dlx import Settings, Topology
from celery_dlx.testing.worker import WorkerProcess, queue_counts

from .app import Config
from .roster import NETWORKS

ROOT = Path(__file__).resolve().parents[2]
APP_MODULE = "examples.social_sync.app:app"


class Deployment:
    """The run's workers (one for the network queues, one for whales with ``-c 1``, one for the
    trickle queue) and its broker entities."""

    def __init__(self, app: Celery, config: Config, logdir: Path) -> None:
        self.app = app
        self.config = config
        self.logdir = logdir
        self.topology = Topology(Settings.from_conf(app.conf))
        env = config.to_env()
        self.workers = {
            name: WorkerProcess(APP_MODULE, queues, config.broker_url, concurrency=concurrency, env=env, cwd=ROOT,
                                logfile=logdir / f"{name}.log")
            for name, queues, concurrency in (
                ("networks", [config.queue(network) for network in NETWORKS], 3),
                ("whales", [config.whale_queue], 1),
                ("trickle", [config.trickle_queue], 1),
            )
        }  # fmt: skip

    @property
    def work_queues(self) -> list[str]:
        return [queue.name for queue in self.config.queues()]

    @property
    def delay_queues(self) -> list[str]:
        return [queue.name for queue in self.topology.level_queues]

    def declare(self) -> None:
        """Declare the delay topology and the work queues ahead, as a release step would."""
        with Connection(self.config.broker_url) as conn:
            self.topology.declare(conn, self.config.queues())

    def start_workers(self) -> None:
        """Start the workers side by side; return once each consumes its queues."""
        with ThreadPoolExecutor(len(self.workers)) as pool:
            list(pool.map(WorkerProcess.start, self.workers.values()))

    def exited(self) -> list[str]:
        """Names of the workers whose process has exited."""
        return [name for name, worker in self.workers.items() if worker.process and worker.process.poll() is not None]

    def rss(self) -> dict[str, int]:
        """Resident memory of each worker (with its pool processes), in bytes."""
        return {name: worker.rss_bytes() for name, worker in self.workers.items()}

    def waiting(self) -> dict[str, int]:
        """Messages ready in each delay queue and in the parking queue (passive declares)."""
        names = [*self.delay_queues, self.topology.parking_queue.name]
        return {name: ready for name, (ready, _) in queue_counts(self.config.broker_url, names).items()}

    def teardown(self, task_ids: Callable[[], Iterable[str]]) -> None:
        """Stop the workers, then delete the results of the tasks ``task_ids()`` names (asked
        once no worker can add one), every Redis key of the run, the delay topology and the
        work queues.  Each step runs even if an earlier one failed."""
        steps = (
            self._stop_workers,
            lambda: self._forget(task_ids()),
            self._delete_keys,
            self._delete_broker_entities,
        )
        for step in steps:
            try:
                step()
            except Exception as error:
                print(f"cleanup step failed: {error!r}", file=sys.stderr)

    def _stop_workers(self) -> None:
        """Cold shutdown (a warm one takes seconds longer): whatever a worker would still finish
        is deleted next anyway."""
        with ThreadPoolExecutor(len(self.workers)) as pool:
            list(pool.map(lambda worker: worker.stop(warm=False), self.workers.values()))

    def _forget(self, task_ids: Iterable[str]) -> None:
        for task_id in task_ids:
            self.app.AsyncResult(task_id).forget()

    def _delete_keys(self) -> None:
        store = self.app.backend.client
        # The run's keys, and its limiter's (their hash tag, the limiter's prefix, comes first).
        patterns = (f"{self.config.prefix}:*", "{" + f"{self.config.prefix}:*")
        keys = [key for pattern in patterns for key in store.scan_iter(match=pattern, count=1000)]
        for start in range(0, len(keys), 1000):
            store.delete(*keys[start : start + 1000])

    def _delete_broker_entities(self) -> None:
        with Connection(self.config.broker_url) as conn:
            self.topology.delete(conn)
            channel = conn.default_channel
            for name in self.work_queues:
                channel.queue_delete(name)
                channel.exchange_delete(name)
