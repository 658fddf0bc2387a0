"""Paginated fetching as a tree of small page tasks: canvas builders, the page task, its ledger.

One request ("sync this account's 2 million followers") becomes one task per page, one API
call each; :mod:`celery_dlx.pagination.plans` plans the pages, :mod:`celery_dlx.tracking.store` knows when the
whole tree is done.  A page task gets the run's own arguments (ids, never API data) and a
``page`` (offset or cursor, size: primitives only), and calls :meth:`PageTask.turn_page`
with the ids of what it fetched, which

1. records the page in the run's ledger in Redis, atomically, and returns the ids this page
   *owns*: the ones no other page of the run saw first — the same ids again if the page runs
   twice (a retry), none of another page's (an API that repeats items);
2. applies the guards (repeated cursor or page, too many pages, no progress);
3. registers and sends the next pages (cursor: the next one; window: the one ``K`` further).

The page task processes only the ids it owns, so every item is processed by one page of the
run and counted once, however often pages are retried or redelivered.  A page that finished is
not run again (a duplicate delivery returns at once), and the next pages have ids derived from
the run, so sending them again after a retry does not start second copies in the tree.  Make
the processing itself idempotent (an upsert): a page that fails after processing runs again.

Example (``pages.Page`` has ``offset``/``cursor``/``size``)::

    http = TimedSession()

    @app.task(bind=True, base=PageTask, page_guards=Guards(max_pages=50_000))
    def followers_page(self, account_id, page):
        body = http.get(f"{API}/users/{account_id}/followers",
                        params={"offset": page.offset, "limit": page.size}).json()
        users = {user["id"]: user for user in body["users"]}
        for user_id in self.turn_page(page, users):    # launches the next pages first
            save_follower(account_id, users[user_id])  # only what this page owns
        return len(users)

    tree = start_tree(window_pages(followers_page.s(account_id), page_size=100, max_in_flight=8))
    tree.wait()                       # or poll tree.progress() / tree.ready()
    PageLedger.for_app(app).halts(tree.id)   # guards that stopped a chain, if any
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable
from typing import Any, cast

from celery import Celery, Task
from celery.canvas import Signature, group

from ..broker.destination import origin_queue
from ..compat import RequestKeptOnCall
from ..errors import CeleryDLXError
from ..redisio.keys import tagged
from ..redisio.scripts import lua_source
from ..retry import DLXTask
from ..softlimit.task import SoftLimitRetry
from ..tracking.store import TrackingConfig, spawn
from .plans import Guards, Halt, Observation, Page, cursor_plan, fingerprint, next_step, offset_plan, window_plan

logger = logging.getLogger(__name__)


class PaginationError(CeleryDLXError):
    """A page task broke the protocol (it returned without turning its page)."""


class PageLedger:
    """What the pages of each run saw, in Redis, under ``<prefix>:pages:{<run>}:…`` (one
    Redis Cluster slot per run, so a page's scripts may touch all of them).

    ``items`` (item id → owning page), ``cursors`` and ``contents`` (next cursor / content
    fingerprint → first page that returned it), ``turned`` and ``finished`` (page numbers),
    ``halts`` (page number → guard).  Everything expires after ``dlx_tracking_ttl``.
    """

    def __init__(self, config: TrackingConfig) -> None:
        self.config = config
        self.client = config.client
        self._observe = self.client.register_script(lua_source(__package__, "observe"))
        self._finish = self.client.register_script(lua_source(__package__, "finish"))

    @classmethod
    def for_app(cls, app: Celery) -> PageLedger:
        return cls(TrackingConfig.from_conf(app.conf))

    def _key(self, run: str, name: str) -> str:
        return f"{tagged(self.config.prefix + ':pages', run)}:{name}"

    def observe(self, page: Page, item_ids: list[str], cursor: str | None) -> tuple[Observation, list[str]]:
        """Record what ``page`` fetched; return the observation and the ids the page owns."""
        keys = [self._key(page.run, name) for name in ("items", "cursors", "contents", "turned")]
        args: list[str | int] = [self.config.ttl, page.number, cursor or "", fingerprint(item_ids) or "", *item_ids]
        owned, cursor_page, content_page = self._observe(keys=keys, args=args)
        seen = Observation(
            items=len(item_ids),
            new_items=len(owned),
            cursor=cursor,
            cursor_page=int(cursor_page) if cursor_page else None,
            content_page=int(content_page) if content_page else None,
        )
        return seen, [str(item_id) for item_id in owned]

    def finish(self, page: Page) -> bool:
        """Mark ``page`` finished; False if it was never turned."""
        keys = [self._key(page.run, "turned"), self._key(page.run, "finished")]
        return bool(self._finish(keys=keys, args=[self.config.ttl, page.number]))

    def finished(self, page: Page) -> bool:
        return bool(self.client.sismember(self._key(page.run, "finished"), str(page.number)))

    def halt(self, page: Page, reason: Halt) -> None:
        key = self._key(page.run, "halts")
        # Not MULTI: redis-py's cluster client has transactions only from 6.1.  One key, two
        # commands in one write on one connection: Redis applies them in order.
        with self.client.pipeline(transaction=False) as pipe:
            pipe.hset(key, page.number, reason.value)
            pipe.expire(key, self.config.ttl)
            pipe.execute()

    def halts(self, run: str) -> dict[int, Halt]:
        """``{page number: guard}`` for every chain of ``run`` a guard stopped."""
        return {int(number): Halt(reason) for number, reason in self.client.hgetall(self._key(run, "halts")).items()}

    def item_count(self, run: str) -> int:
        """Distinct items the pages of ``run`` have fetched so far."""
        return int(self.client.hlen(self._key(run, "items")))


class Paginated(RequestKeptOnCall):
    """Mixin for a Celery ``Task`` class: the page protocol (see the module docstring).

    The task is called with ``page=`` (a :class:`~celery_dlx.pagination.plans.Page` in message form) and
    its body receives a :class:`~celery_dlx.pagination.plans.Page`.  ``page_guards`` sets the guards.
    """

    #: Limits against endless pagination (a task option: ``@app.task(page_guards=Guards(...))``).
    page_guards: Guards = Guards()

    def __call__(self, *args: Any, page: Any, **kwargs: Any) -> Any:
        task = cast(Task, self)
        current = Page.from_message(page)
        ledger = PageLedger.for_app(task.app)
        if ledger.finished(current):
            logger.info(
                "%s: page %d of run %s is already done; duplicate skipped", task.name, current.number, current.run
            )
            return None
        result = super().__call__(*args, page=current, **kwargs)  # type: ignore[misc]
        if not ledger.finish(current):
            raise PaginationError(
                f"{task.name} returned without calling self.turn_page(page, ...) for page {current.number} "
                f"of run {current.run}: the pages after it would never be fetched"
            )
        return result

    def turn_page(self, page: Page, item_ids: Iterable[Any], cursor: Any = None) -> list[str]:
        """Record the ids ``page`` fetched (and the API's next ``cursor``), launch the next
        pages, and return the ids (as strings) this page owns and should process.

        Call it once per page, as soon as the response is in: the next page then starts while
        this one processes its items.
        """
        task = cast(Task, self)
        ids = list(dict.fromkeys(str(item_id) for item_id in item_ids))
        ledger = PageLedger.for_app(task.app)
        seen, owned = ledger.observe(page, ids, None if cursor is None else str(cursor))
        step = next_step(page, seen, self.page_guards)
        if step.halt is not None:
            ledger.halt(page, step.halt)
            logger.warning("%s: run %s stopped after page %d: %s", task.name, page.run, page.number, step.halt.value)
        if step.pages:
            spawn(task, [self._signature_for(next_page) for next_page in step.pages])
        return owned

    def _signature_for(self, page: Page) -> Signature:
        """The next page: the same run arguments, the new page, back to the queue this page came
        from (a whale's pages stay on the whale's queue)."""
        task = cast(Task, self)
        request = task.request
        kwargs = {**(request.kwargs or {}), "page": page.to_message()}
        return task.signature(request.args, kwargs, task_id=page.task_id, queue=origin_queue(task))


class PageTask(SoftLimitRetry, Paginated, DLXTask):
    """Base class of page tasks: the page protocol, retries through the broker, and a soft time
    limit that retries instead of failing.  Results are stored (trees need them)."""

    abstract = True
    ignore_result = False


def offset_pages(signature: Signature, total: int, page_size: int) -> group:
    """All pages of a set of known size, to be launched at once: ``start_tree(offset_pages(...))``."""
    guards = _page_task(signature).page_guards
    return group(_page_signatures(signature, offset_plan(_new_run(), total, page_size, guards)))


def cursor_pages(signature: Signature, page_size: int, cursor: str | None = None) -> Signature:
    """The first page of a cursor chain; each page launches the next when it has the cursor."""
    _page_task(signature)
    (first,) = _page_signatures(signature, cursor_plan(_new_run(), page_size, cursor))
    return first


def window_pages(signature: Signature, page_size: int, max_in_flight: int) -> group:
    """The first ``max_in_flight`` pages of a set of unknown size; each non-blank page launches
    the page ``max_in_flight`` pages further on, so at most that many are in flight."""
    guards = _page_task(signature).page_guards
    return group(_page_signatures(signature, window_plan(_new_run(), page_size, max_in_flight, guards)))


def _new_run() -> str:
    return uuid.uuid4().hex


def _page_task(signature: Signature) -> Paginated:
    task = signature.type
    if not isinstance(task, Paginated):
        raise TypeError(f"{signature.task} is not a page task: declare it with base=PageTask")
    return task


def _page_signatures(signature: Signature, pages: list[Page]) -> list[Signature]:
    return [signature.clone(kwargs={"page": page.to_message()}).set(task_id=page.task_id) for page in pages]
