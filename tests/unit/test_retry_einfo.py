"""DLXTask.on_retry drops billiard's copy of a retry's traceback frames and keeps the text."""

from __future__ import annotations

import pickle
import sys

import pytest
from billiard.einfo import ExceptionInfo
from celery import Celery
from celery.exceptions import Retry

from celery_dlx import DLXTask

#: Celery-facing: runs on every supported Celery minor (nox -s compat).
pytestmark = pytest.mark.compat


def _retry_einfo() -> ExceptionInfo:
    """The einfo Celery's tracer builds for a Retry raised two calls deep."""

    def inner() -> None:
        raise Retry("again in 60s", exc=ValueError("upstream said 503"), when=60)

    def outer() -> None:
        inner()

    try:
        outer()
    except Retry:
        return ExceptionInfo(sys.exc_info())
    raise AssertionError("Retry was not raised")


def test_on_retry_keeps_the_formatted_traceback_and_drops_the_frame_copy() -> None:
    app = Celery("einfo", set_as_current=False)

    @app.task(shared=False, bind=True, base=DLXTask)
    def flaky(self: DLXTask) -> None:  # pragma: no cover - never run, only its on_retry
        raise self.retry()

    einfo = _retry_einfo()
    text = einfo.traceback
    before = len(pickle.dumps(einfo))

    flaky.on_retry(einfo.exception.exc, "id-1", (), {}, einfo)

    assert einfo.tb is None
    assert einfo.traceback == text
    assert "inner" in text and "upstream said 503" in text
    assert einfo.exc_info[:2] == (Retry, einfo.exception)
    after = len(pickle.dumps(einfo))
    assert after < before
    if sys.version_info >= (3, 11):  # the co_positions tables are what made the copy heavy
        assert before - after > 1000
