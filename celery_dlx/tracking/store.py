"""Dependency trees of tasks in Redis, and a ``ResultSet`` that knows when a whole tree is done.

"Done?" is hard in a distributed system: a tree of page tasks grows while it runs, and Celery
reports ``PENDING`` both for a task that has not run yet and for an id it never heard of.  So:

- every task started through this module is *registered* in Redis before it is sent: the root
  by :func:`start_tree`, children by :func:`spawn` (called by the running parent, so a child is
  registered before its parent finishes);
- :class:`TreeResult` reads the tree's ids, then their states from the result backend, then
  counts the ids again (:func:`celery_dlx.tracking.progress.observe_tree`), and says ``ready()`` only
  when every state is final *and* no id was added meanwhile.  It never says done early: a task
  that is retrying is in RETRY, not final; a child spawned after the ids were read was
  registered before its parent's final state was written, so the second count sees it;
- :func:`state_of` answers ``UNKNOWN`` for an id nobody registered, ``PENDING`` only for one
  that was registered and has not run.

Requirements, checked up front: a key-value result backend (Redis, the usual choice) and tasks
that store their results (``ignore_result=False``); a task whose state is never stored would
look pending forever, so tracking one raises :class:`UntrackableTask`.  Results must outlive the
tree (``result_expires``, one day by default); tree keys expire after ``dlx_tracking_ttl``.

Settings: ``dlx_tracking_url`` (Redis for trees and page ledgers; default: the result backend
when it is Redis), ``dlx_tracking_ttl`` (seconds, default 7 days), ``dlx_prefix``.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from celery import Celery, Task, current_app
from celery.backends.base import BaseKeyValueStoreBackend
from celery.canvas import Signature, group
from celery.exceptions import TimeoutError as CeleryTimeoutError
from celery.result import AsyncResult, ResultSet
from celery.states import PENDING

from ..errors import CeleryDLXError, ConfigurationError
from ..redisio.client import Client, configured_url, shared_client
from ..redisio.keys import tagged
from ..redisio.scripts import lua_source
from ..settings import Settings
from .progress import SUCCESS, TreeProgress, observe_tree

#: ``state_of`` for an id celery_dlx never registered (or whose registration expired).
UNKNOWN = "UNKNOWN"
DEFAULT_TTL = 7 * 24 * 3600
#: Ids per MGET when reading states, so a tree of 20 000 pages is not one giant command.
_STATE_BATCH = 1000


class UntrackableTask(ConfigurationError):
    """A task that cannot be tracked: its result is ignored, or the backend cannot be read."""


class UnknownTree(CeleryDLXError, LookupError):
    """No tree is registered under this root id (never started here, or expired)."""


@dataclass(frozen=True)
class TrackingConfig:
    """Where trees (and page ledgers) live and for how long."""

    url: str
    prefix: str
    ttl: int

    @classmethod
    def from_conf(cls, conf: Mapping[str, Any]) -> TrackingConfig:
        url = configured_url(conf, "dlx_tracking_url")
        if not url:
            raise ConfigurationError(
                "celery_dlx tracking needs Redis: set dlx_tracking_url (the result backend is not Redis)"
            )
        ttl = conf.get("dlx_tracking_ttl", DEFAULT_TTL)
        if isinstance(ttl, bool) or not isinstance(ttl, int) or ttl < 1:
            raise ConfigurationError(f"dlx_tracking_ttl must be a whole number of seconds >= 1, got {ttl!r}")
        return cls(url, Settings.from_conf(conf).prefix, ttl)

    @property
    def client(self) -> Client:
        return shared_client(self.url)


class TreeStore:
    """The registered ids of each tree, the parent of each spawned id, and the tree of each id.

    Keys: ``<prefix>:tree:{<root>}:nodes`` (set), ``<prefix>:tree:{<root>}:parents`` (hash
    child → parent), both in the slot of the root id (:func:`~celery_dlx.redisio.keys.tagged`),
    and ``<prefix>:task:<id>`` (the root), all expiring after the TTL.
    """

    def __init__(self, config: TrackingConfig) -> None:
        self.config = config
        self.client = config.client
        self._register = self.client.register_script(lua_source(__package__, "register"))

    @classmethod
    def for_app(cls, app: Celery) -> TreeStore:
        return cls(TrackingConfig.from_conf(app.conf))

    def _key(self, root_id: str, name: str) -> str:
        return f"{tagged(self.config.prefix + ':tree', root_id)}:{name}"

    def task_key(self, task_id: str) -> str:
        return f"{self.config.prefix}:task:{task_id}"

    def register(self, root_id: str, parent_id: str | None, task_ids: Sequence[str]) -> None:
        """Add ``task_ids`` to the tree of ``root_id`` (idempotent).

        Two steps, because the ids' own keys live in other cluster slots than the tree's: the
        tree's ids and parents in one script (atomic, one slot), then each id's root in one
        pipelined round trip.  Both happen before any of the tasks is sent, and a failure
        raises before sending, so nobody can see a sent task that is not fully registered;
        registering again completes a half-done registration.
        """
        ttl = self.config.ttl
        keys = [self._key(root_id, "nodes"), self._key(root_id, "parents")]
        self._register(keys=keys, args=[ttl, parent_id or "", *task_ids])
        with self.client.pipeline(transaction=False) as pipe:
            for task_id in task_ids:
                pipe.set(self.task_key(task_id), root_id, ex=ttl)
            pipe.execute()

    def nodes(self, root_id: str) -> list[str]:
        return [str(member) for member in self.client.smembers(self._key(root_id, "nodes"))]

    def count(self, root_id: str) -> int:
        return int(self.client.scard(self._key(root_id, "nodes")))

    def parents(self, root_id: str) -> dict[str, str]:
        """``{child id: parent id}`` for every task spawned by another task of the tree."""
        return {str(child): str(parent) for child, parent in self.client.hgetall(self._key(root_id, "parents")).items()}

    def is_known(self, task_id: str) -> bool:
        return bool(self.client.exists(self.task_key(task_id)))


def start_tree(canvas: Signature, **options: Any) -> TreeResult:
    """Register and send ``canvas`` (a signature, or a group of signatures) as a new tree.

    The first task's id is the root id; every task of the canvas gets it as Celery's
    ``root_id``, so the children they spawn join the same tree.  ``options`` go to
    ``apply_async``.
    """
    app = canvas.app
    members = _members(canvas)
    _require_results(app, members, options)
    root_id = members[0].freeze().id
    for member in members:
        member.freeze()
        member.set(root_id=root_id)
    TreeStore.for_app(app).register(root_id, None, [member.id for member in members])
    canvas.apply_async(**options)
    return TreeResult(root_id, app=app)


def spawn(parent: Task, children: Sequence[Signature], **options: Any) -> list[AsyncResult]:
    """Send ``children`` from the running task ``parent``, registering them in its tree first.

    Ids already set on the signatures are kept (sending the same child again is then harmless
    for the tree); ``options`` go to each ``apply_async``.
    """
    request = parent.request
    if request.id is None or request.called_directly:
        raise CeleryDLXError("spawn() sends children of a running task; call it from the task's body")
    app = parent.app
    members = [_plain(child) for child in children]
    _require_results(app, members, options)
    ids = [member.freeze().id for member in members]
    TreeStore.for_app(app).register(request.root_id or request.id, request.id, ids)
    with app.producer_or_acquire() as producer:
        return [member.apply_async(producer=producer, **options) for member in members]


def state_of(task_id: str, app: Celery | None = None) -> str:
    """The task's state, with ``UNKNOWN`` instead of ``PENDING`` for ids never registered here.

    Celery reports ``PENDING`` for any id it has no result for; for ids sent through
    :func:`start_tree` or :func:`spawn` (or a page task), ``PENDING`` here means "registered,
    not run yet".
    """
    app = app or current_app
    state = str(app.AsyncResult(task_id).state)
    if state == PENDING and not TreeStore.for_app(app).is_known(task_id):
        return UNKNOWN
    return state


class TreeResult(ResultSet):
    """The results of every task of a tree, including children spawned while it runs.

    ``ready()`` is True once every task has finished and none can spawn more; ``successful()``
    once that is so and none failed; ``failed()`` as soon as one failed; ``progress()`` gives
    the counts.  ``results`` holds the tasks seen by the latest evaluation; ``join()`` and
    ``get()`` wait for the whole tree before collecting values.  Needs ``ignore_result=False``
    on every tracked task and a key-value result backend (Redis).
    """

    def __init__(self, root_id: str, app: Celery | None = None) -> None:
        super().__init__([], app=app)
        self.id = root_id
        self._backend = _kv_backend(self.app)
        self._store = TreeStore.for_app(self.app)
        #: Ids seen in SUCCESS: a key-value backend never overwrites SUCCESS, so they are not
        #: read again (a poll then costs the unfinished tasks, not the whole tree).
        self._succeeded: set[str] = set()

    def progress(self) -> TreeProgress:
        """Done, failed and pending counts, and whether the whole tree is complete."""
        snapshot = observe_tree(lambda: self._store.nodes(self.id), self._states, lambda: self._store.count(self.id))
        if not snapshot.nodes:
            raise UnknownTree(f"no task tree is registered under {self.id!r} (never started, or expired)")
        self.results = [self.app.AsyncResult(task_id) for task_id in snapshot.nodes]
        return snapshot

    def parents(self) -> dict[str, str]:
        """The dependency tree: ``{child id: parent id}`` for every spawned task."""
        return self._store.parents(self.id)

    def ready(self) -> bool:
        return self.progress().complete

    def waiting(self) -> bool:
        return not self.ready()

    def successful(self) -> bool:
        progress = self.progress()
        return progress.complete and progress.failed == 0

    def failed(self) -> bool:
        return self.progress().failed > 0

    def completed_count(self) -> int:
        return self.progress().done

    def wait(self, timeout: float | None = None, interval: float = 0.5) -> TreeProgress:
        """Poll until the whole tree is complete; raise Celery's ``TimeoutError`` after
        ``timeout`` seconds."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while not (progress := self.progress()).complete:
            if deadline is not None and time.monotonic() >= deadline:
                raise CeleryTimeoutError(f"task tree {self.id} not complete after {timeout} s: {progress}")
            time.sleep(interval)
        return progress

    def join(
        self, timeout: float | None = None, propagate: bool = True, interval: float = 0.5, **kwargs: Any
    ) -> list[Any]:
        remaining = self._wait_for_tree(timeout, interval)
        results: list[Any] = super().join(timeout=remaining, propagate=propagate, interval=interval, **kwargs)
        return results

    def join_native(self, *args: Any, **kwargs: Any) -> list[Any]:
        """Same as :meth:`join`: Celery's native join waits on a barrier of the results known
        when the set was built, which a growing tree does not have."""
        return self.join(*args, **kwargs)

    @property
    def supports_native_join(self) -> bool:
        return False  # so ``get()`` uses :meth:`join`

    def _wait_for_tree(self, timeout: float | None, interval: float) -> float | None:
        """Wait for the whole tree (Celery's join would only wait for the tasks known now) and
        return what is left of ``timeout``."""
        started = time.monotonic()
        self.wait(timeout, interval)
        return None if timeout is None else max(timeout - (time.monotonic() - started), 0.0)

    def _states(self, task_ids: Sequence[str]) -> list[str]:
        unread = [task_id for task_id in task_ids if task_id not in self._succeeded]
        read = dict(zip(unread, self._read_states(unread)))
        self._succeeded.update(task_id for task_id, state in read.items() if state == SUCCESS)
        return [read.get(task_id, SUCCESS) for task_id in task_ids]

    def _read_states(self, task_ids: Sequence[str]) -> Iterator[str]:
        backend = self._backend
        for start in range(0, len(task_ids), _STATE_BATCH):
            keys = [backend.get_key_for_task(task_id) for task_id in task_ids[start : start + _STATE_BATCH]]
            values = backend.mget(keys)
            if isinstance(values, Mapping):  # the cache backend answers with a mapping
                values = [values.get(key) for key in keys]
            for value in values:
                meta = backend.decode(value) if value else None
                yield meta["status"] if meta else PENDING


