"""Known RabbitMQ behaviours that change what celery_dlx's queues do, by broker version and
queue type, so ``declare``, ``verify`` and ``status`` can say which apply to this deployment.

Pure policy: it reads the broker's product and version (the AMQP server properties) and the
configured queue types, and returns sentences.  Each rule names what was measured or reported
(the version-difference tests in ``tests/integration/test_broker_versions.py`` run on 3.10.8
and 4.0.5).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

#: RabbitMQ >= 4.0 gives every quorum queue this delivery-limit unless it sets its own.
DEFAULT_DELIVERY_LIMIT = 20


@dataclass(frozen=True)
class BrokerVersion:
    """What the broker says it is in its AMQP ``connection.start`` (product, version, cluster)."""

    product: str
    version: str
    cluster_name: str | None = None

    @classmethod
    def from_server_properties(cls, properties: Mapping[str, Any]) -> BrokerVersion:
        def text(key: str) -> str | None:
            value = properties.get(key)
            return value.decode() if isinstance(value, bytes) else None if value is None else str(value)

        return cls(text("product") or "unknown broker", text("version") or "unknown version", text("cluster_name"))

    @property
    def numbers(self) -> tuple[int, ...]:
        """``(4, 0, 5)`` from ``4.0.5`` (or ``4.0.5+rc.1``); ``()`` if there is no version."""
        match = re.match(r"\d+(?:\.\d+)*", self.version)
        return tuple(int(part) for part in match.group(0).split(".")) if match else ()

    @property
    def is_rabbitmq(self) -> bool:
        return self.product == "RabbitMQ"

    def __str__(self) -> str:
        cluster = f", cluster {self.cluster_name}" if self.cluster_name else ""
        return f"{self.product} {self.version}{cluster}"


def caveats(
    broker: BrokerVersion, delay_queue_type: str, work_queues: Mapping[str, Mapping[str, Any]], parking_exchange: str
) -> list[str]:
    """The known issues that apply: ``work_queues`` maps each work queue to its arguments."""
    if not broker.is_rabbitmq:
        return [f"{broker.product} is not RabbitMQ: celery_dlx relies on RabbitMQ's TTL and dead-lettering"]
    found: list[str] = []
    version = broker.numbers
    if version and version < (3, 10):
        found.append(
            f"RabbitMQ {broker.version} is older than 3.10, the oldest celery_dlx supports "
            "(quorum at-least-once dead-lettering and quorum message TTL came in 3.10)"
        )
    if delay_queue_type == "classic" and version and version < (3, 12):
        found.append(
            f"classic delay queues on RabbitMQ {broker.version} keep pending retries in RAM (~6 KB each): "
            "for large backlogs add a `queue-mode: lazy` policy on <prefix>.delay.* or use dlx_queue_type='quorum' "
            "(from 3.12 classic queues page to disk by themselves)"
        )
    if version >= (4, 0):
        for name, arguments in sorted(work_queues.items()):
            if arguments.get("x-queue-type") != "quorum" or "x-delivery-limit" in arguments:
                continue
            dead_letter = arguments.get("x-dead-letter-exchange")
            fate = f"dead-lettered to {dead_letter!r}" if dead_letter else "DROPPED (the queue has no dead-letter exchange)"
            advice = "" if dead_letter else (
                f"; give it x-dead-letter-exchange={parking_exchange!r} to park such tasks instead"
            )  # fmt: skip
            found.append(
                f"quorum work queue {name}: RabbitMQ {broker.version} applies a default delivery-limit of "
                f"{DEFAULT_DELIVERY_LIMIT}; a task redelivered more often (acks_late with workers killed, "
                f"Reject(requeue=True) loops) is {fate}{advice}, or set x-delivery-limit"
            )
    return found
