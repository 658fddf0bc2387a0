"""What differs between RabbitMQ 3.10 and 4.x, checked on whichever broker the suite runs on
(3.10.8 in ``make test``, 4.0.5 in strict mode in ``make test-rabbitmq4``).

The broker's version comes from ``rabbitmqctl version`` and its behaviour is observed with pika
and rabbitmqctl, independently of celery_dlx.  Two more version-difference cases live beside
the behaviour they check: 25 retries through the same delay queues (``test_retry.py``) and delay
queues without consumers expiring (``test_topology.py``, rabbitmq-server#10718).
"""

from __future__ import annotations

import time
from collections.abc import Callable

import pika
import pytest
from kombu import Connection

from celery_dlx.broker.caveats import DEFAULT_DELIVERY_LIMIT
from celery_dlx.testing.worker import queue_counts, wait_until

from ..support import rabbitmqctl
from .conftest import DLXEnv
from .dlx_app import BROKER_URL
from .test_cli import dlx

pytestmark = pytest.mark.integration


def broker_version() -> tuple[int, ...]:
    return tuple(int(part) for part in rabbitmqctl("version").strip().split(".")[:3])


def redeliver_until_gone(channel: pika.adapters.blocking_connection.BlockingChannel, queue: str, attempts: int) -> int:
    """Get and reject (requeue) the queue's one message up to ``attempts`` times; how many deliveries."""
    deliveries = 0
    for _ in range(attempts):
        method = None
        deadline = time.monotonic() + 2
        while method is None and time.monotonic() < deadline:
            method, _, _ = channel.basic_get(queue, auto_ack=False)
            if method is None:
                time.sleep(0.02)
        if method is None:
            break
        deliveries += 1
        channel.basic_reject(method.delivery_tag, requeue=True)
    return deliveries


@pytest.mark.parametrize("dead_letter", [False, True], ids=["no-dead-letter-exchange", "dead-lettered-to-parking"])
def test_a_quorum_work_queue_message_redelivered_past_twenty(
    make_env: Callable[..., DLXEnv], observer: pika.BlockingConnection, dead_letter: bool
) -> None:
    """RabbitMQ 4.x: a quorum queue's default delivery-limit (20) drops the message, or dead-letters it.

    This is what happens to a Celery task with acks_late whose worker keeps dying, or a task
    raising Reject(requeue=True) forever.  celery_dlx cannot change a work queue's arguments; it
    warns at declare/verify/status and advises the parking exchange as dead-letter exchange.
    """
    env = make_env(worker=False)
    with Connection(BROKER_URL) as conn:
        env.topology.declare(conn, [])
    queue = f"{env.prefix}.quorum-work"
    arguments = {"x-queue-type": "quorum"}
    if dead_letter:
        arguments["x-dead-letter-exchange"] = env.topology.parking_exchange.name
    channel = observer.channel()
    try:
        channel.queue_declare(queue, durable=True, arguments=arguments)
        channel.confirm_delivery()
        channel.basic_publish("", queue, b"task", pika.BasicProperties(delivery_mode=2))
        deliveries = redeliver_until_gone(channel, queue, DEFAULT_DELIVERY_LIMIT + 10)
        parked = queue_counts(BROKER_URL, [env.topology.parking_queue.name])[env.topology.parking_queue.name][0]
        if broker_version() >= (4, 0):
            # Delivered once plus 20 redeliveries, then gone from the work queue.
            assert deliveries == DEFAULT_DELIVERY_LIMIT + 1
            assert queue_counts(BROKER_URL, [queue])[queue][0] == 0
            if dead_letter:
                assert wait_until(lambda: queue_counts(BROKER_URL, [env.topology.parking_queue.name])[
                    env.topology.parking_queue.name][0] == 1, timeout=5)  # fmt: skip
            else:
                assert parked == 0, "dropped: no dead-letter exchange"
        else:
            # No default limit: the message stays, redelivered every time.
            assert deliveries == DEFAULT_DELIVERY_LIMIT + 10
            assert parked == 0
    finally:
        channel.queue_delete(queue)
        channel.close()


def test_declare_verify_and_status_name_the_broker_and_warn_about_quorum_work_queues_on_4(
    make_env: Callable[..., DLXEnv],
) -> None:
    env = make_env(worker=False, queue_type="quorum", work_queue_type="quorum")
    version = rabbitmqctl("version").strip()
    outputs = {verb: dlx(env, verb) for verb in ("declare", "verify", "status")}
    for verb, result in outputs.items():
        assert result.returncode == 0, (verb, result.stdout, result.stderr)
        assert f"broker: RabbitMQ {version}" in result.stdout, (verb, result.stdout)
        warned = f"! known issue: quorum work queue {env.queues[0]}: RabbitMQ {version} applies a default delivery-limit"
        assert (warned in result.stdout) == (broker_version() >= (4, 0)), (verb, result.stdout)