def _kv_backend(app: Celery) -> BaseKeyValueStoreBackend:
    backend = app.backend
    if not isinstance(backend, BaseKeyValueStoreBackend):
        raise UntrackableTask(
            f"task trees read states from a key-value result backend (Redis); this app's backend is "
            f"{type(backend).__name__}: set result_backend to redis://…"
        )
    return backend


def _plain(signature: Signature) -> Signature:
    if type(signature) is not Signature:
        raise TypeError(
            f"only plain task signatures (and groups of them) can be tracked, not {type(signature).__name__}: "
            "spawn each task from the task that sends it"
        )
    return signature


def _members(canvas: Signature) -> list[Signature]:
    if isinstance(canvas, group):
        members = [_plain(task) for task in canvas.tasks]
        if not members:
            raise ValueError("cannot track an empty group")
        return members
    return [_plain(canvas)]


def _require_results(app: Celery, signatures: Sequence[Signature], options: Mapping[str, Any]) -> None:
    """Refuse to track a task whose state would never be stored (it would look pending forever)."""
    _kv_backend(app)
    for signature in signatures:
        task = app.tasks.get(signature.task)
        default = task.ignore_result if task is not None else app.conf.task_ignore_result
        if {**signature.options, **options}.get("ignore_result", default):
            raise UntrackableTask(
                f"task {signature.task} ignores its result (ignore_result=True), so its tree could never be "
                "seen as done; tracked tasks need ignore_result=False"
            )
