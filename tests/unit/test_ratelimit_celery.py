"""acquire_or_retry without a broker: admissions, eager runs, jitter and the retry count.

The broker round trip itself is in tests/integration/test_ratelimit.py.
"""

from __future__ import annotations

import pickle
from typing import Any

import pytest
from celery import Celery, Task
from celery.app.task import Context
from celery.exceptions import Retry

from celery_dlx.broker.headers import RESERVATION_HEADER
from celery_dlx.ratelimit import (
    Limit,
    Limiter,
    MemoryStorage,
    Reservation,
    Throttled,
    acquire_or_retry,
    deferral,
)
from celery_dlx.ratelimit import tasks as integration

from .ratelimit_support import FakeClock

#: Celery-facing: runs on every supported Celery minor (nox -s compat).
pytestmark = pytest.mark.compat


@pytest.mark.parametrize("wait", [0.0, 0.5, 10.0, 3600.0])
def test_deferral_adds_a_small_jitter_and_never_subtracts(wait: float) -> None:
    countdowns = [deferral(wait) for _ in range(500)]
    assert all(wait <= c <= wait + min(0.1 * wait, integration.MAX_JITTER) for c in countdowns)
    assert wait == 0 or len(set(countdowns)) > 1
    assert deferral(wait, jitter=0) == wait
    with pytest.raises(ValueError, match="jitter"):
        deferral(wait, jitter=-0.1)


def test_throttled_survives_pickling_as_celery_stores_it() -> None:
    throttled = pickle.loads(pickle.dumps(Throttled("trickle", 1.5)))
    assert (throttled.limit, throttled.wait, str(throttled)) == ("trickle", 1.5, "rate limit trickle: wait 1.500 s")


@pytest.fixture
def app() -> Celery:
    app = Celery("rltest", set_as_current=False)
    app.conf.update(task_default_queue="work", task_serializer="json")
    return app


def make_task(app: Celery, limiter: Limiter, seen: list[Any]) -> Task:
    @app.task(bind=True, shared=False, name="rl.unit", max_retries=3)
    def call(self: Task) -> str:
        seen.append(acquire_or_retry(self, limiter))
        return "done"

    return call


def test_an_admitted_task_runs_and_its_queue_is_a_factor(app: Celery) -> None:
    limiter = Limiter(MemoryStorage(FakeClock()), [Limit("trickle", "1/hour", by=("queue",))])
    seen: list[Any] = []
    assert make_task(app, limiter, seen).apply().get() == "done"
    assert seen[0].allowed and seen[0].slots[0].key.endswith(":trickle:work")


def test_run_eagerly_a_task_that_stays_denied_fails_with_throttled(app: Celery) -> None:
    limiter = Limiter(MemoryStorage(FakeClock()), [Limit("trickle", "1/hour", by=("queue",))])
    limiter.acquire(queue="work")
    result = make_task(app, limiter, []).apply()
    assert isinstance(result.result, Throttled)
    assert result.result.limit == "trickle" and result.result.wait == 3600.0


def test_a_deferral_in_a_worker_keeps_the_retry_count(app: Celery, monkeypatch: pytest.MonkeyPatch) -> None:
    limiter = Limiter(MemoryStorage(FakeClock()), [Limit("trickle", "1/hour", by=("queue",))])
    limiter.acquire(queue="work")
    published: list[tuple[int, float]] = []

    def fake_delayed_retry(task: Task, *, countdown: float, exc: BaseException, count_attempt: bool) -> Retry:
        # delayed_retry publishes request.retries + 1, or request.retries for an uncounted deferral.
        published.append((task.request.retries + (1 if count_attempt else 0), countdown))
        return Retry(exc=exc, when=countdown)

    monkeypatch.setattr(integration, "delayed_retry", fake_delayed_retry)
    task = make_task(app, limiter, [])
    task.push_request(
        retries=2, called_directly=False, is_eager=False, delivery_info={"exchange": "", "routing_key": "work"}
    )
    try:
        with pytest.raises(Retry):
            task.run()
        assert task.request.retries == 2
    finally:
        task.pop_request()
    [(retries, countdown)] = published
    assert retries == 2
    assert 3600.0 <= countdown <= 3601.0


def test_a_deferral_in_a_worker_carries_its_reservation_and_comes_back_exactly_at_it(
    app: Celery, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = FakeClock()
    limiter = Limiter(MemoryStorage(clock), [Limit("trickle", "1/hour", by=("queue",))])
    limiter.acquire(queue="work")
    published: list[tuple[float, Any]] = []

    def fake_delayed_retry(task: Task, *, countdown: float, exc: BaseException, count_attempt: bool) -> Retry:
        published.append((countdown, task.request.get(RESERVATION_HEADER)))  # what the message carries
        return Retry(exc=exc, when=countdown)

    monkeypatch.setattr(integration, "delayed_retry", fake_delayed_retry)
    seen: list[Any] = []
    task = make_task(app, limiter, seen)
    delivery = {"called_directly": False, "is_eager": False, "delivery_info": {"exchange": "", "routing_key": "work"}}
    task.push_request(**delivery)
    try:
        with pytest.raises(Retry):
            task.run()
        assert task.request.get(RESERVATION_HEADER) is None, "only the deferral's publish carries it"
    finally:
        task.pop_request()
    [(countdown, carried)] = published
    slot_us = clock.us + 3_600_000_000
    assert (countdown, carried) == (3600.0, f"{slot_us}:{clock.us}")  # exact: no jitter

    clock.us = slot_us  # the message arrives at its slot with the header
    task.push_request(**delivery, **{RESERVATION_HEADER: carried})
    try:
        assert task.run() == "done"
        assert task.request.get(RESERVATION_HEADER) is None, "used up: a later retry must not carry it"
    finally:
        task.pop_request()
    assert seen[-1].allowed and seen[-1].at_us == slot_us


@pytest.mark.parametrize("carried", [None, "", "12", "a:b", "1:2:3"])
def test_a_missing_or_foreign_reservation_header_is_no_claim(carried: Any) -> None:
    request = Context({RESERVATION_HEADER: carried})
    assert integration.presented(request) is None
    assert integration.presented(Context({RESERVATION_HEADER: "5:3"})) == Reservation(5, 3)
