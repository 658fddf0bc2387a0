"""The rate-limit herd: N calls fanned out at once against a tight limit, through a real worker.

Run (RabbitMQ and Redis on 127.0.0.1, rabbitmqctl on PATH or DLX_RABBITMQCTL set)::

    python -m benchmarks.ratelimit_herd [--calls 2000] [--rate 50/second] [--runs 1]
        [--concurrency 4] [--queue-kind classic|quorum] [--timeout 180] [--out FILE [--append]] [--label TEXT]

Each run starts a fresh prefork worker (:mod:`benchmarks.bench_app` with ``DLX_BENCH_RL_RATE``:
the task ``bench.limited`` calls :func:`~celery_dlx.ratelimit.acquire_or_retry` under one limit
on its work queue, Redis keys of its own), sends ``--calls`` tasks as fast as one producer can,
and waits until every one was admitted or ``--timeout`` seconds passed since the first send.
A run that times out is reported with the calls admitted by then.

What is reported, and who says so:

- *deferrals per call*: celery_dlx's own ``deferrals`` counter (:mod:`celery_dlx.metrics`,
  recorded by the worker), checked against the task's deliveries recorded in Redis (deliveries
  minus admissions);
- *completion*: last admission (task body's clock) minus first send, against the ideal
  ``calls × period / limit`` (the issue's N / rate);
- *broker messages*: RabbitMQ's own node-wide counters (``rabbit_global_counters``, read with
  ``rabbitmqctl eval``; the shared broker has no management plugin) before and after the run:
  messages received, of those published in confirm mode, confirmed, and dead-lettered by
  expiry (the delay ladder's hops).  They count every user of the node: the excess over this
  run's own publishes (calls sent + deferrals) is shown as traffic from elsewhere;
- *over-admission*: the most admissions in any window of the limit's period, from the task
  bodies' clock and from the limiter's (``Decision.at_us``, Redis time); above the limit means a
  window admitted too many.

Everything runs in a virtual host of its own on the shared broker (deleted at the end with its
queues and messages); the worker, its Redis keys and the metrics' keys are removed too.
"""

from __future__ import annotations

import argparse
import bisect
import json
import os
import shlex
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import redis

from celery_dlx import warm_up
from celery_dlx.metrics.counters import DEFERRALS, metrics_prefix, read_counters
from celery_dlx.ratelimit import Rate

from . import harness
from .bench_app import REDIS_URL
from .harness import RESULTS, Cleanup, Deployment, percentile, rabbitmqctl
from .run import create_vhost

#: Node-wide counters: received, received in confirm mode, confirmed, dead-lettered by expiry.
GLOBAL_COUNTERS = (
    "O = rabbit_global_counters:overview(), P = maps:get([{protocol, amqp091}], O), "
    "D = lists:sum([maps:get(messages_dead_lettered_expired_total, V, 0) || {K, V} <- maps:to_list(O), "
    "lists:keymember(dead_letter_strategy, 1, K)]), "
    "io:format(\"~p ~p ~p ~p~n\", [maps:get(messages_received_total, P), "
    "maps:get(messages_received_confirm_total, P), maps:get(messages_confirmed_total, P), D])."
)
#: Seconds to wait after the last admission so every pool process has flushed its counters.
FLUSH_WAIT = 2.5


@dataclass
class Outcome:
    calls: int
    admitted: int
    send_seconds: float
    seconds: float
    ideal: float
    deferrals_counted: int
    deferrals_seen: int
    per_call: list[int]
    broker: list[int]
    max_window_body: int
    max_window_limiter: int
    load: tuple[float, float]


def global_counters() -> list[int]:
    """[received, received in confirm mode, confirmed, dead-lettered by expiry] of the node."""
    return [int(x) for x in rabbitmqctl("eval", GLOBAL_COUNTERS).split()[:4]]


def max_in_window(times: list[float], period: float) -> int:
    """The most of ``times`` in any half-open window ``[t, t + period)``."""
    ordered = sorted(times)
    return max((bisect.bisect_left(ordered, t + period) - i for i, t in enumerate(ordered)), default=0)


def deferrals_counted(store: redis.Redis, prefix: str) -> int:
    """The worker's ``deferrals`` counters of the rate limiter, summed."""
    counters = read_counters(store, prefix)
    return int(sum(v for k, v in counters.items() if k[0] == DEFERRALS and k[2:3] == ("ratelimit",)))


def one_run(store: redis.Redis, cleanup: Cleanup, args: argparse.Namespace, rate: Rate) -> Outcome:
    env = {"DLX_BENCH_RL_RATE": args.rate, "DLX_BENCH_METRICS": "1"}
    rawdir = RESULTS / "raw" / "ratelimit_herd"
    rawdir.mkdir(parents=True, exist_ok=True)
    with Deployment(f"dlx_{args.queue_kind}", store, cleanup, rawdir, concurrency=args.concurrency, env=env) as dep:
        metrics = metrics_prefix(dep.app.conf)
        cleanup.push("redis keys", lambda: delete_keys(store, f"{dep.prefix}*", f"{metrics}*"))
        warm_up(dep.app, [dep.work])
        key = dep.key()
        task = dep.app.tasks["bench.limited"]
        load0 = os.getloadavg()[0]
        before = global_counters()
        t0 = time.time()
        with dep.app.producer_or_acquire() as producer:
            for _ in range(args.calls):
                task.apply_async((key,), producer=producer)
        sent = time.time()
        end = wait_admitted(store, key, args.calls, t0 + args.timeout)
        admissions = [json.loads(x) for x in store.lrange(f"{key}:admitted", 0, -1)]
        time.sleep(FLUSH_WAIT)
        after = global_counters()
        tries = Counter(json.loads(x)["id"] for x in store.lrange(f"{key}:tries", 0, -1))
        return Outcome(
            calls=args.calls,
            admitted=len(admissions),
            send_seconds=sent - t0,
            seconds=(max(a["t"] for a in admissions) if len(admissions) == args.calls else end) - t0,
            ideal=args.calls * rate.period / rate.limit,
            deferrals_counted=deferrals_counted(store, metrics),
            deferrals_seen=sum(tries.values()) - len(admissions),
            per_call=[n - 1 for n in tries.values()],
            broker=[b - a for a, b in zip(before, after)],
            max_window_body=max_in_window([a["t"] for a in admissions], rate.period),
            max_window_limiter=max_in_window([a["at_us"] / 1e6 for a in admissions], rate.period),
            load=(load0, os.getloadavg()[0]),
        )


