"""The parking lot's retention (``dlx_parking_max_messages`` / ``dlx_parking_max_age``) on the
real broker, observed with rabbitmqctl and pika, independently of celery_dlx and kombu.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pika
import pytest
from kombu import Connection

from celery_dlx.errors import TopologyMismatch
from celery_dlx.testing.worker import WorkerProcess, queue_counts, wait_until

from ..support import MANAGEMENT_URL, ROOT, address, rabbitmqctl
from .conftest import DLXEnv, require
from .dlx_app import BROKER_URL
from .test_cli import dlx, drain_ids, park_directly

pytestmark = pytest.mark.integration

QUEUE_TYPES = ["classic", "quorum"]


def broker_arguments(queue: str) -> dict[str, Any]:
    """The queue's arguments as rabbitmqctl lists them (3.10's JSON: ``[[name, type, value], …]``)."""
    out = rabbitmqctl("list_queues", "name", "arguments", "--formatter", "json")
    (row,) = [row for row in json.loads(out) if row["name"] == queue]
    arguments = row["arguments"]
    if isinstance(arguments, dict):  # the shape some later versions print
        return arguments
    return {item[0]: item[-1] for item in arguments}


def depth(queue: str) -> int:
    return queue_counts(BROKER_URL, [queue])[queue][0]


def redeclare_lot(observer: pika.BlockingConnection, env: DLXEnv, arguments: dict[str, Any]) -> None:
    """Re-create the lot behind celery_dlx's back, bound like celery_dlx binds it."""
    lot = env.topology.parking_queue.name
    channel = observer.channel()
    channel.queue_delete(lot)
    channel.queue_declare(lot, durable=True, arguments=arguments)
    channel.queue_bind(lot, env.topology.parking_exchange.name, "")
    channel.close()


@pytest.mark.parametrize("queue_type", QUEUE_TYPES)
def test_declare_puts_the_retention_arguments_on_the_parking_queue(make_env: Callable[..., DLXEnv], queue_type: str) -> None:
    env = make_env(queue_type=queue_type, worker=False, parking={"max_messages": "500", "max_age": "86400"})
    assert dlx(env, "declare").returncode == 0
    arguments = broker_arguments(env.topology.parking_queue.name)
    assert arguments["x-max-length"] == 500 and arguments["x-overflow"] == "drop-head"
    assert arguments["x-message-ttl"] == 86_400_000
    assert arguments.get("x-queue-type", "classic") == queue_type


def test_the_defaults_are_100000_messages_and_30_days(make_env: Callable[..., DLXEnv]) -> None:
    env = make_env(worker=False)
    assert dlx(env, "declare").returncode == 0
    arguments = broker_arguments(env.topology.parking_queue.name)
    assert (arguments["x-max-length"], arguments["x-overflow"], arguments["x-message-ttl"]) == (
        100_000,
        "drop-head",
        30 * 86_400_000,
    )


def test_keep_everything_declares_no_limit(make_env: Callable[..., DLXEnv]) -> None:
    env = make_env(worker=False, parking={"max_messages": "none", "max_age": "0"})
    assert dlx(env, "declare").returncode == 0
    arguments = broker_arguments(env.topology.parking_queue.name)
    assert not {"x-max-length", "x-overflow", "x-message-ttl"} & set(arguments)
    text = dlx(env, "status").stdout
    assert "parked: 0 (no count limit), no age limit" in text


@pytest.mark.parametrize("queue_type", QUEUE_TYPES)
def test_a_full_lot_keeps_the_newest_and_the_worker_logs_the_drop(make_env: Callable[..., DLXEnv], queue_type: str) -> None:
    env = make_env(queue_type=queue_type, parking={"max_messages": "3", "max_age": "none"})
    assert env.worker is not None and env.worker.logfile is not None
    lot = env.topology.parking_queue.name
    ids = []
    for n in range(5):  # one at a time, so the parking order is known
        key = env.key()
        ids.append(env.app.tasks["it.until_fixed"].delay(key).id)
        env.arrivals(key, 2, timeout=30)
        log = env.worker.logfile
        assert wait_until(lambda i=ids[-1], log=log: f"[{i}] parked in {lot}" in log.read_text(), 20)
        assert depth(lot) == min(n + 1, 3)
    log_text = env.worker.logfile.read_text()
    warnings = [line for line in log_text.splitlines() if f"parking lot {lot} is full" in line]
    assert len(warnings) == 2, log_text[-3000:]
    assert all("WARNING" in line and "dropped its oldest message" in line and "=3)" in line for line in warnings)
    assert {ids[3], ids[4]} == {line.rsplit("[", 1)[1].split("]")[0] for line in warnings}

    status = json.loads(dlx(env, "status", "--json").stdout)["parking"]
    assert (status["messages"], status["max_messages"], status["full"]) == (3, 3, True)
    assert "parked: 3 / 3 max (100 %), FULL" in dlx(env, "status").stdout
    listed = json.loads(dlx(env, "parked", "--json").stdout)
    assert [m["id"] for m in listed["messages"]] == ids[2:]  # the two oldest were dropped


@pytest.mark.parametrize("queue_type", QUEUE_TYPES)
def test_the_age_limit_expires_parked_messages(
    make_env: Callable[..., DLXEnv], observer: pika.BlockingConnection, queue_type: str
) -> None:
    env = make_env(queue_type=queue_type, worker=False, parking={"max_messages": "none", "max_age": "1"})
    assert dlx(env, "declare").returncode == 0
    lot = env.topology.parking_queue.name
    park_directly(observer, env, 4)
    assert depth(lot) == 4
    assert "max age 1 s" in dlx(env, "status").stdout
    assert wait_until(lambda: depth(lot) == 0, 15)


