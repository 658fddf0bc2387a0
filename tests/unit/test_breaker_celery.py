"""The breaker in the network Task base classes, in-process on a MemoryStorage with an
injected clock: how it is configured per app, deferral through ``delayed_retry`` without
counting an attempt, what each verdict reports, and probes that report nothing."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest
from celery import Celery
from celery.exceptions import Retry

from celery_dlx.breaker import (
    CLOSED,
    HALF_OPEN,
    OPEN,
    Breaker,
    BreakerOpen,
    MemoryStorage,
    Policy,
    RedisStorage,
    breaker_for,
)
from celery_dlx.breaker import tasks as integration
from celery_dlx.networks.tasks import CallFailed, FacebookTask, HTTPTask, TwitterTask

from .ratelimit_support import FakeClock

#: Celery-facing: runs on every supported Celery minor (nox -s compat).
pytestmark = pytest.mark.compat

POLICY = Policy(threshold=2, window=60, open_for=30, probes=1, close_after=1, recovery_rate=10)


def response(status: int, body: Any = None) -> httpx.Response:
    return httpx.Response(status, json=body, request=httpx.Request("GET", "https://graph.facebook.com/me"))


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def app(clock: FakeClock) -> Celery:
    app = Celery("breakers", set_as_current=False)
    app.conf.update(broker_url="memory://", result_backend="cache+memory://",
                    dlx_breaker=Breaker(MemoryStorage(clock), POLICY))  # fmt: skip
    return app


@pytest.fixture
def retries(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """Deferrals the breaker asked for (``delayed_retry`` is replaced: no broker here)."""
    asked: list[dict[str, Any]] = []

    def fake(task: Any, **kwargs: Any) -> Retry:
        asked.append(kwargs)
        return Retry(exc=kwargs["exc"], when=kwargs["countdown"])

    def own_backoff(self: Any, **kwargs: Any) -> Retry:
        return Retry(exc=kwargs["exc"], when=kwargs["countdown"])

    monkeypatch.setattr(integration, "delayed_retry", fake)
    monkeypatch.setattr(HTTPTask, "delayed_retry", own_backoff)  # a failure's own retry
    return asked


def task_of(app: Celery, base: type[HTTPTask] = FacebookTask, **attributes: Any) -> Any:
    @app.task(bind=True, base=base, shared=False, name=f"t.{len(app.tasks)}", max_retries=3, **attributes)
    def call(self: HTTPTask, answer: Any) -> int:
        return self.check(answer).status_code

    return call


@contextmanager
def run(task: Any) -> Iterator[None]:
    """One run in a worker: before_start, the body's part, after_return."""
    task.push_request(id="task-1", retries=1, args=(), kwargs={}, called_directly=False, is_eager=False)
    try:
        task.before_start("task-1", (), {})
        yield
    finally:
        task.after_return("SUCCESS", None, "task-1", (), {}, None)
        task.pop_request()


def call_once(task: Any, answer: httpx.Response) -> None:
    with run(task):
        try:
            task.check(answer)
        except (Retry, CallFailed):
            pass


def test_configuration_per_app() -> None:
    plain = Celery("plain", set_as_current=False)
    plain.conf.update(broker_url="memory://", result_backend="rpc://")
    assert breaker_for(plain) is None, "no Redis configured: no breaker, tasks work as before"

    backend = Celery("backend", set_as_current=False)
    backend.conf.update(result_backend="redis://127.0.0.1:6379/3")
    found = breaker_for(backend)
    assert isinstance(found, Breaker) and isinstance(found.storage, RedisStorage)
    assert found.storage.client.get_connection_kwargs()["db"] == 3
    assert found.on_unavailable == "allow"
    assert breaker_for(backend) is found, "built once per app"

    off = Celery("off", set_as_current=False)
    off.conf.update(result_backend="redis://127.0.0.1:6379/0", dlx_breaker=False)
    assert breaker_for(off) is None

    own = Celery("own", set_as_current=False)
    own.conf.update(result_backend="rpc://", dlx_breaker_url="redis://127.0.0.1:6379/5",
                    dlx_breaker_prefix="x", dlx_breaker_policies={"facebook": POLICY})  # fmt: skip
    configured = breaker_for(own)
    assert configured is not None and configured.prefix == "x"
    assert configured.policy_for("facebook:insights") is POLICY and configured.policy_for("twitter") == Policy()


