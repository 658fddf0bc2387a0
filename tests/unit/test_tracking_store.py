"""The Redis side of task trees and page ledgers, without a worker: every operation of
:class:`TreeStore` and :class:`PageLedger` on the standalone Redis and on a local Redis Cluster,
where a tree's (a run's) keys must share one hash slot and the ids' own keys may not."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from redis.crc import key_slot

from celery_dlx.pagination.plans import Halt, Mode, Page
from celery_dlx.pagination.tasks import PageLedger
from celery_dlx.redisio.client import Client
from celery_dlx.tracking.store import TrackingConfig, TreeStore

from .ratelimit_support import delete_under, redis_client  # noqa: F401  (fixture)

pytestmark = pytest.mark.integration


@pytest.fixture
def config(redis_url: str, redis_client: Client) -> Iterator[TrackingConfig]:  # noqa: F811
    prefix = f"trtest:{uuid.uuid4().hex[:8]}"
    yield TrackingConfig(redis_url, prefix, 60)
    delete_under(redis_client, prefix)


def test_a_tree_registers_its_root_and_children_with_their_parents(config: TrackingConfig) -> None:
    store = TreeStore(config)
    store.register("root", None, ["root", "sibling"])
    children = [f"child-{n}" for n in range(20)]
    store.register("root", "root", children)
    store.register("root", "root", children[:5])  # sending again is harmless
    assert sorted(store.nodes("root")) == sorted(["root", "sibling", *children])
    assert store.count("root") == 22
    assert store.parents("root") == dict.fromkeys(children, "root")
    assert all(store.is_known(task_id) for task_id in ["root", "sibling", *children])
    assert not store.is_known("never-sent")
    assert 0 < store.client.ttl(store._key("root", "nodes")) <= 60
    assert 0 < store.client.ttl(store.task_key("child-3")) <= 60


def test_a_tree_s_keys_share_one_slot_and_trees_spread(config: TrackingConfig) -> None:
    store = TreeStore(config)
    assert key_slot(store._key("a", "nodes").encode()) == key_slot(store._key("a", "parents").encode())
    slots = {key_slot(store._key(f"root-{n}", "nodes").encode()) for n in range(50)}
    assert len(slots) > 40


def page(run: str, number: int) -> Page:
    return Page(run=run, number=number, size=10, mode=Mode.OFFSET, offset=number * 10)


def test_the_page_ledger_records_items_cursors_finishes_and_halts(config: TrackingConfig) -> None:
    ledger, run = PageLedger(config), uuid.uuid4().hex
    seen, owned = ledger.observe(page(run, 0), ["a", "b", "c"], "next-1")
    assert (seen.items, seen.new_items, seen.cursor_page, owned) == (3, 3, 0, ["a", "b", "c"])
    seen, owned = ledger.observe(page(run, 1), ["c", "d"], "next-1")
    assert (seen.new_items, seen.cursor_page, owned) == (1, 0, ["d"])  # "c" is page 0's; the cursor repeats
    again, owned_again = ledger.observe(page(run, 1), ["c", "d"], "next-1")
    assert (again, owned_again) == (seen, owned)  # a page that runs again gets the same answers
    assert ledger.item_count(run) == 4
    assert not ledger.finish(page(run, 2))  # never turned
    assert ledger.finish(page(run, 1)) and ledger.finished(page(run, 1))
    assert not ledger.finished(page(run, 0))
    ledger.halt(page(run, 1), Halt.REPEATED_PAGE)
    assert ledger.halts(run) == {1: Halt.REPEATED_PAGE}
    assert 0 < ledger.client.ttl(ledger._key(run, "halts")) <= 60
