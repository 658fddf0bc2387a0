"""Fixtures that run the real services: RabbitMQ, Redis and a real Celery worker.

Outside CI a missing service skips these tests; under CI=true it fails them, so CI can never
go green by skipping.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import pika
import pytest
import redis
from celery import Celery
from kombu import Connection

from celery_dlx import Settings, Topology
from celery_dlx.metrics.counters import metrics_prefix
from celery_dlx.testing.worker import WorkerProcess, queue_counts, wait_for_arrivals

from ..support import BROKER_URL, ROOT, address, missing, reachable
from .dlx_app import REDIS_URL, make_app


def require(service: str, host: str, port: int) -> None:
    if not reachable(host, port):
        missing(f"{service} is not reachable on {host}:{port}", "integration tests")


@pytest.fixture(scope="session")
def services() -> None:
    require("RabbitMQ", *address(BROKER_URL, 5672))
    require("Redis", "127.0.0.1", 6379)


@pytest.fixture(scope="session")
def store(services: None) -> redis.Redis:
    return redis.Redis.from_url(REDIS_URL)


@pytest.fixture(scope="session")
def observer(services: None) -> Iterator[pika.BlockingConnection]:
    """An independent AMQP client (pika) for checking what the broker holds."""
    # kombu writes the default vhost as "//", pika as "/%2F".  No heartbeats: a blocking
    # connection sends none while idle, and the session holds it through minutes of other tests.
    url = BROKER_URL[:-2] + "/%2F" if BROKER_URL.endswith("//") else BROKER_URL
    parameters = pika.URLParameters(url)
    parameters.heartbeat = 0
    conn = pika.BlockingConnection(parameters)
    yield conn
    if conn.is_open:
        conn.close()


@dataclass
class DLXEnv:
    """One isolated celery_dlx deployment: its own prefix, work queues and worker."""

    prefix: str
    queues: list[str]
    env: dict[str, str]
    app: Celery
    store: redis.Redis
    worker: WorkerProcess | None = None
    keys: list[str] = field(default_factory=list)

    @property
    def topology(self) -> Topology:
        return Topology(Settings.from_conf(self.app.conf))

    @property
    def delay_queue_names(self) -> list[str]:
        return [q.name for q in self.topology.level_queues]

    def key(self) -> str:
        key = f"{self.prefix}:{uuid.uuid4().hex[:8]}"
        self.keys.append(key)
        return key

    def arrivals(self, key: str, count: int, timeout: float) -> list[dict[str, Any]]:
        """Wait until ``count`` arrivals are recorded under ``key`` and return them."""
        return wait_for_arrivals(self.store, key, count, timeout)

    def pending_in_delay_queues(self) -> int:
        return sum(ready for ready, _ in queue_counts(BROKER_URL, self.delay_queue_names).values())


def _cleanup(observer: pika.BlockingConnection, dlx: DLXEnv) -> None:
    with Connection(BROKER_URL) as conn:
        dlx.topology.delete(conn)
    channel = observer.channel()
    for name in dlx.queues:
        channel.queue_delete(queue=name)
        channel.exchange_delete(exchange=name)
    channel.close()
    # Counters the workers recorded (celery_dlx.metrics): the result backend is Redis.
    metrics = metrics_prefix(dlx.app.conf)
    keys = [*dlx.keys, *dlx.store.scan_iter(f"{metrics}:*"), *dlx.store.scan_iter("{" + metrics + "}:*")]
    if keys:
        dlx.store.delete(*keys)


@contextmanager
def _env_factory(store: redis.Redis, observer: pika.BlockingConnection, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., DLXEnv]]:
    """Factory: ``make_env(queue_type=…, acks_late=…, work_queue_type=…, extra_queues=…, worker=True)``;
    everything it made is stopped and deleted when the context ends."""
    made: list[DLXEnv] = []

    def factory(
        queue_type: str = "classic",
        acks_late: bool = False,
        work_queue_type: str = "classic",
        extra_queues: int = 0,
        worker: bool = True,
        pool: str = "prefork",
        consume: list[str] | None = None,
        parking: dict[str, str] | None = None,
    ) -> DLXEnv:
        """``consume=["main"]`` makes the worker consume only the first work queue;
        ``parking={"max_messages": "3", "max_age": "none"}`` sets the lot's retention."""
        prefix = f"dlxtest.{uuid.uuid4().hex[:8]}"
        queues = [f"{prefix}.work"] + [f"{prefix}.other{i}" for i in range(extra_queues)]
        env = {
            "DLX_TEST_PREFIX": prefix,
            "DLX_TEST_QUEUES": ",".join(queues),
            "DLX_TEST_QUEUE_TYPE": queue_type,
            "DLX_TEST_WORK_QUEUE_TYPE": work_queue_type,
            "DLX_TEST_ACKS_LATE": "1" if acks_late else "0",
            **{f"DLX_TEST_PARKING_{name.upper()}": value for name, value in (parking or {}).items()},
        }
        dlx = DLXEnv(prefix=prefix, queues=queues, env=env, app=make_app(env), store=store)
        made.append(dlx)
        if worker:
            logdir = tmp_path_factory.mktemp("worker")
            dlx.worker = WorkerProcess(
                "tests.integration.dlx_app:app",
                queues[:1] if consume == ["main"] else queues,
                BROKER_URL,
                pool=pool,
                env=env,
                cwd=ROOT,
                logfile=logdir / "worker.log",
            ).start()
        return dlx

    try:
        yield factory
    finally:
        for dlx in made:
            if dlx.worker:
                dlx.worker.stop(warm=False)
            _cleanup(observer, dlx)


@pytest.fixture
def make_env(
    services: None, store: redis.Redis, observer: pika.BlockingConnection, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Callable[..., DLXEnv]]:
    """One or more celery_dlx deployments for one test (see :func:`_env_factory`)."""
    with _env_factory(store, observer, tmp_path_factory) as factory:
        yield factory


@pytest.fixture(scope="module")
def make_module_env(
    services: None, store: redis.Redis, observer: pika.BlockingConnection, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Callable[..., DLXEnv]]:
    """Deployments shared by the tests of one module, for work measured once and checked case by case."""
    with _env_factory(store, observer, tmp_path_factory) as factory:
        yield factory
