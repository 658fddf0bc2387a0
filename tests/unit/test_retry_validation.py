"""Bad retries are refused before anything is published (worker-side request, no broker needed)."""

from __future__ import annotations

import math
from collections.abc import Iterator

import pytest
from celery import Celery

from celery_dlx import ConfigurationError, DLXTask


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
