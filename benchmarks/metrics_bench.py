"""What celery_dlx's metrics cost: the retry path with counters on and off, and a scrape with
1 000 000 retries pending.

``python -m benchmarks.metrics_bench cost [--rounds 8 --n 1000]``: section 3 of
``benchmarks.run`` (tasks that each retry once after 10 ms, through a prefork worker with two
processes) for two ``dlx_classic`` deployments side by side, one recording counters in Redis
(``DLX_BENCH_METRICS=1``) and one without Redis, in interleaved rounds (the order alternates,
so load from elsewhere on the machine hits both alike); the median rates and their ratio.  Also
the in-process cost of one retry's bookkeeping (:func:`celery_dlx.metrics.decisions.retry_published`)
and of one flush.

``python -m benchmarks.metrics_bench scrape [--pending 1000000]``: fills the highest delay
level of a fresh topology with that many small messages, then times scrapes of
``build_registry(app)`` (broker, management API, Redis counters), against the same scrapes
with nothing pending.

Both work in a virtual host of their own (``dlxbench-<random>``), deleted at the end with
everything in it, and delete their Redis keys.  Write ``benchmarks/results/metrics-<what>.md``
(``--out`` to change).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import timeit
import uuid
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import redis
from celery import Celery
from kombu import Connection, Producer
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from celery_dlx import Settings, Topology
from celery_dlx.metrics import build_registry, counters, decisions

from . import harness
from .bench_app import REDIS_URL
from .harness import LABELS, RESULTS, Cleanup, Deployment, Progress, full_mode, start_all
from .run import create_vhost
from .sections.publish import section_publish


def cost(rounds: int, n: int, rawdir: Path, cleanup: Cleanup, store: redis.Redis) -> list[str]:
    mode = full_mode()
    deps = {
        "off": Deployment("dlx_classic", store, cleanup, rawdir),
        "on": Deployment("dlx_classic", store, cleanup, rawdir, env={"DLX_BENCH_METRICS": "1"}),
    }
    progress = Progress(rounds)
    progress.start("starting two prefork workers")
    start_all(list(deps.values()))
    cleanup.push("metric keys", lambda: _delete(store, counters.metrics_prefix(deps["on"].app.conf)))
    rates: dict[str, list[float]] = {"off": [], "on": []}
    for r in range(rounds):
        for name in ("off", "on") if r % 2 == 0 else ("on", "off"):
            progress.show(f"round {r + 1}/{rounds}: counters {name}")
            result = section_publish(deps[name], n, mode.publish_cap)
            assert result["arrived"] == n, result
            rates[name].append(result["rate"])
        progress.finish()
    recorded = counters.read_counters(store, counters.metrics_prefix(deps["on"].app.conf))
    retries = sum(v for k, v in recorded.items() if k[0] == counters.RETRIES)
    off, on = statistics.median(rates["off"]), statistics.median(rates["on"])
    per_call, per_flush = _in_process()
    return [
        f"## Retry path with counters on and off ({LABELS['dlx_classic']}, prefork -c 2, {rounds} interleaved rounds of {n:,} retries)",
        "",
        "| counters | median retries/s | min | max | every round |",
        "|---|---|---|---|---|",
        *(
            f"| {name} | {statistics.median(rates[name]):.0f} | {min(rates[name]):.0f} | {max(rates[name]):.0f} | "
            + " ".join(f"{x:.0f}" for x in rates[name]) + " |"
            for name in ("off", "on")
        ),
        "",
        f"Ratio on/off of the medians: **{on / off:.3f}** ({(on / off - 1) * 100:+.1f} %).  Retries counted in Redis by the "
        f"'on' workers: {retries:,.0f} (published: {rounds * n:,}).",
        "",
        f"In-process bookkeeping of one retry (log line below INFO, buffered counters): {per_call * 1e6:.1f} µs; "
        f"one flush of a buffer of 20 series and 1 minute (one pipelined round trip): {per_flush * 1e3:.2f} ms.",
    ]


def _in_process() -> tuple[float, float]:
    """Seconds per :func:`decisions.retry_published` call (counters buffered) and per flush."""
    prefix = f"dlxbench:metrics:{uuid.uuid4().hex[:8]}"
    conf = {"dlx_metrics_url": REDIS_URL, "dlx_metrics_prefix": prefix}
    task = SimpleNamespace(name="bench.retry_once", request=SimpleNamespace(id="x", retries=0), app=SimpleNamespace(conf=conf))
    exc = ValueError("boom")
    calls = 100_000
    per_call = min(timeit.repeat(lambda: decisions.retry_published(task, exc, attempt=1, delay=0.01, planned=0.01, queue="q"), number=calls, repeat=3)) / calls
    recorder = counters.recorder_for(conf)
    assert recorder is not None
    flushes = []
    for _ in range(20):
        for i in range(20):
            recorder.add(counters.RETRIES, ("bench.retry_once", f"E{i}"), counters.RETRIES)
        t0 = time.perf_counter()
        recorder.flush()
        flushes.append(time.perf_counter() - t0)
    _delete(redis.Redis.from_url(REDIS_URL), prefix)
    return per_call, statistics.median(flushes)


def scrape(pending: int) -> list[str]:
    prefix = f"dlxbench.scrape.{uuid.uuid4().hex[:6]}"
    broker = harness.broker_url(harness.VHOST)
    app = Celery("dlx_bench_scrape", broker=broker, set_as_current=False)
    app.conf.update(dlx_prefix=prefix, dlx_metrics_url=REDIS_URL, task_default_queue=f"{prefix}.work")
    topology = Topology(Settings.from_conf(app.conf))
    registry = build_registry(app)
    with Connection(broker) as conn:
        topology.declare(conn, list(app.amqp.queues.values()))
    empty = _time_scrapes(registry, 10)
    top = topology.level_queues[-1].name
    progress = Progress(1)
    progress.start(f"publishing {pending:,} messages into {top}")
    t0 = time.monotonic()
    with Connection(broker) as conn:
        producer = Producer(conn.default_channel)
        for i in range(pending):
            producer.publish(b"x", exchange="", routing_key=top, delivery_mode=1)
            if i % 50_000 == 0:
                progress.show(f"{i:,}/{pending:,}")
    fill = time.monotonic() - t0
    while True:  # the publishes are asynchronous: wait until the queue holds them all
        with Connection(broker) as conn:
            held = conn.default_channel.queue_declare(top, passive=True).message_count
        if held >= pending:
            break
        time.sleep(0.5)
    progress.finish()
    full = _time_scrapes(registry, 10)
    shown = [
        sample.value
        for family in text_string_to_metric_families(generate_latest(registry).decode())
        for sample in family.samples
        if sample.name == "celery_dlx_pending_messages"
    ]
    assert shown == [pending], f"the scrape counts every pending message: {shown}"
    return [
        "## Scrape time of `build_registry(app)` (broker, management API, Redis), 10 scrapes each",
        "",
        "| retries pending | median | max |",
        "|---|---|---|",
        f"| 0 | {statistics.median(empty) * 1e3:.0f} ms | {max(empty) * 1e3:.0f} ms |",
        f"| {pending:,} | {statistics.median(full) * 1e3:.0f} ms | {max(full) * 1e3:.0f} ms |",
        "",
        f"(filled in {fill:.0f} s; the scrape showed `celery_dlx_pending_messages {pending}`.)",
    ]


def _time_scrapes(registry: Any, count: int) -> list[float]:
    times = []
    for _ in range(count):
        t0 = time.perf_counter()
        generate_latest(registry)
        times.append(time.perf_counter() - t0)
    return times


def _delete(store: redis.Redis, prefix: str) -> None:
    keys = list(store.scan_iter(f"{prefix}:*"))
    if keys:
        store.delete(*keys)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=["cost", "scrape", "both"])
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--n", type=int, default=1000, help="retries per round (cost)")
    parser.add_argument("--pending", type=int, default=1_000_000, help="messages pending (scrape)")
    parser.add_argument("--out", type=Path, help="default: benchmarks/results/metrics-<what>.md")
    args = parser.parse_args(argv)
    store = redis.Redis.from_url(REDIS_URL, decode_responses=True)
    cleanup = Cleanup()
    rawdir = RESULTS / "raw" / "metrics"
    rawdir.mkdir(parents=True, exist_ok=True)
    lines = [
        "# celery_dlx metrics: cost per retry, scrape time",
        "",
        f"`python -m benchmarks.metrics_bench {' '.join(sys.argv[1:] if argv is None else argv)}`, "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, 2-core machine shared with other test runs (noisy: "
        "compare the side-by-side ratio, not the absolute figures).",
        "",
    ]
    harness.VHOST = create_vhost()
    cleanup.push("vhost", lambda: harness.rabbitmqctl("delete_vhost", harness.VHOST))
    try:
        if args.what in ("cost", "both"):
            lines += [*cost(args.rounds, args.n, rawdir, cleanup, store), ""]
            print("\n".join(lines), flush=True)  # a later failure must not lose it
        if args.what in ("scrape", "both"):
            lines += [*scrape(args.pending), ""]
    finally:
        cleanup.run_all()
    (args.out or RESULTS / f"metrics-{args.what}.md").write_text("\n".join(lines))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