def test_no_transient_non_exclusive_queue_and_per_consumer_qos_on_4(make_env: Callable[..., DLXEnv]) -> None:
    """RabbitMQ 4.3 refuses transient non-exclusive queues and global QoS by default.

    The broker's listing shows no transient non-exclusive queue of this deployment (its queues,
    its worker's) after retries and the CLI's send, parked, replay and status; on 4.x the
    worker's prefetch is per consumer, on 3.x kombu makes it channel-wide (global).
    """
    env = make_env(queue_type="quorum")
    assert env.worker is not None
    node = env.worker.name.split("@")[0]
    key = env.key()
    env.app.tasks["it.flaky"].delay(key, 2, 0.2)
    assert dlx(env, "send", "it.flaky", "--args", f'["{key}", 0, 0.2]', "--countdown", "0.3").returncode == 0
    env.arrivals(key, 4, timeout=20)
    for verb in (("parked",), ("replay",), ("status",)):
        assert dlx(env, *verb).returncode in (0, 4), verb

    def ours(name: str) -> bool:
        return name.startswith(env.prefix) or node in name

    rows = [line.split("\t") for line in rabbitmqctl("list_queues", "name", "durable", "exclusive", "--no-table-headers").splitlines()]
    mine = [row for row in rows if ours(row[0])]
    assert mine, "the listing shows none of this deployment's queues"
    assert [row for row in mine if row[1:] == ["false", "false"]] == []
    consumers = [
        row for row in (line.split("\t") for line in rabbitmqctl(
            "list_consumers", "queue_name", "channel_pid", "prefetch_count", "--no-table-headers").splitlines())
        if len(row) == 3 and row[0] in env.queues
    ]  # fmt: skip
    assert consumers, "the worker consumes none of this deployment's work queues"
    if broker_version() >= (4, 0):
        # kombu asks RabbitMQ 4 for per-consumer QoS (4.3 refuses global QoS; 4.x lists no global prefetch).
        assert all(int(prefetch) > 0 for _, _, prefetch in consumers), consumers
    else:
        # On 3.x kombu sets Celery's prefetch as channel-wide (global) QoS on classic work queues.
        pids = {pid for _, pid, _ in consumers}
        channels = rabbitmqctl("list_channels", "pid", "global_prefetch_count", "--no-table-headers").splitlines()
        global_qos = {pid: int(count) for pid, count in (line.split("\t") for line in channels) if pid in pids}
        assert set(global_qos) == pids and all(count > 0 for count in global_qos.values()), global_qos


def test_the_readme_lazy_policy_advice_for_classic_delay_queues_per_version(
    make_env: Callable[..., DLXEnv], observer: pika.BlockingConnection
) -> None:
    """README: classic delay queues keep pending retries in RAM before 3.12, a `queue-mode: lazy`
    policy pages them out; from 3.12 (CQv2, the only classic queue on 4.x) they page by themselves.
    celery_dlx never declares `x-queue-mode` (RabbitMQ 4.3 refuses that argument)."""
    env = make_env(worker=False)
    with Connection(BROKER_URL) as conn:
        env.topology.declare(conn, [])
    assert not any("x-queue-mode" in q.queue_arguments for q in env.topology.level_queues)
    plain, lazy = env.delay_queue_names[20], env.delay_queue_names[21]  # 2.9 h and 5.8 h: nothing leaves
    rabbitmqctl("set_policy", "--apply-to", "queues", f"{env.prefix}-lazy", f"^{lazy.replace('.', '[.]')}$", '{"queue-mode": "lazy"}')
    try:
        channel = observer.channel()
        channel.confirm_delivery()
        for queue in (plain, lazy):
            for _ in range(1000):
                channel.basic_publish("", queue, b"x" * 1000, pika.BasicProperties(delivery_mode=2))
        channel.close()
        time.sleep(2)  # let the queues settle their paging
        listing = rabbitmqctl("list_queues", "name", "messages", "messages_ram", "--no-table-headers")
        rows = {row[0]: (int(row[1]), int(row[2])) for row in (line.split("\t") for line in listing.splitlines()) if len(row) == 3}
        (plain_total, plain_ram), (lazy_total, lazy_ram) = rows[plain], rows[lazy]
        assert plain_total == lazy_total == 1000
        assert lazy_ram == 0 or broker_version() >= (3, 12), rows[lazy]
        if broker_version() >= (3, 12):
            assert plain_ram < 50, f"{plain_ram} of 1000 in RAM without a policy"
        else:
            assert plain_ram == 1000, "RabbitMQ < 3.12 keeps a classic queue's messages in RAM: the policy is needed"
    finally:
        rabbitmqctl("clear_policy", f"{env.prefix}-lazy")
