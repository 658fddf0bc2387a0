"""Outside a worker (eager mode, direct calls) delayed_retry behaves like Celery's retry."""

from __future__ import annotations

import pytest
from celery import Celery
from tenacity import wait_fixed

from celery_dlx import DLXTask, delayed_retry

#: Celery-facing: runs on every supported Celery minor (nox -s compat).
pytestmark = pytest.mark.compat


@pytest.fixture
def app() -> Celery:
    app = Celery("eager", set_as_current=False)
    app.conf.update(task_always_eager=True, broker_url="memory://")
    return app


def test_eager_retries_run_in_process_until_success(app: Celery) -> None:
    attempts: list[int] = []

    @app.task(shared=False, bind=True, base=DLXTask, max_retries=5)
    def flaky(self: DLXTask) -> str:
        attempts.append(self.request.retries)
        if self.request.retries < 3:
            raise self.delayed_retry(countdown=3600)
        return "done"

    assert flaky.delay().get() == "done"
    assert attempts == [0, 1, 2, 3]


def test_eager_retry_through_self_retry_and_wait(app: Celery) -> None:
    attempts: list[int] = []

    @app.task(shared=False, bind=True, base=DLXTask, retry_wait=wait_fixed(60))
    def flaky(self: DLXTask) -> str:
        attempts.append(self.request.retries)
        if self.request.retries < 2:
            raise self.retry()
        return "done"

    assert flaky.delay().get() == "done"
    assert attempts == [0, 1, 2]


def _outcome(app: Celery, retry_with: str, fails: int, max_retries: int, exc: Exception | None) -> tuple[list[int], str]:
    """Run a task failing ``fails`` times eagerly; return its attempts and how it ended."""
    attempts: list[int] = []

    @app.task(shared=False, bind=True, max_retries=max_retries, name=f"t.{retry_with}.{fails}.{max_retries}.{exc!r}")
    def task(self: DLXTask) -> str:
        attempts.append(self.request.retries)
        if self.request.retries < fails:
            if retry_with == "celery":
                raise self.retry(countdown=1, exc=exc)
            raise delayed_retry(self, countdown=1, exc=exc)
        return "done"

    result = task.apply()
    value = result.result
    ended = f"{type(value).__name__}{value.args[:1] if isinstance(value, KeyError) else ''}" if isinstance(value, BaseException) else str(value)
    return attempts, f"{result.state}:{ended}"


@pytest.mark.parametrize("fails, max_retries", [(1, 3), (3, 3), (5, 2), (2, 0)])
@pytest.mark.parametrize("exc", [None, KeyError("boom")])
def test_eager_outcome_matches_celerys_retry(app: Celery, fails: int, max_retries: int, exc: Exception | None) -> None:
    ours = _outcome(app, "dlx", fails, max_retries, exc)
    celerys = _outcome(app, "celery", fails, max_retries, exc)
    assert ours == celerys


def test_eager_max_retries_reraises_exc(app: Celery) -> None:
    attempts, ended = _outcome(app, "dlx", 5, 2, KeyError("boom"))
    assert attempts == [0, 1, 2]
    assert ended == "FAILURE:KeyError('boom',)"
    attempts, ended = _outcome(app, "dlx", 5, 1, None)
    assert ended == "FAILURE:MaxRetriesExceededError"


def test_called_directly_raises_like_celery(app: Celery) -> None:
    @app.task(shared=False, bind=True, base=DLXTask)
    def direct(self: DLXTask) -> None:
        raise self.delayed_retry(countdown=5, exc=RuntimeError("direct"))

    with pytest.raises(RuntimeError, match="direct"):
        direct()


def test_only_one_of_eta_countdown_and_wait(app: Celery) -> None:
    @app.task(shared=False, bind=True, base=DLXTask)
    def ambiguous(self: DLXTask) -> None:
        raise self.delayed_retry(countdown=5, wait=wait_fixed(1))

    with pytest.raises(ValueError, match="at most one of eta, countdown and wait"):
        ambiguous.apply(throw=True).get()
