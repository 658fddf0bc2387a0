"""The parking queue's retention arguments, the mismatch fix they come with, and how ``status``
shows them: pure, no broker."""

from __future__ import annotations

from typing import Any

import pytest

from celery_dlx import Settings, Topology, TopologyMismatch
from celery_dlx.broker.plan import DelayLevels
from celery_dlx.ops.status import LevelStatus, ParkingStatus, QueueStatus, Status
from celery_dlx.ops.verify import with_fixes
from celery_dlx.ops.verify_diff import Difference, Entity, Report


def topology(queue_type: str = "classic", **retention: Any) -> Topology:
    return Topology(Settings(prefix="p", queue_type=queue_type, levels=DelayLevels(unit_ms=10, levels=2), **retention))


@pytest.mark.parametrize("queue_type, type_arguments", [("classic", {}), ("quorum", {"x-queue-type": "quorum"})])
def test_the_parking_queue_declares_length_with_drop_head_and_ttl(queue_type: str, type_arguments: dict[str, str]) -> None:
    lot = topology(queue_type, parking_max_messages=500, parking_max_age=2.5).parking_queue
    assert lot.queue_arguments == {
        **type_arguments, "x-max-length": 500, "x-overflow": "drop-head", "x-message-ttl": 2500,
    }  # fmt: skip


def test_keep_everything_declares_the_parking_queue_as_before_retention_existed() -> None:
    assert topology(parking_max_messages=None, parking_max_age=None).parking_queue.queue_arguments is None
    quorum = topology("quorum", parking_max_messages=0, parking_max_age=0).parking_queue
    assert quorum.queue_arguments == {"x-queue-type": "quorum"}


def test_each_limit_alone_adds_only_its_arguments() -> None:
    assert topology(parking_max_messages=7, parking_max_age=None).parking_arguments() == {
        "x-max-length": 7, "x-overflow": "drop-head",
    }  # fmt: skip
    assert topology(parking_max_messages=None, parking_max_age=60).parking_arguments() == {"x-message-ttl": 60_000}


def test_a_mismatch_with_a_hint_puts_the_fix_before_the_generic_advice() -> None:
    hint = topology(parking_max_messages=10, parking_max_age=None).parking_retention_fix()
    error = TopologyMismatch([("queue p.parking", "inequivalent arg 'x-max-length'")], [hint])
    text = str(error)
    assert "Fix: the parking queue p.parking was declared with other retention limits than " in text
    assert "dlx_parking_max_messages=10, dlx_parking_max_age=None" in text
    assert text.index("migrate-parking") < text.index("Delete the listed entities")
    assert text.endswith("The parking queue is the exception: see the fix above.")
    assert "Fix:" not in str(TopologyMismatch([("queue p.delay.10ms.L00", "inequivalent arg 'x-message-ttl'")]))


@pytest.mark.parametrize("what, fixed", [("x-max-length", True), ("x-message-ttl", True), ("x-overflow", True), ("durable", False)])
def test_verify_adds_the_migration_fix_only_for_the_lots_retention(what: str, fixed: bool) -> None:
    topo = topology()
    report = Report("management", checked=1, different=[Difference(Entity("queue", "p.parking"), what, 1, None)])
    lines = with_fixes(report, topo).lines()
    assert any(line.startswith("! fix: the parking queue p.parking") for line in lines) is fixed
    other = Report("management", checked=1, different=[Difference(Entity("queue", "p.delay.10ms.L00"), what, 1, None)])
    assert with_fixes(other, topo).fixes == []
    assert with_fixes(report, topo).as_dict()["fixes"] == (report.fixes if fixed else [])


def status(messages: int, max_messages: int | None, max_age: float | None) -> Status:
    lot = ParkingStatus("p.parking", messages, 0, max_messages=max_messages, max_age=max_age)
    level = LevelStatus(0, 10, QueueStatus("p.delay.10ms.L00", 0, 0))
    return Status(prefix="p", queue_type="classic", levels=[level], parking=lot, work_queues=[], breakers_note="none")


def test_status_shows_count_against_the_limit_and_the_age_limit() -> None:
    lines = list(status(250, 1000, 30 * 86400).lines())
    assert "  parked: 250 / 1000 max (25 %), max age 30 d  (p.parking, 0 consumer(s))" in lines
    full = status(1000, 1000, None)
    assert full.parking.full and full.as_dict()["parking"]["full"] is True
    assert "  parked: 1000 / 1000 max (100 %), FULL: each new park drops the oldest, no age limit  (p.parking, 0 consumer(s))" in list(full.lines())
    unlimited = status(5, None, None)
    assert not unlimited.parking.full
    assert "  parked: 5 (no count limit), no age limit  (p.parking, 0 consumer(s))" in list(unlimited.lines())
