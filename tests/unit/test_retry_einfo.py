"""DLXTask drops billiard's copy of a retry's traceback frames, keeps the text, and only after
Celery's ``task_retry`` signal, whose receivers (error trackers) still get the frames."""

from __future__ import annotations

import pickle
import sys
from collections.abc import Iterator
from typing import Any

import pytest
from billiard.einfo import ExceptionInfo
from celery import Celery, Task
from celery.app.trace import TraceInfo
from celery.exceptions import Retry
from celery.signals import task_retry
from celery.states import RETRY

from celery_dlx import DLXTask

#: Celery-facing: runs on every supported Celery minor (nox -s compat).
pytestmark = pytest.mark.compat


def _raise_retry() -> None:
    """A Retry raised two calls deep, as a task's ``raise self.retry(...)`` is."""

    def inner() -> None:
        raise Retry("again in 60s", exc=ValueError("upstream said 503"), when=60)

    inner()


def _handle_retry(task: Task) -> ExceptionInfo:
    """Run Celery's own retry handling (the tracer's) for a Retry raised in ``task``."""
    try:
        _raise_retry()
    except Retry as retry:
        info = TraceInfo(RETRY, retry)
        task.push_request(id="id-1", args=(), kwargs={})
        try:
            einfo: ExceptionInfo = info.handle_retry(task, task.request, store_errors=False)
        finally:
            task.pop_request()
        return einfo
    raise AssertionError("Retry was not raised")


@pytest.fixture
def seen() -> Iterator[list[dict[str, Any]]]:
    """What a ``task_retry`` receiver connected before any retry saw of the traceback."""
    records: list[dict[str, Any]] = []

    def receiver(sender: Any = None, einfo: Any = None, **_: Any) -> None:
        records.append({"tb": einfo.tb, "pickled": len(pickle.dumps(einfo))})

    task_retry.connect(receiver, weak=False)
    yield records
    task_retry.disconnect(receiver)


def _task(base: type[Task]) -> Task:
    app = Celery("einfo", set_as_current=False)

    @app.task(shared=False, bind=True, base=base)
    def flaky(self: Task) -> None:  # pragma: no cover - never run, only its retry handling
        raise self.retry()

    return flaky


def test_receivers_see_the_frames_and_the_result_drops_them(seen: list[dict[str, Any]]) -> None:
    einfo = _handle_retry(_task(DLXTask))

    (record,) = seen
    assert record["tb"] is not None, "a task_retry receiver must still get the traceback frames"
    assert einfo.tb is None
    text = einfo.traceback
    assert "inner" in text and "upstream said 503" in text
    assert einfo.exc_info[:2] == (Retry, einfo.exception)
    after = len(pickle.dumps(einfo))
    assert after < record["pickled"]
    if sys.version_info >= (3, 11):  # the co_positions tables are what made the copy heavy
        assert record["pickled"] - after > 1000


def test_a_receiver_connected_after_the_first_retry_still_sees_the_frames() -> None:
    task = _task(DLXTask)
    _handle_retry(task)  # celery_dlx's receiver is connected by now
    late: list[Any] = []

    def receiver(sender: Any = None, einfo: Any = None, **_: Any) -> None:
        late.append(einfo.tb)

    task_retry.connect(receiver, weak=False)
    try:
        einfo = _handle_retry(task)
    finally:
        task_retry.disconnect(receiver)
    assert late and late[0] is not None
    assert einfo.tb is None


def test_plain_celery_tasks_keep_their_frames(seen: list[dict[str, Any]]) -> None:
    einfo = _handle_retry(_task(DLXTask))
    assert einfo.tb is None
    assert _handle_retry(_task(Task)).tb is not None