def wait_admitted(store: redis.Redis, key: str, calls: int, deadline: float) -> float:
    """Wait until ``calls`` admissions are recorded or ``deadline`` (UNIX time); when it stopped."""
    start = time.time()
    while (admitted := store.llen(f"{key}:admitted")) < calls and time.time() < deadline:
        print(f"\r{admitted}/{calls} admitted, {time.time() - start:.0f} s", end="", file=sys.stderr)
        time.sleep(0.5)
    print(file=sys.stderr)
    return time.time()


def delete_keys(store: redis.Redis, *patterns: str) -> None:
    for pattern in patterns:
        keys = list(store.scan_iter(pattern, count=10_000))
        if keys:
            store.delete(*keys)


def row(n: int, o: Outcome, limit: int) -> str:
    done = f"{o.seconds:.1f} s" if o.admitted == o.calls else f"**timed out at {o.seconds:.0f} s: {o.admitted:,} of {o.calls:,} admitted**"
    received, confirm_mode, confirmed, hops = o.broker
    own = o.calls + o.deferrals_counted
    return (
        f"| {n} | {o.calls:,} | {o.send_seconds:.1f} s | {done} | {o.ideal:.0f} s | {o.seconds / o.ideal:.2f}× "
        f"| {o.deferrals_counted:,} ({o.deferrals_seen:,}) | {o.deferrals_counted / o.calls:.2f} "
        f"| {percentile(o.per_call, 0.5):.0f} / {percentile(o.per_call, 0.9):.0f} / {max(o.per_call, default=0)} "
        f"| {received:,} ({received - own:+,}) | {confirm_mode:,} / {confirmed:,} | {hops:,} "
        f"| {o.max_window_body} / {o.max_window_limiter} of {limit} | {o.load[0]:.1f} → {o.load[1]:.1f} |"
    )


def report(outcomes: list[Outcome], args: argparse.Namespace, command: str) -> str:
    rate = Rate.parse(args.rate)
    lines = [
        f"## {args.label + ': ' if args.label else ''}`{command}`\n",
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, RabbitMQ {rabbitmqctl('version').strip()}, "
        f"{os.cpu_count()} cores; limit {rate} on the work queue, prefork -c {args.concurrency}, "
        f"{args.queue_kind} delay queues, timeout {args.timeout:.0f} s.\n",
        "| run | calls | send | all admitted after | ideal (calls / rate) | ratio | deferrals, counter (deliveries) "
        "| deferrals per call | per call p50 / p90 / max | broker: received (beyond this run's own) "
        "| confirm-mode received / confirmed | dead-lettered (hops) | most admitted in one period: body / limiter clock | load 1 min |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    lines += [row(n, o, rate.limit) for n, o in enumerate(outcomes, 1)]
    return "\n".join(lines) + "\n"


def run_all(args: argparse.Namespace) -> list[Outcome]:
    """``args.runs`` runs in a virtual host of their own, removed afterwards with all the rest."""
    rate = Rate.parse(args.rate)
    store = redis.Redis.from_url(REDIS_URL)
    cleanup = Cleanup()
    shared = harness.VHOST
    try:
        vhost = harness.VHOST = create_vhost()
        cleanup.push("vhost", lambda: rabbitmqctl("delete_vhost", vhost))
        return [one_run(store, cleanup, args, rate) for _ in range(args.runs)]
    finally:
        cleanup.run_all()
        harness.VHOST = shared


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--rate", default="50/second", help="the limit, e.g. 50/second or 900/15 minutes")
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--concurrency", "--workers", type=int, default=4, help="prefork processes of the one worker")
    parser.add_argument("--queue-kind", choices=("classic", "quorum"), default="classic", help="delay queues")
    parser.add_argument("--timeout", type=float, default=180.0, help="seconds from the first send")
    parser.add_argument("--out", type=Path, default=RESULTS / "ratelimit_herd.md")
    parser.add_argument("--append", action="store_true", help="add this run's section to --out")
    parser.add_argument("--label", default="", help="heads the section, e.g. 'before' or 'after'")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    command = "python -m benchmarks.ratelimit_herd " + shlex.join(sys.argv[1:] if argv is None else argv)
    text = report(run_all(args), args, command.strip())
    print(text)
    head = "" if args.append else "# Rate-limit herd: N calls at once against a tight limit\n\n"
    with args.out.open("a" if args.append else "w") as out:
        out.write(head + text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
