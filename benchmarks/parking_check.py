"""What the full-lot check costs :func:`celery_dlx.parking.park.park`.

Run (RabbitMQ on 127.0.0.1)::

    python -m benchmarks.parking_check [--samples 2000] [--queue-type classic]

With ``dlx_parking_max_messages`` set, ``park()`` asks the lot's depth (a passive
``queue.declare`` on a channel the publisher keeps) before its confirmed publish, because
RabbitMQ does not say when ``drop-head`` removed a message.  This measures that depth question
beside the confirmed, mandatory, persistent publish of a parked-sized message into the lot on
the same publisher: the park that the check is added to.
"""

from __future__ import annotations

import argparse
import statistics
import time
import uuid

from celery import Celery
from kombu import Connection

from celery_dlx.broker.publish import RetryPublisher
from celery_dlx.settings import Settings

BROKER_URL = "amqp://guest:guest@127.0.0.1:5672//"


def _summary(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {
        "median_us": statistics.median(ordered) * 1e6,
        "p95_us": ordered[int(len(ordered) * 0.95)] * 1e6,
    }


def measure(samples: int, queue_type: str) -> dict[str, dict[str, float]]:
    prefix = f"dlxbench.parkcheck.{uuid.uuid4().hex[:6]}"
    app = Celery("parkcheck", broker=BROKER_URL, set_as_current=False)
    app.conf.update(dlx_prefix=prefix, dlx_queue_type=queue_type, task_default_queue=f"{prefix}.work")
    publisher = RetryPublisher(app, Settings.from_conf(app.conf))
    topology, work = publisher.topology, f"{prefix}.work"
    body = "x" * 1500  # about a parked Celery message with its failure headers
    headers = {"task": "bench.task", "dlx_parked_reason": "max_retries", "dlx_error_message": "gone " * 20}
    depth, publish = [], []
    try:
        publisher.queue_depth(topology.parking_queue.name, work)  # connect and declare once
        for _ in range(samples):
            t0 = time.perf_counter()
            publisher.queue_depth(topology.parking_queue.name, work)
            t1 = time.perf_counter()
            with publisher.producer(work) as producer:
                producer.publish(
                    body, exchange=topology.parking_exchange.name, routing_key=work, headers=headers,
                    mandatory=True, delivery_mode=2, serializer="json",
                )  # fmt: skip
            t2 = time.perf_counter()
            depth.append(t1 - t0)
            publish.append(t2 - t1)
    finally:
        publisher.close()
        with Connection(BROKER_URL) as connection:
            topology.delete(connection)
            with connection.channel() as channel:  # the work queue and exchange Celery's defaults made
                channel.queue_delete(work)
                channel.exchange_delete(work)
    return {"depth check": _summary(depth), "confirmed park publish": _summary(publish)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=2000)
    parser.add_argument("--queue-type", choices=["classic", "quorum"], default="classic")
    options = parser.parse_args()
    print(f"| {options.queue_type}, {options.samples} samples | median | p95 |")
    print("|---|---|---|")
    for name, result in measure(options.samples, options.queue_type).items():
        print(f"| {name} | {result['median_us']:.0f} µs | {result['p95_us']:.0f} µs |")


if __name__ == "__main__":
    main()
