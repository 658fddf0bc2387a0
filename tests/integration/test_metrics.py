"""Prometheus metrics against the real broker and Redis: counters equal what a worker did,
gauges equal ``celery dlx status --json``, a dependency down gives partial metrics."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pika
import pytest
import redis
import yaml
from kombu import Connection, Producer
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from celery_dlx.breaker import FAILURE
from celery_dlx.breaker.tasks import breaker_for
from celery_dlx.metrics import DLXCollector, build_registry, per_minute
from celery_dlx.metrics.counters import metrics_prefix
from celery_dlx.parking.lot import ParkingLot
from celery_dlx.ratelimit import Limit, Limiter, RedisStorage
from celery_dlx.testing.worker import WorkerProcess, wait_until

from ..support import ROOT
from .conftest import DLXEnv, _cleanup, require
from .dlx_app import BROKER_URL
from .metrics_app import BREAKER, make_metrics_app
from .test_verify import MANAGEMENT_URL

pytestmark = pytest.mark.integration

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]

FLAKY, FAILS = 4, 2  # it.flaky tasks, each retried FAILS times, then done
DOOMED = 3  # it.until_fixed tasks: one retry each, then parked (max_retries=1)
THROTTLED = 3  # mx.throttled tasks under "1/1 hour": one admitted, the others deferred
GUARDED = 2  # mx.guarded tasks behind an open breaker: all deferred


def scrape(app: Any) -> Samples:
    """One scrape of ``app``'s registry, parsed as Prometheus would."""
    return parse(generate_latest(build_registry(app)).decode())


def parse(text: str) -> Samples:
    """The samples of an exposition."""
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def exported(app: Any) -> set[str]:
    """Every name a scrape of ``app`` can show: families (with a counter's ``_total``), and samples."""
    text = generate_latest(build_registry(app)).decode()
    names: set[str] = set()
    for family in text_string_to_metric_families(text):
        names |= {family.name, f"{family.name}_total"} | {sample.name for sample in family.samples}
    return names


def value(samples: Samples, metric: str, /, **labels: str) -> float | None:
    return samples.get((metric, frozenset(labels.items())))


@pytest.fixture(scope="module")
def worked(
    services: None, store: redis.Redis, observer: pika.BlockingConnection, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[DLXEnv, str]]:
    """A deployment whose worker retried, parked and deferred tasks, then stopped (warm)."""
    prefix = f"dlxtest.{uuid.uuid4().hex[:8]}"
    queues = [f"{prefix}.work"]
    env = {"DLX_TEST_PREFIX": prefix, "DLX_TEST_QUEUES": ",".join(queues), "DLX_MX_PREFIX": f"mxtest:{prefix}"}
    dlx = DLXEnv(prefix=prefix, queues=queues, env=env, app=make_metrics_app(env), store=store)
    breaker = breaker_for(dlx.app)
    assert breaker is not None
    assert breaker.record(BREAKER, FAILURE) == "open"
    dlx.worker = WorkerProcess(
        "tests.integration.metrics_app:app", queues, BROKER_URL, env=env, cwd=ROOT,
        logfile=tmp_path_factory.mktemp("worker") / "worker.log", extra_args=["-l", "INFO"],
    ).start()  # fmt: skip
    key = dlx.key()
    keys = {name: f"{key}:{name}" for name in ("flaky", "doomed", "throttled", "guarded")}
    dlx.keys += [*keys.values(), *(f"{k}:deferred" for k in keys.values())]
    for _ in range(FLAKY):
        dlx.app.tasks["it.flaky"].delay(keys["flaky"], FAILS, 0.05)
    for _ in range(DOOMED):
        dlx.app.tasks["it.until_fixed"].delay(keys["doomed"])
    for _ in range(THROTTLED):
        dlx.app.tasks["mx.throttled"].delay(keys["throttled"])
    for _ in range(GUARDED):
        dlx.app.tasks["mx.guarded"].delay(keys["guarded"])
    wait_until(
        lambda: store.llen(keys["flaky"]) >= FLAKY * (FAILS + 1)
        and store.llen(keys["doomed"]) >= 2 * DOOMED
        and store.llen(f"{keys['throttled']}:deferred") >= THROTTLED - 1
        and store.llen(f"{keys['guarded']}:deferred") >= GUARDED
        and observer.channel().queue_declare(dlx.topology.parking_queue.name, passive=True).method.message_count >= DOOMED,
        60,
        interval=0.1,
    )
    dlx.worker.stop(warm=True)  # a warm stop flushes every pool process's counters
    yield dlx, key
    _cleanup(observer, dlx)
    leftovers = [
        *store.scan_iter(f"{env['DLX_MX_PREFIX']}:*"),
        *store.scan_iter("{" + f"{env['DLX_MX_PREFIX']}:*"),  # the limiter's keys, tagged by its prefix
        *store.scan_iter(f"{metrics_prefix(dlx.app.conf)}:*"),
        *store.scan_iter("{" + f"{metrics_prefix(dlx.app.conf)}" + "}:*"),  # the counters, tagged by their prefix
    ]
    if leftovers:
        store.delete(*leftovers)