def test_status_shows_how_full_the_lot_is(make_env: Callable[..., DLXEnv], observer: pika.BlockingConnection) -> None:
    env = make_env(worker=False, parking={"max_messages": "40", "max_age": "604800"})
    assert dlx(env, "declare").returncode == 0
    park_directly(observer, env, 10)
    text = dlx(env, "status").stdout
    assert f"parked: 10 / 40 max (25 %), max age 7 d  ({env.topology.parking_queue.name}, 0 consumer(s))" in text
    report = json.loads(dlx(env, "status", "--json").stdout)["parking"]
    assert report == {
        "name": env.topology.parking_queue.name, "messages": 10, "consumers": 0, "exists": True,
        "max_messages": 40, "max_age": 604800.0, "full": False,
    }  # fmt: skip


@pytest.mark.parametrize("how", ["management", "amqp"])
def test_verify_reports_a_lot_with_other_limits_and_says_how_to_fix_it(
    make_env: Callable[..., DLXEnv], observer: pika.BlockingConnection, how: str
) -> None:
    if how == "management":
        require("RabbitMQ management API", *address(MANAGEMENT_URL, 15672))  # skips locally, fails under CI
    env = make_env(worker=False, parking={"max_messages": "1000", "max_age": "3600"})
    assert dlx(env, "declare").returncode == 0
    lot = env.topology.parking_queue.name
    redeclare_lot(observer, env, {"x-max-length": 50, "x-overflow": "drop-head", "x-message-ttl": 3_600_000})
    result = dlx(env, "verify", *(["--amqp-only"] if how == "amqp" else []))
    assert result.returncode == 1, result.stdout
    assert ("(management API)" if how == "management" else "(AMQP)") in result.stdout
    assert f"~ queue {lot}: x-max-length expected 1000, found 50" in result.stdout
    assert "! fix: " in result.stdout and "migrate-parking" in result.stdout and "Do not delete it" in result.stdout


def test_an_upgrade_keeps_parking_into_the_old_lot_and_migrate_parking_moves_it_loss_free(
    make_env: Callable[..., DLXEnv], observer: pika.BlockingConnection
) -> None:
    """A lot from before retention existed: `declare` refuses it with the fix, the workers' way of
    declaring does not, and `migrate-parking` re-declares it keeping every message."""
    env = make_env(worker=False, parking={"max_messages": "1000", "max_age": "86400"})
    lot = env.topology.parking_queue.name
    assert dlx(env, "declare").returncode == 0
    redeclare_lot(observer, env, {})  # as celery_dlx < retention declared it
    old = park_directly(observer, env, 25)

    refused = dlx(env, "declare")
    assert refused.returncode == 1 and "migrate-parking" in refused.stderr and "Do not delete it" in refused.stderr
    with Connection(BROKER_URL) as conn:
        with pytest.raises(TopologyMismatch) as mismatch:
            env.topology.declare(conn)
        assert mismatch.value.hints and "migrate-parking" in mismatch.value.hints[0]
        env.topology.declare(conn, retention_drift="warn")  # what workers do: no error

    migrated = dlx(env, "migrate-parking", "--json")
    assert migrated.returncode == 0, migrated.stderr
    assert json.loads(migrated.stdout) == {"migrated": True, "moved_aside": 25, "moved_back": 25, "parked": 25}
    arguments = broker_arguments(lot)
    assert (arguments["x-max-length"], arguments["x-message-ttl"]) == (1000, 86_400_000)
    assert f"{lot}.migrating" not in rabbitmqctl("list_queues", "name")
    assert dlx(env, "verify").returncode == 0
    again = dlx(env, "migrate-parking")
    assert again.returncode == 0 and "already has the configured arguments (25 parked)" in again.stdout
    # Still bound to the parking exchange: a new park lands behind the old ones.
    new = park_via_exchange(observer, env)
    assert drain_ids(observer, lot) == [*old, new]


def test_a_worker_keeps_parking_into_a_lot_declared_before_retention_and_says_how_to_migrate(
    make_env: Callable[..., DLXEnv], observer: pika.BlockingConnection, tmp_path: Path
) -> None:
    env = make_env(worker=False, parking={"max_messages": "1000", "max_age": "none"})
    lot = env.topology.parking_queue.name
    assert dlx(env, "declare").returncode == 0
    redeclare_lot(observer, env, {})  # as celery_dlx < retention declared it
    log = tmp_path / "worker.log"
    with WorkerProcess("tests.integration.dlx_app:app", env.queues, BROKER_URL, env=env.env, cwd=ROOT, logfile=log):
        key = env.key()
        task_id = env.app.tasks["it.until_fixed"].delay(key).id
        env.arrivals(key, 2, timeout=30)  # its retry went through the topology the worker declared
        assert wait_until(lambda: f"[{task_id}] parked in {lot}" in log.read_text(), 20), log.read_text()[-3000:]
    assert depth(lot) == 1
    text = log.read_text()
    assert "was declared with other retention limits" in text and "migrate-parking" in text
    assert "x-max-length" not in broker_arguments(lot)  # left as it was, messages and all


def park_via_exchange(observer: pika.BlockingConnection, env: DLXEnv) -> str:
    """Publish one message to the parking exchange (as park() does), mandatory and confirmed."""
    channel = observer.channel()
    channel.confirm_delivery()
    task_id = f"via-exchange-{time.monotonic_ns()}"
    channel.basic_publish(
        env.topology.parking_exchange.name, "", b"[[], {}, {}]",
        pika.BasicProperties(headers={"id": task_id}, delivery_mode=2), mandatory=True,
    )  # fmt: skip
    channel.close()
    return task_id
