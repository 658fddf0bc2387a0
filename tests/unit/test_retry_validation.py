"""Bad retries are refused before anything is published (worker-side request, no broker needed)."""

from __future__ import annotations

import math
from collections.abc import Iterator

import pytest
from celery import Celery
from celery.exceptions import Reject

from celery_dlx import ConfigurationError, DLXTask, RetryPublishError
from celery_dlx.broker import headers as republish_module
from celery_dlx.broker import requeue as requeue_module

#: Celery-facing: runs on every supported Celery minor (nox -s compat).
pytestmark = pytest.mark.compat


@pytest.fixture
def task() -> Iterator[DLXTask]:
    app = Celery("validation", broker="amqp://guest:guest@127.0.0.1:1//", set_as_current=False)

    @app.task(shared=False, bind=True, base=DLXTask)
    def work(self: DLXTask) -> None:
        """Never run: the tests push a worker request and call delayed_retry directly."""

    work.push_request(id="t1", retries=0, called_directly=False, is_eager=False, delivery_info={})
    yield work
    work.pop_request()


@pytest.mark.parametrize("countdown, message", [(-1, ">= 0"), (math.nan, "finite"), (math.inf, "finite"), (10**9, "maximum")])
def test_bad_countdowns_raise_value_error(task: DLXTask, countdown: float, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        task.delayed_retry(countdown=countdown)


def test_eta_must_be_a_datetime(task: DLXTask) -> None:
    with pytest.raises(ValueError, match="eta must be a datetime"):
        task.delayed_retry(eta="tomorrow")  # type: ignore[arg-type]


def test_pickle_is_refused_with_a_clear_error(task: DLXTask) -> None:
    task.serializer = "pickle"
    with pytest.raises(ConfigurationError, match="publishes retries as JSON"):
        task.delayed_retry(countdown=1)


def test_exhausted_task_fails_with_its_exception_without_touching_the_broker(task: DLXTask) -> None:
    """With parking off, Celery's max_retries rule applies and nothing is published (the broker
    in this fixture is unreachable)."""
    task.app.conf.dlx_park = False
    task.request.retries = 3
    with pytest.raises(KeyError, match="gone"):
        task.delayed_retry(countdown=1, max_retries=3, exc=KeyError("gone"))


def test_an_exhausted_task_that_cannot_be_parked_still_fails_with_its_exception(
    task: DLXTask, caplog: pytest.LogCaptureFixture
) -> None:
    task.request.retries = 3
    with pytest.raises(KeyError, match="gone"):
        task.delayed_retry(countdown=1, max_retries=3, exc=KeyError("gone"))
    assert "could not be parked and fails without it" in caplog.text


def test_an_acks_late_task_that_cannot_be_parked_is_requeued_not_lost(
    task: DLXTask, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(requeue_module, "REQUEUE_PAUSE", 0)
    task.acks_late = True
    task.request.retries = 3
    with pytest.raises(Reject) as rejected:
        task.delayed_retry(countdown=1, max_retries=3, exc=KeyError("gone"))
    assert rejected.value.requeue is True


def test_unreachable_broker_fails_loudly(task: DLXTask) -> None:
    with pytest.raises(RetryPublishError, match="not confirmed"):
        task.delayed_retry(countdown=1)


def test_unreachable_broker_requeues_an_acks_late_delivery(task: DLXTask, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(requeue_module, "REQUEUE_PAUSE", 0)
    task.acks_late = True
    with pytest.raises(Reject) as rejected:
        task.delayed_retry(countdown=1)
    assert rejected.value.requeue is True
    assert isinstance(rejected.value.reason, RetryPublishError)


def test_an_uncounted_deferral_lowers_retries_only_while_publishing(task: DLXTask) -> None:
    task.request.retries = 2
    with republish_module.uncounted(task.request):
        assert task.request.retries == 1  # Celery's retry will publish 1 + 1 = 2
    assert task.request.retries == 2
    with pytest.raises(RuntimeError), republish_module.uncounted(task.request):
        raise RuntimeError("publish failed")
    assert task.request.retries == 2


def test_an_uncounted_deferral_at_max_retries_is_not_exhausted(task: DLXTask) -> None:
    """A deferral is not an attempt: at max_retries it still publishes (here: fails to reach the broker)."""
    task.request.retries = 3
    with pytest.raises(RetryPublishError):
        task.delayed_retry(countdown=1, max_retries=3, count_attempt=False)


@pytest.mark.parametrize(
    "options, named",
    [
        ({"producer": object()}, "producer"),
        ({"connection": object()}, "connection"),
        ({"publisher": object()}, "publisher"),
        ({"mandatory": False}, "mandatory"),
        ({"serializer": "pickle"}, "'pickle' serializer"),
        ({"delivery_mode": 3}, "delivery_mode"),
        ({"confirm_timeout": 0}, "confirm_timeout"),
        ({"confirm_timeout": True}, "confirm_timeout"),
        ({"exchange": "nowhere", "routing_key": "x"}, "routes to 0 of the app's queues"),
    ],
)
def test_retry_options_it_cannot_honour_are_refused_naming_the_option(
    task: DLXTask, options: dict[str, object], named: str
) -> None:
    """Refused before anything is published (the broker in this fixture is unreachable)."""
    with pytest.raises(ConfigurationError, match=named):
        task.retry(countdown=1, **options)


def test_a_json_serializer_option_overrides_a_pickle_task(task: DLXTask) -> None:
    """As in Celery, the retry's own serializer wins over the task's: JSON passes the check and
    the retry gets as far as the (unreachable) broker."""
    task.serializer = "pickle"
    with pytest.raises(RetryPublishError):
        task.retry(countdown=1, serializer="json")
