"""pytest plugin: test celery_dlx apps against the real broker, with a real worker, fast.

Registered through the ``pytest11`` entry point but opt-in: it only adds fixtures and ini
options, and nothing happens until a test uses ``dlx_worker``.  Override ``dlx_app`` to return
your Celery app::

    @pytest.fixture
    def dlx_app():
        from proj.celery import app
        return app

    def test_retries_after_the_reset(dlx_worker):
        result = sync_followers.delay(42)
        assert result.get(timeout=5) == "synced"
        assert [r.delay for r in dlx_worker.history(result.id)] == [900.0]

``dlx_worker`` gives the test session its own RabbitMQ virtual host (deleted afterwards), gives
each test its own delay topology (a unique ``dlx_prefix``), sets ``dlx_time_scale`` (ini option,
default 0.001: a 15-minute retry takes 0.9 s) with ``CELERY_DLX_TEST_MODE=1`` so it is allowed,
plans delays exactly (``dlx_precision=0`` unless the app sets it: a history shows the scaled delay
itself, not one rounded up by up to 1/8), and runs a worker for the app in a thread.  Creating a virtual host needs ``rabbitmqctl`` on the
machine, or ``DLX_RABBITMQCTL`` set to a command that runs it (e.g. in a container).
``DLX_TEST_BROKER_URL`` (optional) replaces the app's broker URL for the tests: its virtual host
is swapped for the session's.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from celery import Celery
from celery.contrib.testing.worker import start_worker
from kombu import Connection

from ..broker.topology import Topology
from ..settings import TEST_MODE_ENV, Settings
from ..signals import retry_published
from .worker import queue_counts

#: Runs the tests on another broker than the app's own (e.g. a RabbitMQ 4 node beside 3.x);
#: ``DLX_RABBITMQCTL`` must then run that broker's rabbitmqctl.
BROKER_ENV = "DLX_TEST_BROKER_URL"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addini("dlx_time_scale", "factor applied to every celery_dlx delay under dlx_worker", default="0.001")


@dataclass(frozen=True)
class RetryRecord:
    """One delayed retry a task published: which attempt, the delay asked and why."""

    task_id: str
    task_name: str
    attempt: int
    delay: float
    planned: float
    queue: str
    exc: str | None
    verdict: Any


class DLXTestRun:
    """What a test can ask about the celery_dlx side of its run."""

    def __init__(self, app: Celery, topology: Topology, broker_url: str) -> None:
        self.app = app
        self.topology = topology
        self.broker_url = broker_url
        self._history: list[RetryRecord] = []
        self._lock = threading.Lock()

    def record(self, sender: Any, request: Any, retries: int, delay: float, planned: float, queue: str,
               exc: BaseException | None, **_: Any) -> None:  # fmt: skip
        """``retry_published`` receiver."""
        with self._lock:
            self._history.append(
                RetryRecord(
                    task_id=request.id, task_name=sender.name, attempt=retries, delay=delay, planned=planned,
                    queue=queue, exc=repr(exc) if exc is not None else None, verdict=getattr(exc, "verdict", None),
                )
            )  # fmt: skip

    def history(self, task_id: str | None = None) -> list[RetryRecord]:
        """Retries published so far, of one task id or of all, in order."""
        with self._lock:
            return [r for r in self._history if task_id is None or r.task_id == task_id]

    def pending(self) -> dict[int, int]:
        """Messages waiting in each delay level (levels with none are left out)."""
        names = {q.name: level for level, q in enumerate(self.topology.level_queues)}
        counts = queue_counts(self.broker_url, names)
        return {names[name]: ready for name, (ready, _) in counts.items() if ready}

    def parked(self) -> list[dict[str, Any]]:
        """Messages in the parking queue (headers and routing key), left in place."""
        found: list[dict[str, Any]] = []
        with Connection(self.broker_url) as conn:
            channel = conn.channel()
            while (message := channel.basic_get(self.topology.parking_queue.name, no_ack=False)) is not None:
                found.append({"headers": dict(message.headers or {}), "routing_key": message.delivery_info.get("routing_key")})
            channel.close()  # unacknowledged: everything goes back to the queue
        return found


def _rabbitmqctl(*args: str) -> None:
    command = shlex.split(os.environ.get("DLX_RABBITMQCTL", "rabbitmqctl"))
    try:
        subprocess.run([*command, "-q", *args], check=True, capture_output=True, text=True, timeout=120)
    except (OSError, subprocess.CalledProcessError) as exc:
        detail = getattr(exc, "stderr", "") or exc
        raise pytest.UsageError(
            f"celery_dlx needs rabbitmqctl to give the tests their own virtual host ({' '.join(command)} {' '.join(args)}: "
            f"{detail}). Set DLX_RABBITMQCTL to a command that runs rabbitmqctl against your broker."
        ) from exc


@pytest.fixture
def dlx_app() -> Celery:
    """Override this fixture to return the Celery app under test."""
    raise pytest.UsageError("override the dlx_app fixture to return your Celery app")


@pytest.fixture(scope="session")
def dlx_vhost() -> Iterator[str]:
    """A RabbitMQ virtual host for this test session only; deleted with everything in it afterwards."""
    name = f"dlx-test-{uuid.uuid4().hex[:10]}"
    _rabbitmqctl("add_vhost", name)
    try:
        user = os.environ.get("DLX_TEST_BROKER_USER", "guest")
        _rabbitmqctl("set_permissions", "-p", name, user, ".*", ".*", ".*")
        yield name
    finally:
        _rabbitmqctl("delete_vhost", name)


@pytest.fixture
def dlx_worker(
    dlx_app: Celery, dlx_vhost: str, pytestconfig: pytest.Config, monkeypatch: pytest.MonkeyPatch
) -> Iterator[DLXTestRun]:
    """Run ``dlx_app`` in a worker thread on the session's virtual host, delays time-scaled."""
    app = dlx_app
    monkeypatch.setenv(TEST_MODE_ENV, "1")
    saved = {key: app.conf.get(key) for key in ("broker_url", "dlx_prefix", "dlx_time_scale", "dlx_precision")}
    base_url = os.environ.get(BROKER_ENV) or app.conf.broker_url or "amqp://"
    broker_url = Connection(base_url).clone(virtual_host=dlx_vhost).as_uri(include_password=True)
    app.close()  # drop pooled connections to the app's own broker
    app.conf.update(
        broker_url=broker_url,
        dlx_prefix=f"dlxt.{uuid.uuid4().hex[:8]}",
        dlx_time_scale=float(pytestconfig.getini("dlx_time_scale")),
        dlx_precision=0 if saved["dlx_precision"] is None else saved["dlx_precision"],
    )
    run = DLXTestRun(app, Topology(Settings.from_conf(app.conf)), broker_url)
    retry_published.connect(run.record, weak=False)
    try:
        with Connection(broker_url) as conn:
            run.topology.declare(conn, app.amqp.queues.values())
        with start_worker(app, pool="solo", perform_ping_check=False, shutdown_timeout=10):
            yield run
    finally:
        retry_published.disconnect(run.record)
        _delete_topology(run)
        app.close()
        app.conf.update(saved)


def _delete_topology(run: DLXTestRun) -> None:
    """Remove this test's delay topology and empty the app's work queues for the next test."""
    with Connection(run.broker_url) as conn:
        run.topology.delete(conn)
        for name in run.app.amqp.queues:
            with conn.channel() as channel:
                try:
                    channel.queue_purge(name)
                except conn.channel_errors:
                    pass  # never declared in this virtual host
