"""delayed_retry with a real worker against the real broker."""

from __future__ import annotations

import random
import statistics
import time
from collections.abc import Callable

import pika
import pytest
from celery.result import AsyncResult

from celery_dlx import DelayLevels
from celery_dlx.compat import QUORUM_WORK_QUEUES
from celery_dlx.testing.worker import queue_counts

from ..support import rabbitmqctl
from .conftest import DLXEnv
from .dlx_app import BROKER_URL

pytestmark = pytest.mark.integration
QUEUE_TYPES = ["classic", "quorum"]


@pytest.mark.parametrize("queue_type", QUEUE_TYPES)
@pytest.mark.parametrize("acks_late", [False, True], ids=["acks_early", "acks_late"])
def test_task_failing_n_times_arrives_n_plus_one_times(make_env: Callable[..., DLXEnv], queue_type: str, acks_late: bool) -> None:
    dlx = make_env(queue_type=queue_type, acks_late=acks_late)
    key = dlx.key()
    result = dlx.app.tasks["it.flaky"].delay(key, 3, 0.2)
    arrivals = dlx.arrivals(key, 4, timeout=20)
    assert [a["retries"] for a in arrivals] == [0, 1, 2, 3]
    assert {a["id"] for a in arrivals} == {result.id}
    for arrival in arrivals[1:]:
        assert arrival["t"] >= arrival["due"], "delivered before it was due"
        assert arrival["queue"] == dlx.queues[0]
    assert result.get(timeout=10) == "done"


@pytest.mark.compat
@pytest.mark.parametrize("queue_type", QUEUE_TYPES)
def test_twenty_five_retries_through_the_same_delay_queues_all_arrive(make_env: Callable[..., DLXEnv], queue_type: str) -> None:
    """The x-death cycle case: RabbitMQ < 4.0.1 drops a message that died in the same queue before;
    past 20 it is also the quorum delivery-limit of RabbitMQ 4.x (a retry is a new message: no limit)."""
    dlx = make_env(queue_type=queue_type)
    key = dlx.key()
    dlx.app.tasks["it.flaky"].delay(key, 25, 0.05)
    arrivals = dlx.arrivals(key, 26, timeout=40)
    assert [a["retries"] for a in arrivals] == list(range(26))
    hops = DelayLevels().plan(0.05).hops
    # Every retry starts with a clean dead-letter history: only this trip's hops are recorded.
    assert all(a["x_death"] == hops for a in arrivals[1:])


@pytest.mark.parametrize("queue_type", QUEUE_TYPES)
def test_delay_of_2_5_s_is_never_early_and_within_half_a_second(make_env: Callable[..., DLXEnv], queue_type: str) -> None:
    dlx = make_env(queue_type=queue_type)
    key = dlx.key()
    dlx.app.tasks["it.flaky"].delay(key, 1, 2.5)
    first, second = dlx.arrivals(key, 2, timeout=15)
    lateness = second["t"] - second["due"]
    assert 0 <= lateness < 0.5, lateness
    assert second["t"] - first["t"] >= 2.5


@pytest.mark.compat
def test_eta_retry_arrives_at_the_eta_not_before(make_env: Callable[..., DLXEnv]) -> None:
    dlx = make_env()
    key = dlx.key()
    eta = time.time() + 1.5
    dlx.app.tasks["it.eta"].delay(key, eta)
    _first, second = dlx.arrivals(key, 2, timeout=10)
    assert eta <= second["t"] < eta + 0.5


def test_retry_to_another_queue_arrives_there(make_env: Callable[..., DLXEnv], observer: pika.BlockingConnection) -> None:
    dlx = make_env(extra_queues=1, consume=["main"])
    other = dlx.queues[1]
    key = dlx.key()
    result = dlx.app.tasks["it.flaky"].delay(key, 1, 0.3, other)
    dlx.arrivals(key, 1, timeout=10)
    deadline = time.monotonic() + 10
    while queue_counts(BROKER_URL, [other])[other][0] == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    channel = observer.channel()
    method, properties, _ = channel.basic_get(other, auto_ack=True)
    channel.close()
    assert method is not None, "the retry did not arrive in the other queue"
    assert properties.headers["id"] == result.id
    assert properties.headers["retries"] == 1
    assert properties.headers["dlx_queue"] == other


@pytest.mark.parametrize("queue_type", QUEUE_TYPES)
def test_5000_pending_retries_leave_the_worker_holding_nothing(make_env: Callable[..., DLXEnv], queue_type: str) -> None:
    dlx = make_env(queue_type=queue_type)
    flaky = dlx.app.tasks["it.flaky"]
    key = dlx.key()
    with dlx.app.producer_or_acquire() as producer:
        for _ in range(5000):
            flaky.apply_async((key, 1, 60), producer=producer)
    deadline = time.monotonic() + 180
    while dlx.pending_in_delay_queues() < 5000 and time.monotonic() < deadline:
        time.sleep(0.5)
    assert dlx.pending_in_delay_queues() == 5000
    assert dlx.store.llen(key) == 5000
    # Independent observer: rabbitmqctl's view of unacknowledged messages on the work queue and
    # on every channel of the broker's connections.
    out = rabbitmqctl("list_queues", "name", "messages_unacknowledged")
    unacked = {name: int(n) for name, n in (line.split() for line in out.splitlines() if line.startswith(dlx.prefix))}
    assert unacked[dlx.queues[0]] == 0
    assert sum(unacked.values()) == 0


