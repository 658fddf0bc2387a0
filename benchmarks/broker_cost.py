"""Broker CPU per delayed retry, by delay mix: celery_dlx (exact and default ``dlx_precision``)
beside Celery's native delayed delivery, classic and quorum delay queues, on one throwaway
RabbitMQ node in one run.

Run (the RabbitMQ server installed, as for ``benchmarks.run`` section 5)::

    python -m benchmarks.broker_cost [--n 10000] [--mixes rate-limit,uniform] [--port 5699]

What runs: for each queue type, contender and mix, ``--n`` messages are published (persistent,
confirmed, the same ~300-byte body) into a fresh copy of the contender's ladder on a node of
its own (the machine's broker is shared with other work, so its CPU time would not be ours),
and a consumer takes them off the work queue; the figure is the node's ``beam.smp`` CPU time
(user + system, ``/proc/<pid>/stat``) from the first publish to the last arrival, per 10 000
retries.  The node runs with Erlang's scheduler busy-waiting off, so idle spinning does not
count as work.  Nothing but the broker's share of a retry is measured: Celery and the worker
are the same for every contender and left out.

Time is scaled by ``SCALE`` (1/10) so a run takes minutes: celery_dlx's ladder gets a 1 ms unit
and the delays are a tenth, which gives every delay exactly the route (and hops) it has with
10 ms and the real delay; native delayed delivery's ladder (modelled on kombu's
``declare_native_delayed_delivery_exchanges_and_queues``: the same exchanges, queues, bindings
and 28 levels, publishing into level 27 with kombu's ``calculate_routing_key``) gets 100 ms per
second of TTL, and its key is computed from the real delay truncated to seconds, as Celery does.
Sub-second delays, which native refuses, are left out of its run.  The exponential-backoff mix
waits up to 6 minutes per contender even scaled; add it with ``--mixes all``.

Lateness is arrival minus due (the asked delay, scaled; native is early by design).
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import threading
import time
import uuid
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

from kombu import Connection, Exchange, Producer, Queue
from kombu.transport.native_delayed_delivery import calculate_routing_key

from celery_dlx.broker.plan import DEFAULT_PRECISION, DelayLevels
from celery_dlx.broker.topology import DESTINATION_HEADER, Topology
from celery_dlx.settings import Settings
from celery_dlx.testing.rabbitnode import RabbitNode

from .foundation import percentile
from .hops import MIXES, delays

SCALE = Fraction(1, 10)
BODY = b'{"task": "bench.retry", "args": ["' + b"x" * 240 + b'"], "kwargs": {}}'
SHORT = {"exponential": next(iter(MIXES)), "rate-limit": list(MIXES)[1], "uniform": list(MIXES)[2]}


@dataclass(frozen=True)
class Outcome:
    queue_type: str
    contender: str
    mix: str
    sent: int
    cpu_per_10k: float
    hops: float
    late_ms: list[float]


def beam_cpu(pid: int) -> float:
    """CPU seconds (user + system) the process has used."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def native_declare(conn: Connection, prefix: str, queue_type: str, work: str) -> Exchange:
    """Native delayed delivery's ladder with TTLs scaled by SCALE; returns its entry exchange."""
    channel = conn.default_channel
    name = lambda level: f"{prefix}_celery_delayed_{level}"  # noqa: E731
    delivery = Exchange(f"{prefix}_celery_delayed_delivery", type="topic", channel=channel)
    delivery.declare()
    pattern = "1.#"
    for level in range(27, -1, -1):
        Exchange(name(level), type="topic", channel=channel).declare()
        arguments: dict[str, Any] = {
            "x-queue-type": queue_type,
            "x-overflow": "reject-publish",
            "x-message-ttl": int(2**level * 1000 * SCALE),
            "x-dead-letter-exchange": name(level - 1) if level else delivery.name,
        }
        if queue_type == "quorum":
            arguments["x-dead-letter-strategy"] = "at-least-once"
        queue = Queue(name(level), queue_arguments=arguments, channel=channel)
        queue.declare()
        queue.bind_to(name(level), pattern)
        pattern = "*." + pattern
    pattern = "0.#"
    for level in range(27, 0, -1):
        Exchange(name(level - 1), type="topic", channel=channel).bind_to(name(level), pattern)
        pattern = "*." + pattern
    delivery.bind_to(name(0), pattern)
    Queue(work, channel=channel).declare()
    channel.queue_bind(work, delivery.name, f"#.{work}")
    return Exchange(name(27), type="topic")


def native_delete(conn: Connection, prefix: str) -> None:
    channel = conn.default_channel
    for level in range(28):
        channel.queue_delete(f"{prefix}_celery_delayed_{level}")
        channel.exchange_delete(f"{prefix}_celery_delayed_{level}")
    channel.exchange_delete(f"{prefix}_celery_delayed_delivery")


