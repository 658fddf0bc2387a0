"""Which work queue a retry comes back to when the caller does not say."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from celery import Celery, Task
from kombu import Exchange, Queue

from celery_dlx.broker.destination import origin_queue

#: Celery-facing: runs on every supported Celery minor (nox -s compat).
pytestmark = pytest.mark.compat


@pytest.fixture
def task() -> Iterator[Task]:
    app = Celery("origin", broker="memory://", set_as_current=False)
    app.conf.task_queues = [
        Queue("default", Exchange("default"), routing_key="default"),
        Queue("whales", Exchange("social", type="direct"), routing_key="big"),
        Queue("trickle", Exchange("social", type="direct"), routing_key="slow"),
    ]
    app.conf.task_default_queue = "default"
    app.conf.task_routes = {"routed.*": {"queue": "trickle"}}

    @app.task(shared=False, bind=True, name="routed.sync")
    def sync(self: Task) -> None:
        """Routed to trickle by task_routes."""

    yield sync


def with_request(task: Task, **request: Any) -> str:
    task.push_request(args=(), kwargs={}, **request)
    try:
        return origin_queue(task)
    finally:
        task.pop_request()


def test_header_of_a_message_that_came_through_the_ladder_wins(task: Task) -> None:
    info = {"exchange": "p.deliver", "routing_key": "1.0.1"}
    assert with_request(task, dlx_queue="whales", delivery_info=info) == "whales"


def test_default_exchange_routing_key_is_the_queue(task: Task) -> None:
    assert with_request(task, delivery_info={"exchange": "", "routing_key": "anything"}) == "anything"


def test_the_one_queue_bound_with_that_exchange_and_key(task: Task) -> None:
    assert with_request(task, delivery_info={"exchange": "social", "routing_key": "big"}) == "whales"


def test_otherwise_the_tasks_route(task: Task) -> None:
    assert with_request(task, delivery_info={"exchange": "elsewhere", "routing_key": "x"}) == "trickle"
    assert with_request(task, delivery_info=None) == "trickle"
