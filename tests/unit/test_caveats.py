"""Which known broker issues apply, by version and queue type (pure policy)."""

from __future__ import annotations

from celery_dlx.broker.caveats import BrokerVersion, caveats

QUORUM = {"x-queue-type": "quorum"}


def rabbit(version: str) -> BrokerVersion:
    return BrokerVersion.from_server_properties({"product": b"RabbitMQ", "version": version.encode(), "cluster_name": "c@h"})


def test_server_properties_are_read_as_text_and_versions_as_numbers() -> None:
    broker = rabbit("4.0.5+rc.1")
    assert (broker.product, broker.version, broker.cluster_name, broker.numbers) == ("RabbitMQ", "4.0.5+rc.1", "c@h", (4, 0, 5))
    assert str(broker) == "RabbitMQ 4.0.5+rc.1, cluster c@h"
    assert BrokerVersion.from_server_properties({}).numbers == ()


def test_quorum_work_queues_on_4_warn_about_the_default_delivery_limit_unless_they_set_one() -> None:
    work = {"w.quorum": QUORUM, "w.classic": {}, "w.limited": {**QUORUM, "x-delivery-limit": 5}}
    found = caveats(rabbit("4.0.5"), "quorum", work, "p.parking")
    assert len(found) == 1
    assert found[0].startswith("quorum work queue w.quorum: RabbitMQ 4.0.5 applies a default delivery-limit of 20")
    assert "DROPPED" in found[0] and "x-dead-letter-exchange='p.parking'" in found[0]
    parked = caveats(rabbit("4.3.0"), "quorum", {"w": {**QUORUM, "x-dead-letter-exchange": "p.parking"}}, "p.parking")
    assert len(parked) == 1 and "dead-lettered to 'p.parking'" in parked[0]
    assert caveats(rabbit("3.13.7"), "quorum", work, "p.parking") == []


def test_classic_delay_queues_before_3_12_are_advised_the_lazy_policy() -> None:
    assert "queue-mode: lazy" in caveats(rabbit("3.10.8"), "classic", {}, "p.parking")[0]
    assert caveats(rabbit("3.12.0"), "classic", {}, "p.parking") == []
    assert caveats(rabbit("3.10.8"), "quorum", {}, "p.parking") == []


def test_old_or_other_brokers_are_named() -> None:
    assert "older than 3.10" in caveats(rabbit("3.9.29"), "quorum", {}, "p.parking")[0]
    other = BrokerVersion.from_server_properties({"product": "LavinMQ", "version": "2.0"})
    assert caveats(other, "classic", {}, "p.parking") == ["LavinMQ is not RabbitMQ: celery_dlx relies on RabbitMQ's TTL and dead-lettering"]
