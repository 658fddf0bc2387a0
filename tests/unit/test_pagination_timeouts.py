"""HTTP timeouts from the soft time limit, and the soft limit turned into a retry (no servers)."""

from __future__ import annotations

import time

import pytest
from celery import Celery, Task
from celery.exceptions import SoftTimeLimitExceeded

from celery_dlx.softlimit.http_timeouts import HttpTimeouts, http_timeouts
from celery_dlx.softlimit.task import SoftLimitReached, SoftLimitTask, remaining_soft_time, soft_time_limit, start_clock

#: Celery-facing: runs on every supported Celery minor (nox -s compat).
pytestmark = pytest.mark.compat


def test_without_a_soft_limit_the_caps_apply() -> None:
    assert http_timeouts(3.05, 30, None, 1.0) == HttpTimeouts(3.05, 30.0)


def test_the_time_left_before_the_soft_limit_lowers_the_caps() -> None:
    assert http_timeouts(3.0, 30.0, 100.0, 1.0) == HttpTimeouts(3.0, 30.0, 99.0)
    limits = http_timeouts(3.0, 30.0, 11.0, 1.0)
    assert limits is not None and limits.as_tuple() == (3.0, 10.0)
    assert http_timeouts(3.0, 30.0, 2.5, 1.0) == HttpTimeouts(1.5, 1.5, 1.5)


def test_no_request_starts_once_the_margin_is_reached() -> None:
    assert http_timeouts(3.0, 30.0, 1.0, 1.0) is None
    assert http_timeouts(3.0, 30.0, -5.0, 1.0) is None


def test_a_timeout_counts_as_the_soft_limit_only_where_the_limit_set_it() -> None:
    limits = http_timeouts(3.0, 30.0, 11.0, 1.0)
    assert limits is not None
    assert limits.set_by_limit("read") and not limits.set_by_limit("connect")
    assert not HttpTimeouts(3.0, 30.0).set_by_limit("read")


@pytest.mark.parametrize("connect, read, margin", [(0, 30, 1), (3, float("nan"), 1), (3, 30, -1), (True, 30, 1)])
def test_nonsense_timeouts_are_refused(connect: float, read: float, margin: float) -> None:
    with pytest.raises(ValueError):
        http_timeouts(connect, read, None, margin)


@pytest.fixture
def app() -> Celery:
    app = Celery("softlimit", set_as_current=False)
    app.conf.update(task_always_eager=True, broker_url="memory://")
    start_clock()  # plain tasks below read the clock; nothing connects it at import
    return app


def test_the_clock_starts_with_the_task(app: Celery) -> None:
    seen: list[tuple[float | None, float | None]] = []

    @app.task(shared=False, bind=True, soft_time_limit=30)
    def timed(self: Task) -> None:
        time.sleep(0.2)
        seen.append((soft_time_limit(self), remaining_soft_time(self)))

    timed.apply()
    ((limit, remaining),) = seen
    assert limit == 30 and remaining is not None and 29.5 < remaining <= 29.8


def test_the_limit_a_message_carries_wins_over_the_tasks(app: Celery) -> None:
    @app.task(shared=False, soft_time_limit=30)
    def timed() -> None: ...

    timed.push_request(timelimit=(None, 5))
    try:
        assert soft_time_limit(timed) == 5
        remaining = remaining_soft_time(timed)  # outside a worker the clock starts now
        assert remaining is not None and 4.9 < remaining <= 5
    finally:
        timed.pop_request()


def test_no_soft_limit_means_no_remaining_time(app: Celery) -> None:
    @app.task(shared=False, bind=True)
    def untimed(self: Task) -> float | None:
        return remaining_soft_time(self)

    assert untimed.apply().get() is None


def test_the_soft_limit_retries_the_task(app: Celery) -> None:
    attempts: list[int] = []

    @app.task(shared=False, bind=True, base=SoftLimitTask, max_retries=3, default_retry_delay=60)
    def slow(self: SoftLimitTask) -> str:
        attempts.append(self.request.retries)
        if self.request.retries < 2:
            raise SoftLimitReached("cut at the socket") if attempts[-1] else SoftTimeLimitExceeded()
        return "done"

    assert slow.delay().get() == "done"
    assert attempts == [0, 1, 2]


def test_the_soft_limit_fails_the_task_when_retries_are_off_or_used_up(app: Celery) -> None:
    @app.task(shared=False, bind=True, base=SoftLimitTask, retry_on_soft_time_limit=False)
    def no_retry(self: SoftLimitTask) -> None:
        raise SoftTimeLimitExceeded()

    @app.task(shared=False, bind=True, base=SoftLimitTask, max_retries=1, default_retry_delay=60)
    def always_slow(self: SoftLimitTask) -> None:
        raise SoftTimeLimitExceeded()

    with pytest.raises(SoftTimeLimitExceeded):
        no_retry.delay().get()
    with pytest.raises(SoftTimeLimitExceeded):
        always_slow.delay().get()
