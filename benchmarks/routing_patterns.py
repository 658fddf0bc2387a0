"""Why the ladder's topic patterns start with ``*``: confirmed publish cost through 28 chained
exchanges for three ways of matching one digit per level.

Run: ``python -m benchmarks.routing_patterns [--publishes 200]`` against RabbitMQ on
127.0.0.1 (it declares and deletes its own ``rpbench.*`` entities; non-durable).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

from kombu import Connection, Exchange, Producer, Queue

from .probe_app import BROKER_URL

LEVELS = 28
UNITS = 60000  # a 600 s delay at 10 ms
Binding = Callable[[int], tuple[str, dict[str, str] | None]]


def msb_key(units: int) -> str:
    return ".".join("1" if units >> k & 1 else "0" for k in reversed(range(LEVELS)))


def lsb_key(units: int) -> str:
    return ".".join("1" if units >> k & 1 else "0" for k in range(LEVELS))


SCHEMES: dict[str, tuple[str, Binding, Binding, str, dict[str, str]]] = {
    "topic, '#'-leading (#.1.*.*)": (
        "topic",
        lambda k: (".".join(["#", "1", *["*"] * k]), None),
        lambda k: (".".join(["#", "0", *["*"] * k]), None),
        msb_key(UNITS),
        {},
    ),
    "topic, '*'-leading (*.*.1.#) [celery_dlx]": (
        "topic",
        lambda k: (".".join([*["*"] * k, "1", "#"]), None),
        lambda k: (".".join([*["*"] * k, "0", "#"]), None),
        lsb_key(UNITS),
        {},
    ),
    "headers, one header per level": (
        "headers",
        lambda k: ("", {"x-match": "all", f"b{k:02d}": "1"}),
        lambda k: ("", {"x-match": "all", f"b{k:02d}": "0"}),
        "",
        {f"b{k:02d}": "1" if UNITS >> k & 1 else "0" for k in range(LEVELS)},
    ),
}


def measure(conn: Connection, name: str, scheme: tuple[str, Binding, Binding, str, dict[str, str]], n: int) -> float:
    kind, wait, passes, key, headers = scheme
    channel = conn.channel()
    sink = Exchange(f"{name}.deliver", "fanout", durable=False)
    # Exclusive: RabbitMQ 4.3 refuses transient queues that are not (541); these go with the connection.
    Queue(f"{name}.sink", sink, "", durable=False, exclusive=True)(channel).declare()
    try:
        for k in range(LEVELS):
            Exchange(f"{name}.L{k}", kind, durable=False)(channel).declare()
            Queue(f"{name}.Q{k}", durable=False, exclusive=True, queue_arguments={"x-message-ttl": 600000})(channel).declare()
            rk, args = wait(k)
            channel.queue_bind(queue=f"{name}.Q{k}", exchange=f"{name}.L{k}", routing_key=rk, arguments=args)
            rk, args = passes(k)
            below = f"{name}.L{k - 1}" if k else sink.name
            channel.exchange_bind(destination=below, source=f"{name}.L{k}", routing_key=rk, arguments=args)
        producer = Producer(channel)
        started = time.perf_counter()
        for _ in range(n):
            producer.publish({"a": 1}, exchange=f"{name}.L{LEVELS - 1}", routing_key=key, headers=headers, delivery_mode=2)
        return (time.perf_counter() - started) / n * 1000
    finally:
        for k in range(LEVELS):
            channel.exchange_delete(f"{name}.L{k}")
            channel.queue_delete(f"{name}.Q{k}")
        channel.exchange_delete(sink.name)
        channel.queue_delete(f"{name}.sink")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--publishes", type=int, default=200)
    args = parser.parse_args()
    print(f"| matching ({LEVELS} levels, confirmed publish of a 600 s route) | ms per publish |\n|---|---|")
    with Connection(BROKER_URL, transport_options={"confirm_publish": True}) as conn:
        for index, (label, scheme) in enumerate(SCHEMES.items()):
            print(f"| {label} | {measure(conn, f'rpbench.{index}', scheme, args.publishes):.2f} |")


if __name__ == "__main__":
    main()
