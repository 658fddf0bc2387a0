"""Pagination, task trees and soft time limits with real workers, Redis and a fake HTTP API.

One prefork worker (soft limits fire by signal) and one threads worker (they never fire) serve
every test of the module; each test has its own datasets, run ids and Redis keys.  The module
runs twice: with trees and ledgers in the standalone Redis, and in a local Redis Cluster
(marker ``redis_cluster``; the result backend stays the standalone Redis).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import pika
import pytest
import redis
from celery import Celery

from celery_dlx.pagination.plans import Halt
from celery_dlx.pagination.tasks import PageLedger, cursor_pages, offset_pages, window_pages
from celery_dlx.redisio.client import Client, client_from_url
from celery_dlx.testing.worker import WorkerProcess, wait_for_arrivals
from celery_dlx.tracking.progress import TreeProgress
from celery_dlx.tracking.store import UNKNOWN, TreeResult, start_tree, state_of

from ..support import ROOT
from .conftest import DLXEnv, _cleanup
from .dlx_app import BROKER_URL
from .fake_api import Dataset, FakeAPI
from .pagination_app import RETRY_DELAY, SESSION_MARGIN, SOFT_LIMIT, make_app

pytestmark = pytest.mark.integration


@dataclass
class Paging:
    api: FakeAPI
    dlx: DLXEnv

    @property
    def app(self) -> Celery:
        return self.dlx.app

    @property
    def store(self) -> redis.Redis:
        return self.dlx.store

    @property
    def ledger(self) -> PageLedger:
        return PageLedger.for_app(self.app)

    def pages(self, dataset: Dataset) -> tuple[str, str]:
        """A new dataset on the API and the Redis list its page tasks process items into."""
        return self.api.add(dataset), self.dlx.key()


@pytest.fixture(scope="module")
def api() -> Iterator[FakeAPI]:
    server = FakeAPI().start()
    yield server
    server.stop()


@pytest.fixture(scope="module", params=["standalone", pytest.param("cluster", marks=pytest.mark.redis_cluster)])
def paging(
    request: pytest.FixtureRequest,
    services: None,
    store: redis.Redis,
    observer: pika.BlockingConnection,
    api: FakeAPI,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Paging]:
    prefix = f"dlxtest.{uuid.uuid4().hex[:8]}"
    queues = [f"{prefix}.work", f"{prefix}.threads", f"{prefix}.idle"]
    env = {"PAGING_TEST_PREFIX": prefix, "PAGING_TEST_QUEUES": ",".join(queues), "PAGING_TEST_API": api.url}
    tracking: Client = store
    if request.param == "cluster":
        env["PAGING_TRACKING_URL"] = str(request.getfixturevalue("redis_cluster_url"))
        tracking = client_from_url(env["PAGING_TRACKING_URL"], 5.0)
    dlx = DLXEnv(prefix=prefix, queues=queues, env=env, app=make_app(env), store=store)
    logdir = tmp_path_factory.mktemp("paging")
    workers = [
        WorkerProcess("tests.integration.pagination_app:app", [queue], BROKER_URL, pool=pool, concurrency=4,
                      env=env, cwd=ROOT, logfile=logdir / f"{pool}.log")
        for queue, pool in ((queues[0], "prefork"), (queues[1], "threads"))
    ]  # fmt: skip
    try:
        for worker in workers:
            worker.start()
        yield Paging(api, dlx)
    finally:
        for worker in workers:
            worker.stop(warm=False)
        tracked = [key.decode() for key in tracking.scan_iter(f"{prefix}:*")]
        task_ids = [key.rpartition(":")[2] for key in tracked if key.startswith(f"{prefix}:task:")]
        dlx.keys += [dlx.app.backend.get_key_for_task(task_id).decode() for task_id in task_ids]
        for key in tracked:  # one at a time: in a cluster they live in different slots
            tracking.delete(key)
        _cleanup(observer, dlx)


def watch(paging: Paging, tree: TreeResult, key: str, items: int, timeout: float = 20) -> list[TreeProgress]:
    """Poll ``tree`` until it is complete, checking at that moment that all ``items`` were
    processed: a tree that says done early is caught with work still missing."""
    history: list[TreeProgress] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        progress = tree.progress()
        history.append(progress)
        if progress.complete:
            assert paging.store.llen(key) == items, f"the tree said done with {paging.store.llen(key)} of {items} items"
            return history
        time.sleep(0.02)
    pytest.fail(f"tree {tree.id} not complete after {timeout} s: {history[-1]}")


def processed(paging: Paging, key: str) -> list[str]:
    return [item.decode() for item in paging.store.lrange(key, 0, -1)]


def test_known_size_launches_every_page_at_once_and_fetches_each_item_once(paging: Paging) -> None:
    name, key = paging.pages(Dataset(total=230, delay=0.05, fail_once=frozenset({50})))
    page = paging.app.tasks["pg.page"]
    tree = start_tree(offset_pages(page.s("offset", name, key), total=230, page_size=10))
    history = watch(paging, tree, key, 230)
    final = history[-1]
    assert (final.done, final.failed, final.pending) == (23, 0, 0)
    assert history[0].total == 23, "all pages are registered before any is sent"
    assert sorted(processed(paging, key)) == sorted(paging.api.items(name))
    stats = paging.api.stats(name)
    assert sorted(stats.served) == list(range(0, 230, 10)) and stats.requests == 24  # one 503, retried
    assert tree.parents() == {}, "nobody spawned them: they were launched together"
    assert state_of(tree.id, paging.app) == "SUCCESS"


def test_cursor_pages_follow_each_other_and_the_tree_is_done_only_after_the_last(paging: Paging) -> None:
    dataset = Dataset(total=137, delay=0.03, short_every=3, fail_once=frozenset({60}))
    name, key = paging.pages(dataset)
    page = paging.app.tasks["pg.page"]
    tree = start_tree(cursor_pages(page.s("cursor", name, key), page_size=10))
    history = watch(paging, tree, key, 137)
    served = paging.api.stats(name).served
    assert len(served) == len(set(served)), "no page was fetched twice"
    assert history[-1].done == history[-1].total == len(served)
    assert len({progress.total for progress in history}) > 5, "the tree was watched while it grew"
    assert sorted(processed(paging, key)) == sorted(paging.api.items(name))
    ids = [tree.id] + [f"{tree.id}.{n}" for n in range(1, len(served))]
    assert tree.parents() == dict(zip(ids[1:], ids)), "each page was spawned by the one before"
    assert paging.ledger.halts(tree.id) == {}, "short pages in the middle did not end the chain"


class SlowlyReadTree(TreeResult):
    """Reads states 50 ms after reading the ids: pages finish and spawn in between, the race an
    early "done" would come from."""

    def _states(self, task_ids: Sequence[str]) -> list[str]:
        time.sleep(0.05)
        return super()._states(task_ids)


def test_a_tree_read_while_pages_spawn_pages_is_never_done_early(paging: Paging) -> None:
    name, key = paging.pages(Dataset(total=120, delay=0.01))
    page = paging.app.tasks["pg.page"]
    tree = SlowlyReadTree(start_tree(cursor_pages(page.s("cursor", name, key), page_size=5)).id, app=paging.app)
    history = watch(paging, tree, key, 120)
    assert history[-1].done == history[-1].total == 24


def test_unknown_size_keeps_at_most_k_pages_in_flight_and_ends_on_blank_pages(paging: Paging) -> None:
    name, key = paging.pages(Dataset(total=95, delay=0.15, fail_once=frozenset({40})))
    page = paging.app.tasks["pg.page"]
    tree = start_tree(window_pages(page.s("unknown", name, key), page_size=10, max_in_flight=3))
    history = watch(paging, tree, key, 95)
    stats = paging.api.stats(name)
    assert 1 < stats.max_in_flight <= 3
    # 10 pages with items, then one blank page ends each of the 3 chains.
    assert sorted(stats.served) == list(range(0, 130, 10))
    assert history[-1].done == history[-1].total == 13
    assert sorted(processed(paging, key)) == sorted(paging.api.items(name))
    assert paging.ledger.halts(tree.id) == {}
    assert sum(tree.get(timeout=10)) == 95, "the values of every page, spawned ones too"


@pytest.mark.compat
def test_a_retrying_page_keeps_its_tree_pending(paging: Paging) -> None:
    name, key = paging.pages(Dataset(total=5, fail_once=frozenset({0})))
    tree = start_tree(offset_pages(paging.app.tasks["pg.page"].s("offset", name, key), total=5, page_size=10))
    states = []
    deadline = time.monotonic() + 10
    while not tree.ready() and time.monotonic() < deadline:
        states.append(state_of(tree.id, paging.app))
        time.sleep(0.02)
    assert "RETRY" in states, "the page spent its retry delay in RETRY while the tree was not ready"
    assert paging.store.llen(key) == 5 and tree.successful()


def test_a_failed_page_completes_the_tree_as_failed(paging: Paging) -> None:
    name, key = paging.pages(Dataset(total=30, broken=frozenset({10})))
    tree = start_tree(offset_pages(paging.app.tasks["pg.page"].s("offset", name, key), total=30, page_size=10))
    tree.wait(timeout=10, interval=0.05)
    assert tree.ready() and tree.failed() and not tree.successful()
    assert tree.completed_count() == 2 and tree.progress().failed == 1
    assert paging.store.llen(key) == 20


@pytest.mark.parametrize("kind", ["unknown", "cursor"])
def test_off_by_one_endless_single_item_pages_are_stopped(paging: Paging, kind: str) -> None:
    name, key = paging.pages(Dataset(total=45, delay=0.02, endless_tail=True))
    signature = paging.app.tasks["pg.page"].s(kind, name, key)
    canvas = window_pages(signature, 10, 2) if kind == "unknown" else cursor_pages(signature, 10)
    tree = start_tree(canvas)
    history = watch(paging, tree, key, 45)
    assert sorted(processed(paging, key)) == sorted(paging.api.items(name)), "the repeated last item counted once"
    assert set(paging.ledger.halts(tree.id).values()) == {Halt.REPEATED_PAGE}
    assert history[-1].total <= 9, "stopped within a couple of bogus pages"
    assert paging.ledger.item_count(tree.id) == 45


def test_state_of_tells_unknown_ids_from_pending_ones(paging: Paging) -> None:
    never_sent = uuid.uuid4().hex
    assert paging.app.AsyncResult(never_sent).state == "PENDING"  # Celery's answer: indistinguishable
    assert state_of(never_sent, paging.app) == UNKNOWN
    waiting = start_tree(paging.app.tasks["pg.noop"].s(), queue=paging.dlx.queues[2])  # nobody consumes it
    assert state_of(waiting.id, paging.app) == "PENDING"
    progress = waiting.progress()
    assert (progress.pending, progress.complete) == (1, False)


@pytest.mark.compat
def test_a_hanging_socket_is_cut_by_the_soft_limit_and_retried_through_the_broker(paging: Paging) -> None:
    key = paging.dlx.key()
    result = paging.app.tasks["pg.raw_hang"].delay(key, uuid.uuid4().hex)
    first, second = wait_for_arrivals(paging.store, key, 2, timeout=15)
    assert second["retries"] == 1 and second["due"] is not None, "the retry came back through the delay queues"
    assert second["t"] - first["t"] >= SOFT_LIMIT + RETRY_DELAY
    assert result.get(timeout=10) == "ok"


def test_timed_session_ends_a_hang_where_the_soft_limit_cannot_fire(paging: Paging) -> None:
    """The threads pool never fires soft limits; the session's read timeout is what ends the hang."""
    key = paging.dlx.key()
    task = paging.app.tasks["pg.session_hang"]
    result = task.apply_async((key, uuid.uuid4().hex), queue=paging.dlx.queues[1])
    first, second = wait_for_arrivals(paging.store, key, 2, timeout=15)
    assert second["retries"] == 1 and second["due"] is not None
    waited = second["t"] - first["t"] - RETRY_DELAY
    assert SOFT_LIMIT - SESSION_MARGIN <= waited < SOFT_LIMIT + 1.0
    assert result.get(timeout=10) == "ok"
