"""Where a retry goes back to, from Celery's ``queue`` / ``exchange`` / ``routing_key`` options."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from celery import Celery, Task
from kombu import Exchange, Queue

from celery_dlx import ConfigurationError
from celery_dlx.broker.destination import key_matches, retry_destination


@pytest.fixture
def task() -> Iterator[Task]:
    app = Celery("destination", broker="memory://", set_as_current=False)
    social = Exchange("social", type="direct")
    app.conf.task_queues = [
        Queue("default", Exchange("default"), routing_key="default"),
        Queue("whales", social, routing_key="big"),
        Queue("trickle", social, routing_key="slow"),
        Queue("also_slow", social, routing_key="slow"),
        Queue("feeds", Exchange("topics", type="topic"), routing_key="feed.*.posts"),
        Queue("audit", Exchange("broadcast", type="fanout")),
    ]
    app.conf.task_default_queue = "default"

    @app.task(shared=False, bind=True, name="sync")
    def sync(self: Task) -> None:
        """Never run."""

    sync.push_request(args=(), kwargs={}, delivery_info={"exchange": "social", "routing_key": "big"})
    yield sync
    sync.pop_request()


def test_queue_wins_as_a_name_or_a_queue(task: Task) -> None:
    assert retry_destination(task, "trickle", "social", "big") == "trickle"
    assert retry_destination(task, Queue("elsewhere")) == "elsewhere"


def test_nothing_given_is_the_queue_it_came_from(task: Task) -> None:
    assert retry_destination(task) == "whales"


def test_exchange_and_key_route_to_the_one_bound_queue(task: Task) -> None:
    assert retry_destination(task, exchange="default", routing_key="default") == "default"
    assert retry_destination(task, exchange=Exchange("topics", type="topic"), routing_key="feed.fb.posts") == "feeds"
    assert retry_destination(task, exchange="broadcast", routing_key="anything") == "audit"


def test_the_default_exchange_routes_by_queue_name(task: Task) -> None:
    assert retry_destination(task, exchange="", routing_key="some.queue") == "some.queue"


def test_a_key_alone_keeps_the_deliverys_exchange(task: Task) -> None:
    with pytest.raises(ConfigurationError, match=r"routes to 2 of the app's queues \['also_slow', 'trickle'\]"):
        retry_destination(task, routing_key="slow")


def test_an_exchange_alone_keeps_the_deliverys_key(task: Task) -> None:
    assert retry_destination(task, exchange="social") == "whales"


def test_no_match_says_to_pass_queue(task: Task) -> None:
    with pytest.raises(ConfigurationError, match=r"routes to 0 .* pass queue="):
        retry_destination(task, exchange="social", routing_key="medium")


@pytest.mark.parametrize(
    "binding, key, expected",
    [
        ("a.*.c", "a.b.c", True),
        ("a.*.c", "a.b.b.c", False),
        ("a.#", "a", True),
        ("a.#", "a.b.c", True),
        ("#.c", "c", True),
        ("#", "", True),
        ("a.#.c", "a.x.y.c", True),
        ("a.#.c", "a.x.y", False),
        ("*", "a.b", False),
    ],
)
def test_topic_matching_follows_amqp(binding: str, key: str, expected: bool) -> None:
    assert key_matches("topic", binding, key) is expected


def test_headers_exchanges_never_match_a_routing_key() -> None:
    assert key_matches("headers", "", "x") is False