@pytest.mark.compat
def test_max_retries_is_honoured_and_exc_reraised(make_env: Callable[..., DLXEnv]) -> None:
    dlx = make_env()
    key = dlx.key()
    result = dlx.app.tasks["it.plain_flaky"].delay(key, 5, 0.1)
    with pytest.raises(RuntimeError, match="attempt 2"):
        result.get(timeout=15)
    time.sleep(0.5)
    assert [a["retries"] for a in dlx.arrivals(key, 3, timeout=1)] == [0, 1, 2]


@pytest.mark.compat
def test_pending_retry_is_in_retry_state_and_keeps_root_and_parent(make_env: Callable[..., DLXEnv]) -> None:
    dlx = make_env()
    key = dlx.key()
    parent = dlx.app.tasks["it.spawn"].delay(key, 3.0)
    spawned, child_first = dlx.arrivals(key, 2, timeout=10)
    child = AsyncResult(child_first["id"], app=dlx.app)
    deadline = time.monotonic() + 2.5
    while child.state != "RETRY" and time.monotonic() < deadline:
        time.sleep(0.05)
    assert child.state == "RETRY"
    child_second = dlx.arrivals(key, 3, timeout=10)[2]
    assert child_second["id"] == child_first["id"]
    assert child_second["root_id"] == child_first["root_id"] == parent.id == spawned["id"]
    assert child_second["parent_id"] == child_first["parent_id"] == parent.id


@pytest.mark.compat
@pytest.mark.skipif(not QUORUM_WORK_QUEUES, reason="Celery < 5.5 workers cannot consume quorum queues (global QoS)")
def test_quorum_work_queue(make_env: Callable[..., DLXEnv]) -> None:
    dlx = make_env(queue_type="quorum", work_queue_type="quorum")
    key = dlx.key()
    dlx.app.tasks["it.flaky"].delay(key, 2, 0.2)
    assert [a["retries"] for a in dlx.arrivals(key, 3, timeout=15)] == [0, 1, 2]


def _set_reject_policy(dlx: DLXEnv) -> None:
    rabbitmqctl(
        "set_policy", "--apply-to", "queues", f"{dlx.prefix}-full",
        f"^{dlx.prefix}\\.delay\\.", '{"max-length": 0, "overflow": "reject-publish"}',
    )  # fmt: skip


def _clear_reject_policy(dlx: DLXEnv) -> None:
    rabbitmqctl("clear_policy", f"{dlx.prefix}-full")


def test_unconfirmed_retry_fails_the_task_loudly(make_env: Callable[..., DLXEnv]) -> None:
    """The broker refuses (nacks) the retry: with acks_late off the task ends in FAILURE, not silence."""
    dlx = make_env()
    _set_reject_policy(dlx)
    try:
        key = dlx.key()
        result = dlx.app.tasks["it.flaky"].delay(key, 1, 0.5)
        with pytest.raises(Exception) as failure:
            result.get(timeout=20)
        assert "RetryPublishError" in type(failure.value).__name__ + repr(failure.value)
        assert "not confirmed" in str(failure.value)
    finally:
        _clear_reject_policy(dlx)


@pytest.mark.compat
def test_unconfirmed_retry_is_requeued_with_acks_late_and_nothing_is_lost(make_env: Callable[..., DLXEnv]) -> None:
    dlx = make_env(acks_late=True)
    _set_reject_policy(dlx)
    key = dlx.key()
    try:
        result = dlx.app.tasks["it.flaky"].delay(key, 1, 0.2)
        first_two = dlx.arrivals(key, 2, timeout=20)
        assert [a["retries"] for a in first_two] == [0, 0], "the refused retry must be redelivered as it was"
    finally:
        _clear_reject_policy(dlx)
    assert result.get(timeout=20) == "done"
    arrivals = dlx.store.lrange(key, 0, -1)
    assert len(arrivals) >= 3


def test_lateness_of_random_delays(make_env: Callable[..., DLXEnv]) -> None:
    """200 retries with random delays 0.1-3 s: none early (the full 1 000 run is in benchmarks/)."""
    dlx = make_env()
    key = dlx.key()
    rng = random.Random(7)
    flaky = dlx.app.tasks["it.flaky"]
    with dlx.app.producer_or_acquire() as producer:
        for _ in range(200):
            flaky.apply_async((key, 1, round(rng.uniform(0.1, 3.0), 3)), producer=producer)
    arrivals = dlx.arrivals(key, 400, timeout=60)
    late = [a["t"] - a["due"] for a in arrivals if a["retries"] == 1]
    assert len(late) == 200
    assert min(late) >= 0, f"{sum(x < 0 for x in late)} early arrivals"
    assert statistics.median(late) < 0.25