def test_a_burst_of_failures_opens_it_and_then_tasks_wait_in_the_broker_uncounted(
    app: Celery, clock: FakeClock, retries: list[dict[str, Any]]
) -> None:
    task = task_of(app)
    call_once(task, response(503))
    call_once(task, response(500))
    breaker: Breaker = app.conf.dlx_breaker
    assert breaker.state("facebook").mode == OPEN
    assert len(retries) == 0, "the failures themselves retry with the task's own backoff"

    clock.advance(10)
    with pytest.raises(Retry), run(task):
        pytest.fail("the body must not run while the breaker is open")
    (deferral,) = retries
    assert deferral["count_attempt"] is False
    assert isinstance(deferral["exc"], BreakerOpen) and deferral["exc"].name == "facebook"
    assert 20 <= deferral["countdown"] < 20.1, "to a slot right after the probe time"


def test_the_probe_closes_it_and_a_silent_probe_gives_its_place_back(
    app: Celery, clock: FakeClock, retries: list[dict[str, Any]]
) -> None:
    task = task_of(app)
    breaker: Breaker = app.conf.dlx_breaker
    for _ in range(2):
        call_once(task, response(503))
    clock.advance(30)
    with run(task):
        assert breaker.state("facebook").probes_in_flight == 1
        # the body ended without calling check(): nothing known about the network
    assert breaker.state("facebook").mode == HALF_OPEN
    assert breaker.state("facebook").probes_in_flight == 0
    call_once(task, response(404, {"error": {"code": 803, "message": "unknown"}}))  # the network answers
    assert breaker.state("facebook").mode == CLOSED


def test_a_probe_deferred_before_its_call_gives_its_place_back_on_retry(
    app: Celery, clock: FakeClock, retries: list[dict[str, Any]]
) -> None:
    """Celery calls on_retry, not after_return, for a run that ends in a retry (a rate
    limiter's deferral before the call): the probe must not stay held until probe_timeout."""
    task = task_of(app)
    breaker: Breaker = app.conf.dlx_breaker
    for _ in range(2):
        call_once(task, response(503))
    clock.advance(30)
    task.push_request(id="task-2", retries=1, args=(), kwargs={}, called_directly=False, is_eager=False)
    try:
        task.before_start("task-2", (), {})
        assert breaker.state("facebook").probes_in_flight == 1
        task.on_retry(Retry(), "task-2", (), {}, None)  # what the tracer calls for a Retry
    finally:
        task.pop_request()
    assert breaker.state("facebook").probes_in_flight == 0
    assert breaker.state("facebook").mode == HALF_OPEN


def test_rate_limits_and_other_networks_do_not_trip_it(app: Celery, retries: list[dict[str, Any]]) -> None:
    facebook, twitter = task_of(app), task_of(app, TwitterTask)
    for _ in range(5):
        call_once(facebook, response(400, {"error": {"code": 4, "message": "Application request limit reached"}}))
    breaker: Breaker = app.conf.dlx_breaker
    assert breaker.state("facebook").mode == CLOSED
    for _ in range(2):
        call_once(facebook, response(503))
    assert breaker.state("facebook").mode == OPEN
    assert breaker.state("twitter").mode == CLOSED
    with run(twitter):
        pass  # admitted


def test_per_endpoint_breakers_and_opting_out(app: Celery, retries: list[dict[str, Any]]) -> None:
    insights = task_of(app, breaker_endpoint="insights")
    none = task_of(app, breaker=False)
    for _ in range(2):
        call_once(insights, response(503))
    breaker: Breaker = app.conf.dlx_breaker
    assert breaker.state("facebook:insights").mode == OPEN
    assert breaker.state("facebook").mode == CLOSED
    for _ in range(3):
        call_once(none, response(503))
    assert breaker.state("facebook").mode == CLOSED, "breaker = False: nothing reported"


def test_a_task_class_policy_wins(app: Celery, retries: list[dict[str, Any]]) -> None:
    strict = task_of(app, breaker_policy=Policy(threshold=1, open_for=5, recovery_rate=1))
    call_once(strict, response(502))
    breaker: Breaker = app.conf.dlx_breaker
    assert breaker.state("facebook").mode == OPEN


def test_eager_and_direct_calls_run_with_the_breaker_closed(app: Celery) -> None:
    task = task_of(app)
    assert task.apply((response(200),)).get() == 200
    assert task(response(200)) == 200