def measure(url: str, pid: int, queue_type: str, contender: str, mix: str, n: int) -> Outcome:
    prefix = f"cost{uuid.uuid4().hex[:6]}"
    work = f"{prefix}.work"
    sample = delays(mix, n)
    routes: list[tuple[Exchange | str, str, int]] = []  # exchange, routing key, hops
    with Connection(url, transport_options={"confirm_publish": True}) as conn:
        if contender == "native":
            sample = [d for d in sample if d >= 1]
            entry = native_declare(conn, prefix, queue_type, work)
            routes = [(entry, calculate_routing_key(int(d), work), int(d).bit_count()) for d in sample]
        else:
            precision = DEFAULT_PRECISION if contender == "celery_dlx" else Fraction(0)
            levels = DelayLevels(unit_ms=1, precision=precision)
            topology = Topology(Settings(prefix=prefix, queue_type=queue_type, levels=levels))
            topology.declare(conn, [Queue(work)])
            for d in sample:
                route = levels.plan(Fraction(d) * SCALE)
                routes.append((topology.entry_exchange(route).name, route.routing_key, route.hops))
        late: list[float] = []
        done = threading.Event()
        consumer_thread = threading.Thread(target=_consume, args=(url, work, len(sample), late, done), daemon=True)
        consumer_thread.start()
        producer = Producer(conn.channel())
        start = beam_cpu(pid)
        for d, (exchange, key, _) in zip(sample, routes, strict=True):
            producer.publish(
                BODY, exchange=exchange, routing_key=key, delivery_mode=2, content_type="application/json",
                headers={DESTINATION_HEADER: work, "bench_due": time.time() + float(Fraction(d) * SCALE)},
                confirm_timeout=30, retry=False,
            )  # fmt: skip
        done.wait(timeout=float(max(sample) * SCALE) + 120)
        cpu = beam_cpu(pid) - start
        if contender == "native":
            native_delete(conn, prefix)
        else:
            topology.delete(conn)
        conn.default_channel.queue_delete(work)
    return Outcome(queue_type, contender, mix, len(sample), cpu * 10_000 / len(sample), statistics.mean(h for *_, h in routes), late)


def _consume(url: str, work: str, expected: int, late: list[float], done: threading.Event) -> None:
    with Connection(url) as conn:

        def on_message(body: Any, message: Any) -> None:
            late.append((time.time() - message.headers["bench_due"]) * 1000)
            message.ack()
            if len(late) >= expected:
                done.set()

        with conn.Consumer(Queue(work, no_declare=True), callbacks=[on_message], prefetch_count=500, accept=None):
            while not done.is_set():
                try:
                    conn.drain_events(timeout=1)
                except TimeoutError:
                    continue


def report(outcomes: list[Outcome], command: str) -> str:
    lines = [
        "# Broker CPU per delayed retry\n",
        f"`{command}` on {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}: a throwaway RabbitMQ "
        "node on this 2-core machine (shared with other work: CPU time, not wall time, is compared), "
        f"time scaled by {SCALE} (see the module docstring). Lateness in scaled time.\n",
        "| delay queues | mix | contender | retries | broker CPU s per 10 000 | vs native | hops/retry | lateness p50 | p99 | early |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    native = {(o.queue_type, o.mix): o.cpu_per_10k for o in outcomes if o.contender == "native"}
    for o in outcomes:
        ratio = f"{o.cpu_per_10k / native[(o.queue_type, o.mix)]:.2f}×" if (o.queue_type, o.mix) in native else "—"
        lines.append(
            f"| {o.queue_type} | {o.mix} | {o.contender} | {o.sent:,} | {o.cpu_per_10k:.2f} | {ratio} | {o.hops:.2f} "
            f"| {percentile(o.late_ms, 0.5):.1f} ms | {percentile(o.late_ms, 0.99):.1f} ms | {sum(x < 0 for x in o.late_ms):,} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--mixes", default="rate-limit,uniform", help="exponential, rate-limit, uniform or all")
    parser.add_argument("--queue-types", default="classic,quorum")
    parser.add_argument("--contenders", default="native,celery_dlx,celery_dlx_exact")
    parser.add_argument("--port", type=int, default=5699)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "broker_cost.md")
    args = parser.parse_args()
    mixes = list(SHORT) if args.mixes == "all" else args.mixes.split(",")
    # Erlang schedulers spin while idle by default: CPU time that is no retry's work.
    os.environ["RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS"] = "+sbwt none +sbwtdcpu none +sbwtdio none"
    node = RabbitNode(f"dlxcost{random.randrange(10**6)}", args.port)
    outcomes = []
    try:
        node.start()
        assert node.pid is not None
        for queue_type in args.queue_types.split(","):
            for mix in mixes:
                for contender in args.contenders.split(","):
                    outcome = measure(node.url, node.pid, queue_type, contender, SHORT[mix], args.n)
                    print(outcome.queue_type, mix, contender, f"{outcome.cpu_per_10k:.2f} s/10k", f"{outcome.hops:.2f} hops", flush=True)
                    outcomes.append(outcome)
    finally:
        node.destroy()
    command = "python -m benchmarks.broker_cost" + "".join(
        f" --{k.replace('_', '-')} {v}" for k, v in vars(args).items() if k != "out" and v != parser.get_default(k)
    )
    text = report(outcomes, command)
    args.out.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