def test_counters_equal_what_the_worker_did(worked: tuple[DLXEnv, str]) -> None:
    dlx, key = worked
    store = dlx.store
    flaky_runs, doomed_runs = store.llen(f"{key}:flaky"), store.llen(f"{key}:doomed")
    rate_deferred, breaker_deferred = store.llen(f"{key}:throttled:deferred"), store.llen(f"{key}:guarded:deferred")
    parked = sum(1 for reason in _parked_reasons(dlx) if reason == "max_retries")
    samples = scrape(dlx.app)
    assert value(samples, "celery_dlx_up", source="redis") == 1
    assert value(samples, "celery_dlx_retries_total", task="it.flaky", reason="none") == flaky_runs - FLAKY == FLAKY * FAILS
    assert value(samples, "celery_dlx_retries_total", task="it.until_fixed", reason="RuntimeError") == doomed_runs - DOOMED
    assert value(samples, "celery_dlx_parked_total", task="it.until_fixed", reason="max_retries") == parked == DOOMED
    assert value(samples, "celery_dlx_deferrals_total", task="mx.throttled", by="ratelimit", name="mx-trickle") == rate_deferred
    assert value(samples, "celery_dlx_deferrals_total", task="mx.guarded", by="breaker", name=BREAKER) == breaker_deferred
    retries = FLAKY * FAILS + DOOMED
    assert value(samples, "celery_dlx_planned_delay_seconds_count", kind="retry") == retries
    assert value(samples, "celery_dlx_planned_delay_seconds_bucket", kind="retry", le="1.0") == retries  # 50 ms each
    assert value(samples, "celery_dlx_planned_delay_seconds_count", kind="deferral") == rate_deferred + breaker_deferred
    assert value(samples, "celery_dlx_planned_delay_seconds_bucket", kind="deferral", le="900.0") == 0  # about an hour
    assert not [name for name, _ in samples if name == "celery_dlx_retry_publish_failures_total"]
    minutes = per_minute(dlx.app, minutes=10)
    assert sum(n for _, n in minutes["retries"]) == retries
    assert sum(n for _, n in minutes["parked"]) == DOOMED
    assert minutes["retries"][-1][0] == int(time.time() // 60)


def _parked_reasons(dlx: DLXEnv) -> Iterator[str]:
    with Connection(BROKER_URL) as conn:
        for message in ParkingLot(conn, dlx.topology).browse(100):
            yield message.reason


def test_gauges_equal_celery_dlx_status(worked: tuple[DLXEnv, str]) -> None:
    dlx, _ = worked
    out = subprocess.run(
        [sys.executable, "-m", "celery", "-A", "tests.integration.metrics_app:app", "dlx", "status", "--json"],
        env={**os.environ, **dlx.env}, cwd=ROOT, capture_output=True, text=True, timeout=60, check=True,
    ).stdout  # fmt: skip
    status = json.loads(out)
    samples = scrape(dlx.app)
    assert value(samples, "celery_dlx_up", source="broker") == 1
    assert status["pending"] == THROTTLED - 1 + GUARDED
    assert value(samples, "celery_dlx_pending_messages") == status["pending"]
    for level in status["levels"]:
        got = value(samples, "celery_dlx_delay_messages", level=str(level["level"]), wait_seconds=repr(level["wait_ms"] / 1000))
        assert got == level["queue"]["messages"], level
    assert value(samples, "celery_dlx_parked_messages") == status["parking"]["messages"] == DOOMED
    for queue in status["work_queues"]:
        assert value(samples, "celery_dlx_queue_messages", queue=queue["name"]) == queue["messages"]
        assert value(samples, "celery_dlx_queue_consumers", queue=queue["name"]) == queue["consumers"]
    [snap] = status["breakers"]
    assert snap["mode"] == "open"
    assert value(samples, "celery_dlx_breaker_state", breaker=BREAKER, state="open") == 1
    assert value(samples, "celery_dlx_breaker_state", breaker=BREAKER, state="closed") == 0
    assert value(samples, "celery_dlx_breaker_waiting_tasks", breaker=BREAKER) == snap["waiting"] == GUARDED
    slot = dlx.queues[0]  # the limit's factor (the queue), as in its key: dots need no percent-encoding
    assert value(samples, "celery_dlx_ratelimit_used", limit="mx-trickle", slot=slot) == 1
    assert value(samples, "celery_dlx_ratelimit_allowed", limit="mx-trickle", slot=slot) == 1
    assert value(samples, "celery_dlx_ratelimit_window_seconds", limit="mx-trickle", slot=slot) == 3600
    assert value(samples, "celery_dlx_ratelimit_slots", limit="mx-trickle") == 1


def test_the_worker_logs_each_decision_with_its_fields(worked: tuple[DLXEnv, str]) -> None:
    dlx, _ = worked
    assert dlx.worker is not None and dlx.worker.logfile is not None
    log = Path(dlx.worker.logfile).read_text()
    assert log.count("it.flaky[") >= FLAKY * FAILS
    assert "deferral (attempt 0, breaker:mxnet)" in log
    assert "retry (attempt 1, RuntimeError)" in log


def test_a_dependency_down_gives_partial_metrics(worked: tuple[DLXEnv, str]) -> None:
    dlx, _ = worked
    no_broker = make_metrics_app(dlx.env)
    no_broker.conf.broker_url = "amqp://guest:guest@127.0.0.1:1//"
    samples = scrape(no_broker)
    assert value(samples, "celery_dlx_up", source="broker") == 0
    assert value(samples, "celery_dlx_pending_messages") is None
    assert value(samples, "celery_dlx_up", source="redis") == 1
    assert value(samples, "celery_dlx_parked_total", task="it.until_fixed", reason="max_retries") == DOOMED

    bad = "redis://127.0.0.1:1/0"
    no_redis = make_metrics_app(dlx.env)
    limiter = Limiter(RedisStorage.from_url(bad), [Limit("mx-trickle", "1/1 hour", by=("queue",))])
    no_redis.conf.update(dlx_metrics_url=bad, dlx_breaker_url=bad, dlx_metrics_limiters=[limiter])
    samples = scrape(no_redis)
    assert value(samples, "celery_dlx_up", source="redis") == 0
    assert value(samples, "celery_dlx_retries_total", task="it.flaky", reason="none") is None
    assert value(samples, "celery_dlx_up", source="broker") == 1
    assert value(samples, "celery_dlx_parked_messages") == DOOMED


def test_unacked_deliveries_come_from_the_management_api(make_env: Any, observer: pika.BlockingConnection) -> None:
    parts = urlsplit(MANAGEMENT_URL)
    require("RabbitMQ management API", parts.hostname or "127.0.0.1", parts.port or 15672)
    dlx = make_env(worker=False)
    dlx.app.conf.dlx_management_url = MANAGEMENT_URL
    queue = dlx.queues[0]
    with Connection(BROKER_URL) as conn:
        dlx.topology.declare(conn, [dlx.app.amqp.queues[queue]])
    channel = observer.channel()
    for i in range(3):
        channel.basic_publish("", queue, str(i).encode())
    held = [channel.basic_get(queue, auto_ack=False) for _ in range(2)]  # two deliveries held unacked
    assert all(method is not None for method, _, _ in held)
    # RabbitMQ's management figures are refreshed every few seconds (collect_statistics_interval).
    assert wait_until(lambda: value(scrape(dlx.app), "celery_dlx_queue_unacked_messages", queue=queue) == 2, 30, interval=1)
    samples = scrape(dlx.app)
    assert value(samples, "celery_dlx_up", source="management") == 1
    assert value(samples, "celery_dlx_queue_messages", queue=queue) == 1
    channel.close()


def test_a_scrape_counts_every_pending_message(make_env: Any) -> None:
    """Many pending messages (the 1 000 000 case is ``python -m benchmarks.metrics_bench scrape``)."""
    dlx = make_env(worker=False)
    count = 20_000
    top = len(dlx.topology.level_queues) - 1  # the longest wait: nothing expires during the test
    level = dlx.topology.level_queues[top]
    with Connection(BROKER_URL) as conn:
        dlx.topology.declare(conn)
        producer = Producer(conn.default_channel)
        for i in range(count):
            producer.publish(b"x", exchange="", routing_key=level.name, delivery_mode=1, headers={"n": i})
    wait_until(lambda: dlx.pending_in_delay_queues() >= count, 30, interval=0.1)
    samples = scrape(dlx.app)
    assert value(samples, "celery_dlx_pending_messages") == count
    wait = repr(dlx.topology.settings.levels.ttl_ms(top) / 1000)
    assert value(samples, "celery_dlx_delay_messages", level=str(top), wait_seconds=wait) == count


def test_the_alert_rules_load_and_name_metrics_the_registry_exports(worked: tuple[DLXEnv, str]) -> None:
    dlx, _ = worked
    names = exported(dlx.app)
    if "celery_dlx_queue_unacked_messages" not in names:
        # Only the management API gives it; with the API down here, its own test (which
        # requires the API, so it runs in CI) shows the name.
        assert value(scrape(dlx.app), "celery_dlx_up", source="management") == 0
        names.add("celery_dlx_queue_unacked_messages")
    rules = yaml.safe_load((ROOT / "docs" / "prometheus-alerts.yml").read_text())
    exprs = [rule["expr"] for group in rules["groups"] for rule in group["rules"]]
    assert exprs and all(rule.get("alert") and rule.get("expr") for group in rules["groups"] for rule in group["rules"])
    used = {word for expr in exprs for word in _metric_names(expr)}
    assert used and used <= names, used - names
    dashboard = json.loads((ROOT / "docs" / "grafana-dashboard.json").read_text())
    panel_names = {word for panel in dashboard["panels"] for target in panel.get("targets", []) for word in _metric_names(target["expr"])}
    assert panel_names and panel_names <= names, panel_names - names


def _metric_names(expr: str) -> set[str]:
    return set(re.findall(r"\bcelery_dlx_[a-z_]+", expr))


def test_the_exporter_serves_the_metrics_over_http(worked: tuple[DLXEnv, str]) -> None:
    dlx, _ = worked
    command = [sys.executable, "-m", "celery_dlx.metrics", "-A", "tests.integration.metrics_app:app", "--port", "0"]
    exporter = subprocess.Popen(command, env={**os.environ, **dlx.env}, cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert exporter.stdout is not None
        banner = exporter.stdout.readline()  # "... on http://127.0.0.1:<port>/metrics"
        url = re.search(r"http://\S+/metrics", banner)
        assert url, banner
        with urllib.request.urlopen(url.group(0), timeout=30) as response:
            text = response.read().decode()
    finally:
        exporter.terminate()
        exporter.wait(10)
    assert exporter.returncode == 0
    samples = parse(text)
    assert value(samples, "celery_dlx_up", source="broker") == 1
    assert value(samples, "celery_dlx_parked_messages") == DOOMED
    assert value(samples, "celery_dlx_parked_total", task="it.until_fixed", reason="max_retries") == DOOMED


def test_a_kept_broker_connection_that_died_costs_no_scrape(worked: tuple[DLXEnv, str]) -> None:
    dlx, _ = worked
    collector = DLXCollector(dlx.app)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    assert value(parse(generate_latest(registry).decode()), "celery_dlx_up", source="broker") == 1
    kept = collector._connection
    assert kept is not None
    kept.connection.sock.shutdown(socket.SHUT_RDWR)  # as if the broker or the network dropped it while idle
    samples = parse(generate_latest(registry).decode())
    assert value(samples, "celery_dlx_up", source="broker") == 1
    assert value(samples, "celery_dlx_parked_messages") == DOOMED
    assert collector._connection is not None and collector._connection is not kept


def test_retries_the_broker_did_not_confirm_are_counted(
    services: None, store: redis.Redis, observer: pika.BlockingConnection, tmp_path: Path
) -> None:
    prefix = f"dlxtest.{uuid.uuid4().hex[:8]}"
    env = {
        "DLX_TEST_PREFIX": prefix, "DLX_TEST_QUEUES": f"{prefix}.work", "DLX_MX_PREFIX": f"mxtest:{prefix}",
        "DLX_MX_AUTO_DECLARE": "0",  # no delay topology: each retry's publish fails
    }  # fmt: skip
    dlx = DLXEnv(prefix=prefix, queues=[f"{prefix}.work"], env=env, app=make_metrics_app(env), store=store)
    dlx.worker = WorkerProcess(
        "tests.integration.metrics_app:app", dlx.queues, BROKER_URL, env=env, cwd=ROOT, logfile=tmp_path / "worker.log"
    ).start()
    results: list[Any] = []
    try:
        key = dlx.key()
        results += [dlx.app.tasks["it.flaky"].delay(key, 1, 0.05) for _ in range(2)]
        assert wait_until(lambda: all(r.ready() for r in results), 30)
        assert all(r.state == "FAILURE" for r in results)
        dlx.worker.stop(warm=True)
        samples = scrape(dlx.app)
        assert value(samples, "celery_dlx_retry_publish_failures_total", task="it.flaky") == store.llen(key) == 2
        assert value(samples, "celery_dlx_retries_total", task="it.flaky", reason="none") is None
    finally:
        dlx.worker.stop(warm=False)
        _cleanup(observer, dlx)
        for result in results:
            result.forget()
