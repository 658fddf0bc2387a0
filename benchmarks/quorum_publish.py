"""celery_dlx's delayed publish into quorum delay queues against the physical limit: a bare
confirmed publish of the same message to the same quorum queue from the same process.

Run (RabbitMQ on 127.0.0.1)::

    python -m benchmarks.quorum_publish [--n 500] [--rounds 6] [--queue-type quorum]

A quorum queue confirms a publish only after its Raft log commits it, so a confirmed retry
cannot go faster than that, whatever celery_dlx does.  In one process, rounds alternate
between ``publish_delayed`` (a 10 ms delay: Celery builds the task message, celery_dlx plans
the route and publishes it persistent, mandatory and confirmed; the path of ``celery dlx send
--countdown`` and, but for the message being a retry, of ``DLXTask.retry``) and kombu
publishing the very message celery_dlx sent (body, headers and properties taken back off the
work queue) to the same exchange and routing key, persistent and confirmed, one at a time.
The ratio of the two throughputs is what celery_dlx costs above the broker's own limit.
"""

from __future__ import annotations

import argparse
import statistics
import time
import uuid
from typing import Any

from celery import Celery
from kombu import Connection, Producer, Queue

from celery_dlx import Settings, Topology, warm_up
from celery_dlx.broker.publish import TaskMessage, publish_delayed

from .probe_app import BROKER_URL


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--queue-type", default="quorum")
    args = parser.parse_args()
    prefix = f"dlxqpub.{uuid.uuid4().hex[:6]}"
    work = f"{prefix}.work"
    app = Celery("dlx_qpub", broker=BROKER_URL, set_as_current=False)
    app.conf.update(dlx_prefix=prefix, dlx_queue_type=args.queue_type, task_default_queue=work)
    topology = Topology(Settings.from_conf(app.conf))
    message = TaskMessage("bench.noop", ("x" * 64,))
    dlx_rates: list[float] = []
    bare_rates: list[float] = []
    cpu = {"publish_delayed": 0.0, "bare": 0.0}
    try:
        warm_up(app, [work])
        route = publish_delayed(app, work, 0.01, message=message).route
        assert route is not None
        with Connection(BROKER_URL, transport_options={"confirm_publish": True}) as conn:
            sent = _take_one(conn, work)
            bare = Producer(conn.channel())
            for _ in range(args.rounds):
                start, started = time.perf_counter(), time.process_time()
                for _ in range(args.n):
                    publish_delayed(app, work, 0.01, message=message)
                dlx_rates.append(args.n / (time.perf_counter() - start))
                cpu["publish_delayed"] += time.process_time() - started
                start, started = time.perf_counter(), time.process_time()
                for _ in range(args.n):
                    bare.publish(
                        sent.body, exchange=topology.entry_exchange(route).name, routing_key=route.routing_key,
                        headers=sent.headers, content_type=sent.content_type, content_encoding=sent.content_encoding,
                        delivery_mode=2, mandatory=True, **_properties(sent),
                    )  # fmt: skip
                bare_rates.append(args.n / (time.perf_counter() - start))
                cpu["bare"] += time.process_time() - started
                conn.default_channel.queue_purge(work)
    finally:
        with Connection(BROKER_URL) as conn:
            topology.delete(conn)
            conn.default_channel.queue_delete(work)
    total = args.n * args.rounds
    print(
        f"`python -m benchmarks.quorum_publish --n {args.n} --rounds {args.rounds} --queue-type {args.queue_type}`: "
        f"publish_delayed {statistics.median(dlx_rates):.0f}/s, bare confirmed publish of the same message "
        f"{statistics.median(bare_rates):.0f}/s (medians of {args.rounds} alternating rounds of {args.n}); "
        f"ratio {statistics.median(dlx_rates) / statistics.median(bare_rates):.2f}× "
        f"(per round: {', '.join(f'{a / b:.2f}' for a, b in zip(dlx_rates, bare_rates, strict=True))}); "
        f"client CPU per message: publish_delayed {cpu['publish_delayed'] / total * 1e6:.0f} µs, bare {cpu['bare'] / total * 1e6:.0f} µs"
    )


def _take_one(conn: Connection, work: str) -> Any:
    """The message celery_dlx published, once the ladder delivered it to the work queue."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        message = Queue(work, channel=conn.default_channel, no_declare=True).get(no_ack=True)
        if message is not None:
            return message
        time.sleep(0.05)
    raise TimeoutError(f"nothing arrived in {work}")


def _properties(message: Any) -> dict[str, Any]:
    """The AMQP properties celery_dlx set, besides those passed by name."""
    properties = dict(message.properties)
    return {k: properties[k] for k in ("correlation_id", "reply_to", "priority") if k in properties}


if __name__ == "__main__":
    main()
