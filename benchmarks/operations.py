"""How fast the operations commands are on a loaded broker: ``celery dlx status`` with many
messages pending, and ``celery dlx replay`` throughput.

Run (RabbitMQ on 127.0.0.1:5672)::

    python -m benchmarks.operations [--pending 1000000] [--parked 100000] [--queue-type quorum]

Classic queues on RabbitMQ < 3.12 keep every message in RAM (about 3.7 KB each here) and throttle
a publisher filling one with a million: use ``--queue-type quorum`` (the default) for the million,
or put a ``queue-mode: lazy`` policy on ``dlxops.*`` first.

What is measured:

1. *status*: ``--pending`` Celery-sized messages (~600 bytes, the headers of a real retry) are
   put into the longest delay level (15.5 days, nothing leaves during the run); then
   :func:`celery_dlx.ops.status.broker_status` is timed in-process (median of 5), and the whole
   ``celery -A benchmarks.ops_app:app dlx status`` command as a user runs it (median of 3;
   this includes starting Python and importing Celery).
2. *replay*: ``--parked`` parked messages are replayed to their work queue, in-process
   (:meth:`ParkingLot.replay`), all of them, then again with ``--task`` matching half of them
   (the other half is rotated to the end of the lot, which costs a publish too).

Everything is declared under a fresh prefix and deleted at the end.  Results go to
benchmarks/results/operations.md.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from amqp import Message
from celery import Celery
from kombu import Connection

from celery_dlx.broker.topology import Topology
from celery_dlx.ops.status import broker_status
from celery_dlx.parking.lot import ParkingLot

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "operations.md"


def celery_message(task_id: str, task: str, queue: str, parked: bool) -> Message:
    """A message shaped and sized like one celery_dlx publishes (protocol 2, JSON)."""
    headers = {
        "lang": "py",
        "task": task,
        "id": task_id,
        "shadow": None,
        "eta": None,
        "expires": None,
        "group": None,
        "group_index": None,
        "retries": 3,
        "timelimit": [None, None],
        "root_id": task_id,
        "parent_id": None,
        "argsrepr": "('account-12345', 3)",
        "kwargsrepr": "{'cursor': 'QVFIUmJ2bEdNZA'}",
        "origin": "gen1234@worker-host",
        "ignore_result": False,
        "dlx_queue": queue,
        "dlx_due": time.time(),
    }
    if parked:
        headers.update(
            dlx_parked_reason="max_retries",
            dlx_error="celery_dlx.networks.CallDeferred",
            dlx_error_message="facebook RETRY_SOON: (#2) Service temporarily unavailable (code 2, HTTP 503)",
            dlx_parked_at=time.time(),
        )
    body = json.dumps([["account-12345", 3], {"cursor": "QVFIUmJ2bEdNZA"}, {"callbacks": None, "errbacks": None, "chain": None, "chord": None}])
    return Message(
        body,
        content_type="application/json",
        content_encoding="utf-8",
        correlation_id=task_id,
        delivery_mode=2,
        application_headers=headers,
    )


def fill(connection: Connection, queue: str, count: int, make: Callable[[int], Message]) -> float:
    """Publish ``count`` messages to ``queue`` (default exchange) and wait until it holds them."""
    started = time.perf_counter()
    channel = connection.connection.channel()
    for i in range(count):
        channel.basic_publish(make(i), "", queue)
        if i % 20000 == 0:
            print(f"  filling {queue}: {i}/{count}", file=sys.stderr, flush=True)
    while int(channel.queue_declare(queue, passive=True).message_count) < count:
        time.sleep(0.5)
    channel.close()
    return time.perf_counter() - started


def time_status(connection: Connection, app: Celery, topology: Topology) -> tuple[list[float], int]:
    runs = []
    for _ in range(5):
        started = time.perf_counter()
        report = broker_status(app, connection, topology, breakers=False)
        runs.append(time.perf_counter() - started)
    return runs, report.pending


def time_cli(env: dict[str, str]) -> list[float]:
    runs = []
    for _ in range(3):
        started = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "celery", "-A", "benchmarks.ops_app:app", "dlx", "status"],
            env={**os.environ, **env}, cwd=ROOT, check=True, capture_output=True,
        )  # fmt: skip
        runs.append(time.perf_counter() - started)
    return runs


def cleanup(broker: str, topology: Topology, work_queue: str) -> None:
    """Delete what the run declared, on a fresh connection (the run's may be the one that broke)."""
    with Connection(broker) as connection:
        topology.delete(connection)
        with connection.channel() as channel:
            channel.queue_delete(work_queue)
            channel.exchange_delete(work_queue)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pending", type=int, default=1_000_000)
    parser.add_argument("--parked", type=int, default=100_000)
    parser.add_argument("--queue-type", choices=("classic", "quorum"), default="quorum")
    parser.add_argument("--broker", default="amqp://guest:guest@127.0.0.1:5672//")
    args = parser.parse_args()
    env = {"DLX_OPS_PREFIX": f"dlxops.{uuid.uuid4().hex[:6]}", "DLX_OPS_QUEUE_TYPE": args.queue_type, "DLX_OPS_BROKER": args.broker}
    os.environ.update(env)
    from .ops_app import app, topology, work_queue  # configured from the environment set above

    rows: list[tuple[str, str]] = []
    with Connection(args.broker) as connection:
        connection.ensure_connection()
        topology.declare(connection, list(app.amqp.queues.values()))
        try:
            longest = topology.level_queues[-1].name
            print(f"status: putting {args.pending} messages into {longest} ...", file=sys.stderr)
            fill_s = fill(connection, longest, args.pending, lambda i: celery_message(str(uuid.uuid4()), "social.sync", work_queue, False))
            runs, pending = time_status(connection, app, topology)
            cli = time_cli(env)
            rows += [
                ("messages pending in the delay queues", f"{pending:,}"),
                ("broker_status(), in-process (median of 5)", f"{statistics.median(runs) * 1000:.1f} ms (max {max(runs) * 1000:.1f} ms)"),
                ("`celery -A … dlx status`, whole command (median of 3)", f"{statistics.median(cli):.2f} s (max {max(cli):.2f} s)"),
                ("filling the delay queue (for scale)", f"{args.pending / fill_s:,.0f} msg/s"),
            ]
            with connection.channel() as channel:
                channel.queue_purge(longest)

            lot = ParkingLot(connection, topology)
            print(f"replay: parking {args.parked} messages ...", file=sys.stderr)
            fill(connection, lot.queue, args.parked, lambda i: celery_message(str(uuid.uuid4()), "social.sync", work_queue, True))
            started = time.perf_counter()
            result = lot.replay()
            replay_s = time.perf_counter() - started
            assert result.moved == args.parked, result
            with connection.channel() as channel:
                channel.queue_purge(work_queue)
            fill(connection, lot.queue, args.parked, lambda i: celery_message(str(uuid.uuid4()), "social.sync" if i % 2 else "social.post", work_queue, True))
            started = time.perf_counter()
            filtered = lot.replay(task="social.sync")
            filtered_s = time.perf_counter() - started
            assert filtered.moved == args.parked // 2 and filtered.kept == args.parked - args.parked // 2, filtered
            rows += [
                (f"replay of {args.parked:,} parked messages", f"{args.parked / replay_s:,.0f} msg/s ({replay_s:.1f} s)"),
                (
                    f"replay --task of half of {args.parked:,} (the other half rotated)",
                    f"{filtered.moved / filtered_s:,.0f} replayed/s, {args.parked / filtered_s:,.0f} examined/s ({filtered_s:.1f} s)",
                ),
            ]
        finally:
            cleanup(args.broker, topology, work_queue)
    table = "\n".join(["| measure | result |", "|---|---|", *[f"| {a} | {b} |" for a, b in rows]])
    header = (
        f"# Operations benchmark\n\n`python -m benchmarks.operations --pending {args.pending} --parked {args.parked} "
        f"--queue-type {args.queue_type}` on {time.strftime('%Y-%m-%d')}, RabbitMQ on this machine (2 cores).\n\n"
    )
    RESULTS.write_text(header + table + "\n")
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
