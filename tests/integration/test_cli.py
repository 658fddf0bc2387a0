"""``celery -A … dlx <verb>`` as a subprocess against the real broker, one test per behaviour.

The broker is observed independently with pika and rabbitmqctl.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from typing import Any

import pika
import pytest
import redis

from celery_dlx.parking.lot import BATCH
from celery_dlx.testing.worker import WorkerProcess, queue_counts, wait_until

from ..support import MANAGEMENT_URL, ROOT, rabbitmqctl
from .conftest import DLXEnv
from .dlx_app import BROKER_URL

pytestmark = pytest.mark.integration

APP = "tests.integration.dlx_app:app"


def dlx(env: DLXEnv, *args: str, extra_env: dict[str, str] | None = None, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run ``celery -A tests.integration.dlx_app:app dlx <args>`` for ``env``'s deployment."""
    return subprocess.run(
        [sys.executable, "-m", "celery", "-A", APP, "dlx", *args],
        env={**os.environ, "CELERY_DLX_MANAGEMENT_URL": MANAGEMENT_URL, **env.env, **(extra_env or {})},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def broker_queues(prefix: str) -> dict[str, int]:
    """Queues under ``prefix`` and their message counts, as rabbitmqctl sees them."""
    out = rabbitmqctl("list_queues", "name", "messages", "--no-table-headers")
    rows = (line.split("\t") for line in out.splitlines() if line.startswith(prefix))
    return {name: int(count) for name, count in rows}


def park_directly(
    observer: pika.BlockingConnection, env: DLXEnv, count: int, task: str = "it.flaky", destination: str | None = None
) -> list[str]:
    """Put ``count`` Celery-shaped messages into the parking queue; returns their task ids."""
    channel = observer.channel()
    channel.confirm_delivery()
    ids = []
    for _ in range(count):
        task_id = str(uuid.uuid4())
        headers: dict[str, Any] = {
            "task": task,
            "id": task_id,
            "retries": 3,
            "dlx_parked_reason": "max_retries",
            "dlx_error": "builtins.RuntimeError",
            "dlx_error_message": "gone",
            "dlx_parked_at": int(time.time()),  # pika cannot encode floats
            "dlx_queue": destination or env.queues[0],
        }
        properties = pika.BasicProperties(
            headers=headers, correlation_id=task_id, content_type="application/json", delivery_mode=2
        )
        body = json.dumps([["k", 0, 0.1], {}, {}])
        channel.basic_publish("", env.topology.parking_queue.name, body, properties)
        ids.append(task_id)
    channel.close()
    return ids


def drain_ids(observer: pika.BlockingConnection, queue: str) -> list[str]:
    """Remove every message of ``queue`` and return their task ids (in order)."""
    channel = observer.channel()
    ids = []
    while True:
        method, properties, _ = channel.basic_get(queue, auto_ack=True)
        if method is None:
            break
        ids.append((properties.headers or {}).get("id"))
    channel.close()
    return ids


def drift(observer: pika.BlockingConnection, queue: str, ttl_ms: int) -> None:
    """Re-create ``queue`` with another TTL behind celery_dlx's back."""
    channel = observer.channel()
    channel.queue_delete(queue)
    channel.queue_declare(queue, durable=True, arguments={"x-message-ttl": ttl_ms})
    channel.close()


@pytest.fixture
def declared(make_env: Callable[..., DLXEnv]) -> DLXEnv:
    env = make_env(worker=False)
    result = dlx(env, "declare")
    assert result.returncode == 0, result.stderr
    return env


@pytest.mark.compat
def test_declare_creates_the_ladder_the_parking_queue_and_the_work_queue_and_is_idempotent(make_env: Callable[..., DLXEnv]) -> None:
    env = make_env(worker=False)
    first = dlx(env, "declare")
    assert first.returncode == 0, first.stderr
    assert "declared 28 delay levels" in first.stdout
    queues = broker_queues(env.prefix)
    assert set(env.delay_queue_names) | {env.topology.parking_queue.name, env.queues[0]} == set(queues)
    again = dlx(env, "declare")
    assert again.returncode == 0, again.stderr
    assert broker_queues(env.prefix) == queues


def test_declare_reports_a_drifted_queue_and_exits_1(declared: DLXEnv, observer: pika.BlockingConnection) -> None:
    name = declared.delay_queue_names[3]
    drift(observer, name, 1)
    result = dlx(declared, "declare")
    assert result.returncode == 1
    assert name in result.stderr and "x-message-ttl" in result.stderr


def test_verify_passes_on_a_declared_topology_and_exits_1_naming_a_drifted_argument(
    declared: DLXEnv, observer: pika.BlockingConnection
) -> None:
    clean = dlx(declared, "verify")
    assert clean.returncode == 0, clean.stdout + clean.stderr
    name = declared.delay_queue_names[5]
    drift(observer, name, 999)
    drifted = dlx(declared, "verify")
    assert drifted.returncode == 1
    assert name in drifted.stdout and "x-message-ttl" in drifted.stdout
    as_json = json.loads(dlx(declared, "verify", "--json").stdout)
    assert as_json["drift"] is True


@pytest.mark.compat
def test_status_counts_pending_messages_per_level_and_parked_ones(declared: DLXEnv, observer: pika.BlockingConnection) -> None:
    level_queue = declared.delay_queue_names[20]  # 2.9 h: nothing leaves during the test
    channel = observer.channel()
    channel.confirm_delivery()
    for _ in range(3000):
        channel.basic_publish("", level_queue, b"{}", pika.BasicProperties(delivery_mode=2))
    channel.close()
    park_directly(observer, declared, 7)
    result = dlx(declared, "status", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    by_level = {level["level"]: level["queue"]["messages"] for level in report["levels"]}
    assert by_level[20] == 3000 and sum(by_level.values()) == 3000
    assert report["pending"] == 3000
    assert report["parking"]["messages"] == 7
    assert report["missing"] == []
    assert [q["name"] for q in report["work_queues"]] == [declared.queues[0]]
    text = dlx(declared, "status").stdout
    assert "delayed: 3000" in text and "L20" in text and "parked: 7" in text


def test_status_names_missing_queues_before_declare(make_env: Callable[..., DLXEnv]) -> None:
    env = make_env(worker=False)
    result = dlx(env, "status")
    assert result.returncode == 0, result.stderr
    assert "29 queue(s) missing" in result.stdout


@pytest.mark.compat
def test_an_exhausted_task_is_parked_listed_redacted_and_replayed_back_to_work(
    make_env: Callable[..., DLXEnv],
) -> None:
    env = make_env()
    key = env.key()
    env.keys.append(f"{key}:fixed")
    task_id = env.app.tasks["it.until_fixed"].delay(key).id
    env.arrivals(key, 2, timeout=30)  # the first run and its one retry
    assert wait_until(lambda: queue_counts(BROKER_URL, [env.topology.parking_queue.name])[env.topology.parking_queue.name][0] == 1, 20)

    listing = dlx(env, "parked", "--json")
    assert listing.returncode == 0, listing.stderr
    parked = json.loads(listing.stdout)
    assert parked["total"] == 1
    (message,) = parked["messages"]
    assert message["task"] == "it.until_fixed" and message["id"] == task_id
    assert message["retries"] == 1 and message["reason"] == "max_retries" and message["queue"] == env.queues[0]
    assert message["error"] == "builtins.RuntimeError" and "API down" in message["message"]
    assert "SECRET123" not in listing.stdout and "SECRET123" not in dlx(env, "parked").stdout
    assert time.time() - 60 < message["parked_at"] <= time.time()
    assert dlx(env, "parked").stdout.count("it.until_fixed") == 1  # still there after listing twice

    env.store.set(f"{key}:fixed", 1)
    replayed = dlx(env, "replay", "--reset-retries")
    assert replayed.returncode == 0, replayed.stderr
    assert "replayed 1 of 1" in replayed.stdout
    arrivals = env.arrivals(key, 3, timeout=30)
    assert arrivals[-1]["id"] == task_id and arrivals[-1]["retries"] == 0
    assert env.app.AsyncResult(task_id).get(timeout=20) == "fixed"
    assert queue_counts(BROKER_URL, [env.topology.parking_queue.name])[env.topology.parking_queue.name][0] == 0


def test_replay_filters_by_task_and_limit_and_keeps_the_rest(declared: DLXEnv, observer: pika.BlockingConnection) -> None:
    flaky = park_directly(observer, declared, 30, task="it.flaky")
    other = park_directly(observer, declared, 20, task="it.eta")
    result = dlx(declared, "replay", "--task", "it.flaky", "--limit", "25", "--json")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["moved"] == 25 and summary["to_queues"] == {declared.queues[0]: 25}
    moved = drain_ids(observer, declared.queues[0])
    assert moved == flaky[:25]
    left = drain_ids(observer, declared.topology.parking_queue.name)
    assert sorted(left) == sorted(flaky[25:] + other)


def test_replay_to_a_missing_queue_is_refused_and_messages_naming_one_stay_parked(
    declared: DLXEnv, observer: pika.BlockingConnection
) -> None:
    refused = dlx(declared, "replay", "--to", f"{declared.prefix}.nope")
    assert refused.returncode == 2 and "does not exist" in refused.stderr
    ids = park_directly(observer, declared, 3, destination=f"{declared.prefix}.gone")
    partial = dlx(declared, "replay")
    assert partial.returncode == 4
    assert f"{declared.prefix}.gone" in partial.stderr
    assert sorted(drain_ids(observer, declared.topology.parking_queue.name)) == sorted(ids)


def test_a_replay_killed_half_way_loses_nothing(declared: DLXEnv, observer: pika.BlockingConnection) -> None:
    total = 20_000
    ids = park_directly(observer, declared, total)
    work, lot = declared.queues[0], declared.topology.parking_queue.name
    process = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", APP, "dlx", "replay"],
        env={**os.environ, **declared.env},
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        assert wait_until(lambda: queue_counts(BROKER_URL, [work])[work][0] >= total // 4, 60, interval=0.02)
        process.send_signal(signal.SIGKILL)
    finally:
        process.wait(30)
    assert wait_until(lambda: queue_counts(BROKER_URL, [lot])[lot][1] == 0, 10)  # the dead consumer is gone
    replayed, still_parked = drain_ids(observer, work), drain_ids(observer, lot)
    assert 0 < len(replayed) < total  # it really was interrupted
    assert set(replayed) | set(still_parked) == set(ids)  # nothing lost
    assert len(replayed) + len(still_parked) - total <= BATCH  # at most one batch both replayed and parked


def test_purge_needs_yes_and_can_select_by_task(declared: DLXEnv, observer: pika.BlockingConnection) -> None:
    park_directly(observer, declared, 5, task="it.flaky")
    keep = park_directly(observer, declared, 4, task="it.eta")
    refused = dlx(declared, "purge")
    assert refused.returncode == 2 and "--yes" in refused.stderr
    assert broker_queues(declared.prefix)[declared.topology.parking_queue.name] == 9
    selected = dlx(declared, "purge", "--yes", "--task", "it.flaky")
    assert selected.returncode == 0, selected.stderr
    assert "deleted 5 of 9" in selected.stdout
    assert sorted(drain_ids(observer, declared.topology.parking_queue.name)) == sorted(keep)
    park_directly(observer, declared, 6)
    everything = dlx(declared, "purge", "--yes", "--json")
    assert json.loads(everything.stdout)["moved"] == 6
    assert broker_queues(declared.prefix)[declared.topology.parking_queue.name] == 0


def test_send_enqueues_now_or_after_a_countdown_held_by_the_broker(make_env: Callable[..., DLXEnv]) -> None:
    env = make_env()
    key = env.key()
    now = dlx(env, "send", "it.flaky", "--args", json.dumps([key, 0, 0.1]))
    assert now.returncode == 0, now.stderr
    (first,) = env.arrivals(key, 1, timeout=20)
    assert first["id"] == now.stdout.strip()
    sent_at = time.time()
    later = dlx(env, "send", "it.flaky", "--kwargs", json.dumps({"key": key, "fails": 0, "delay": 0.1}), "--countdown", "2.5")
    assert later.returncode == 0, later.stderr
    arrivals = env.arrivals(key, 2, timeout=30)
    assert arrivals[1]["id"] == later.stdout.strip()
    assert arrivals[1]["t"] >= sent_at + 2.5
    assert arrivals[1]["x_death"] > 0  # it waited in the delay queues, not in the worker


@pytest.mark.parametrize(
    "args, message",
    [
        (["send", "it.nope"], "no task 'it.nope'"),
        (["send", "it.flaky", "--args", "[1,"], "not valid JSON"),
        (["send", "it.flaky", "--kwargs", "[1]"], "must be a JSON object"),
        (["send", "it.flaky", "--queue", "elsewhere"], "no queue 'elsewhere'"),
        (["send", "it.flaky", "--countdown", "-1"], "--countdown"),
        (["parked", "--limit", "0"], "--limit"),
    ],
)
def test_bad_usage_exits_2_with_a_clear_message(make_env: Callable[..., DLXEnv], args: list[str], message: str) -> None:
    env = make_env(worker=False)
    result = dlx(env, *args)
    assert result.returncode == 2
    assert message in result.stderr


def test_an_unreachable_broker_exits_3(make_env: Callable[..., DLXEnv]) -> None:
    env = make_env(worker=False)
    result = dlx(env, "status", extra_env={"DLX_TEST_BROKER_URL": "amqp://guest:guest@127.0.0.1:1//"})
    assert result.returncode == 3
    assert "cannot reach the broker" in result.stderr


@pytest.mark.compat
def test_help_lists_every_verb(make_env: Callable[..., DLXEnv]) -> None:
    env = make_env(worker=False)
    result = dlx(env, "--help")
    assert result.returncode == 0
    for verb in ("declare", "verify", "status", "parked", "replay", "purge", "send"):
        assert verb in result.stdout


@pytest.mark.parametrize("mode", ["declare", "verify"])
def test_a_worker_with_the_bootstep_refuses_to_start_on_drift(
    declared: DLXEnv, observer: pika.BlockingConnection, mode: str, tmp_path: Any
) -> None:
    name = declared.delay_queue_names[2]
    drift(observer, name, 5)
    log = tmp_path / "worker.log"
    worker = WorkerProcess(
        APP, declared.queues, BROKER_URL, cwd=ROOT, logfile=log,
        env={**declared.env, "DLX_TEST_BOOTSTEP": mode, "CELERY_DLX_MANAGEMENT_URL": MANAGEMENT_URL},
    )
    with pytest.raises(RuntimeError, match="exited with code 1"):
        worker.start(timeout=60)
    text = log.read_text()
    assert "the worker does not start" in text and name in text


@pytest.mark.compat
def test_a_worker_with_the_bootstep_declares_the_topology_before_consuming(
    make_env: Callable[..., DLXEnv], store: redis.Redis, tmp_path: Any
) -> None:
    env = make_env(worker=False)
    worker = WorkerProcess(
        APP, env.queues, BROKER_URL, env={**env.env, "DLX_TEST_BOOTSTEP": "declare"}, cwd=ROOT, logfile=tmp_path / "w.log"
    )
    with worker:
        assert set(env.delay_queue_names) <= set(broker_queues(env.prefix))
        assert dlx(env, "verify").returncode == 0


def test_status_shows_each_circuit_breaker_state(make_env: Callable[..., DLXEnv], store: redis.Redis) -> None:
    from celery_dlx.breaker import FAILURE
    from celery_dlx.breaker.tasks import breaker_for

    from .breaker_app import make_app as make_breaker_app

    env = make_env(worker=False)
    breaker_env = {**env.env, "DLX_BR_PREFIX": f"{env.prefix}:breaker"}
    breaker = breaker_for(make_breaker_app(breaker_env))
    assert breaker is not None
    for _ in range(3):  # the test policy opens after 3 failures
        breaker.record("facebook", FAILURE)
    env.keys += [key.decode() for key in store.scan_iter(f"{env.prefix}:breaker*")]
    command = [sys.executable, "-m", "celery", "-A", "tests.integration.breaker_app:app", "dlx", "status"]
    run = lambda *extra: subprocess.run(  # noqa: E731
        [*command, *extra], env={**os.environ, **breaker_env}, cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    report = json.loads(run("--json").stdout)
    (facebook,) = report["breakers"]
    assert facebook["name"] == "facebook" and facebook["mode"] == "open" and facebook["probe_at"] > facebook["at"]
    text = run().stdout  # the test policy half-opens 2 s after opening: either state may show
    assert ("facebook: open" in text and "next probe in" in text) or "facebook: half_open" in text


@pytest.mark.parametrize("verb", [["parked"], ["replay"], ["purge", "--yes"], ["purge", "--yes", "--task", "it.flaky"]])
def test_lot_verbs_before_declare_say_to_declare_and_exit_1(make_env: Callable[..., DLXEnv], verb: list[str]) -> None:
    env = make_env(worker=False)
    result = dlx(env, *verb)
    assert result.returncode == 1
    assert "does not exist: run `celery dlx declare`" in result.stderr
