"""The delay topology in the real broker, observed with pika and rabbitmqctl."""

from __future__ import annotations

import time
from collections.abc import Callable

import pika
import pytest
from kombu import Connection

from celery_dlx import Topology, TopologyMismatch
from celery_dlx.testing.worker import queue_counts

from ..support import rabbitmqctl
from .conftest import DLXEnv
from .dlx_app import BROKER_URL

pytestmark = pytest.mark.integration


def declare(dlx: DLXEnv) -> None:
    with Connection(BROKER_URL) as conn:
        dlx.topology.declare(conn, [dlx.app.amqp.queues[name] for name in dlx.queues])


def broker_queues(prefix: str) -> dict[str, list[str]]:
    out = rabbitmqctl("list_queues", "name", "type", "arguments")
    return {line.split("\t")[0]: line.split("\t")[1:] for line in out.splitlines() if line.startswith(prefix)}


@pytest.mark.parametrize("queue_type", ["classic", "quorum"])
def test_declare_is_idempotent_and_bounded(make_env: Callable[..., DLXEnv], queue_type: str) -> None:
    dlx = make_env(queue_type=queue_type, worker=False)
    declare(dlx)
    declare(dlx)
    queues = broker_queues(dlx.prefix)
    delay_queues = [name for name in queues if ".delay." in name]
    assert len(delay_queues) == 28
    assert len(delay_queues) + 1 <= 40  # with the parking queue
    assert f"{dlx.prefix}.parking" in queues
    for name in delay_queues:
        kind, arguments = queues[name]
        assert kind == queue_type
        assert "x-message-ttl" in arguments and "x-dead-letter-exchange" in arguments
        if queue_type == "quorum":
            assert "at-least-once" in arguments and "reject-publish" in arguments


def test_mismatch_names_the_entity_and_argument(make_env: Callable[..., DLXEnv], observer: pika.BlockingConnection) -> None:
    dlx = make_env(worker=False)
    level3 = dlx.topology.level_queue(3)
    channel = observer.channel()
    channel.queue_declare(level3.name, durable=True, arguments={"x-message-ttl": 12345})
    channel.close()
    with pytest.raises(TopologyMismatch) as raised:
        declare(dlx)
    (entity, detail), = raised.value.mismatches
    assert entity == f"queue {level3.name}"
    assert "x-message-ttl" in detail
    assert level3.name in str(raised.value) and "x-message-ttl" in str(raised.value)


def test_unknown_destination_is_parked_not_dropped(make_env: Callable[..., DLXEnv], observer: pika.BlockingConnection) -> None:
    dlx = make_env(worker=False)
    declare(dlx)
    channel = observer.channel()
    channel.confirm_delivery()
    channel.basic_publish(
        dlx.topology.deliver_exchange.name,
        "0",
        b"{}",
        pika.BasicProperties(headers={"dlx_queue": "no-such-queue"}, delivery_mode=2),
        mandatory=True,
    )
    channel.close()
    parking = dlx.topology.parking_queue.name
    assert queue_counts(BROKER_URL, [parking])[parking][0] == 1


@pytest.mark.parametrize("queue_type", ["classic", "quorum"])
def test_delay_queues_expire_with_no_consumer_and_never_early(
    make_env: Callable[..., DLXEnv], observer: pika.BlockingConnection, queue_type: str
) -> None:
    """Messages leave TTL queues that have no consumer (rabbitmq-server#10718 reports quorum ones may not)."""
    dlx = make_env(queue_type=queue_type, worker=False)
    declare(dlx)
    work = dlx.queues[0]
    levels = dlx.topology.settings.levels
    channel = observer.channel()
    channel.confirm_delivery()
    delays = [0.0, 0.07, 0.35, 1.27]
    sent = {}
    for delay in delays:
        route = levels.plan(delay)
        sent[delay] = time.time()
        channel.basic_publish(
            dlx.topology.entry_exchange(route).name,
            route.routing_key,
            str(delay).encode(),
            pika.BasicProperties(headers={"dlx_queue": work}, delivery_mode=2),
            mandatory=True,
        )
    arrived: dict[float, float] = {}
    deadline = time.monotonic() + 10
    while len(arrived) < len(delays) and time.monotonic() < deadline:
        method, _, body = channel.basic_get(work, auto_ack=True)
        if method is None:
            time.sleep(0.002)
            continue
        arrived[float(body)] = time.time()
    channel.close()
    assert sorted(arrived) == delays
    for delay in delays:
        assert arrived[delay] - sent[delay] >= delay, f"{delay} s arrived early"
        assert arrived[delay] - sent[delay] < delay + 0.5


def test_a_drifted_topology_fails_retries_fast_without_redeclaring(
    make_env: Callable[..., DLXEnv], observer: pika.BlockingConnection, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One declare finds the drift; the next retries in the process fail with the same report
    without ~90 declarations (and broker channel errors) each."""
    from celery_dlx.broker.publish import publisher_for

    dlx = make_env(worker=False)
    channel = observer.channel()
    channel.queue_declare(dlx.topology.level_queue(2).name, durable=True, arguments={"x-message-ttl": 1})
    channel.close()
    task = dlx.app.tasks["it.flaky"]
    publisher_for(dlx.app)
    declares: list[int] = []
    real_declare = Topology.declare
    monkeypatch.setattr(Topology, "declare", lambda *a, **k: (declares.append(1), real_declare(*a, **k)))
    for attempt in range(3):
        task.push_request(id=f"t{attempt}", retries=0, called_directly=False, is_eager=False,
                          delivery_info={"exchange": "", "routing_key": dlx.queues[0]})  # fmt: skip
        try:
            with pytest.raises(TopologyMismatch, match=r"delay\.10ms\.L02.*x-message-ttl"):
                task.delayed_retry(countdown=1)
        finally:
            task.pop_request()
    assert len(declares) == 1
