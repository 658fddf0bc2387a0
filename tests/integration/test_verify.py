"""``verify`` against the real broker, over the management API and over AMQP alone.

Drift is made with pika (the ``observer``) and the absence of side effects is checked with
rabbitmqctl, so neither depends on celery_dlx or kombu.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from urllib.parse import quote

import pika
import pytest
from kombu import Connection, Queue

from celery_dlx.broker.topology import destination_binding_arguments
from celery_dlx.ops.verify import Difference, Entity, Report, verify

from ..support import MANAGEMENT_URL, address, rabbitmqctl
from .conftest import DLXEnv, require
from .dlx_app import BROKER_URL

pytestmark = pytest.mark.integration


@pytest.fixture
def management() -> str:
    """The management API's URL, required like the other services (skip locally, fail in CI)."""
    require("RabbitMQ management API", *address(MANAGEMENT_URL, 15672))
    return MANAGEMENT_URL


@pytest.fixture(params=["management", "amqp"])
def method(request: pytest.FixtureRequest) -> str:
    if request.param == "management":
        request.getfixturevalue("management")
    return str(request.param)


def destinations(dlx: DLXEnv) -> list[Queue]:
    return [dlx.app.amqp.queues[name] for name in dlx.queues]


def declare(dlx: DLXEnv, broker_url: str = BROKER_URL) -> None:
    with Connection(broker_url) as conn:
        dlx.topology.declare(conn, destinations(dlx))


def check(dlx: DLXEnv, method: str, broker_url: str = BROKER_URL) -> Report:
    with Connection(broker_url) as conn:
        report = verify(
            conn, dlx.topology, destinations(dlx), management_url=MANAGEMENT_URL, use_management=method == "management"
        )
    assert report.method == method
    return report


def names_on_broker(prefix: str, vhost: str = "/") -> list[str]:
    """Every queue and exchange named with ``prefix``, as rabbitmqctl lists them."""
    listed = rabbitmqctl("list_queues", "-p", vhost, "name") + rabbitmqctl("list_exchanges", "-p", vhost, "name")
    return [name for name in listed.splitlines() if name.startswith(prefix)]


@pytest.mark.parametrize("queue_type", ["classic", "quorum"])
def test_a_declared_topology_verifies_clean(make_env: Callable[..., DLXEnv], method: str, queue_type: str) -> None:
    dlx = make_env(queue_type=queue_type, worker=False)
    declare(dlx)
    report = check(dlx, method)
    assert not report.drift, report.lines()
    assert report.lines()[-1].startswith("no drift: ")
    if method == "amqp":
        assert report.unchecked == ["bindings and extra entities not checked: the management API was not used"]


def test_a_level_queue_with_another_ttl_is_reported_by_name_and_argument(
    make_env: Callable[..., DLXEnv], observer: pika.BlockingConnection, method: str
) -> None:
    dlx = make_env(worker=False)
    declare(dlx)
    level3 = dlx.topology.level_queue(3)
    channel = observer.channel()
    channel.queue_delete(level3.name)
    drifted = {**level3.queue_arguments, "x-message-ttl": 12345}
    channel.queue_declare(level3.name, durable=True, arguments=drifted)
    channel.queue_bind(level3.name, level3.exchange.name, routing_key=level3.routing_key)
    channel.close()
    report = check(dlx, method)
    assert report.different == [Difference(Entity("queue", level3.name), "x-message-ttl", 80, 12345)]
    assert not report.missing and not report.extra
    assert f"~ queue {level3.name}: x-message-ttl expected 80, found 12345" in report.lines()


def test_a_missing_level_queue_is_reported(make_env: Callable[..., DLXEnv], observer: pika.BlockingConnection, method: str) -> None:
    dlx = make_env(worker=False)
    declare(dlx)
    level5 = dlx.topology.level_queue(5).name
    channel = observer.channel()
    channel.queue_delete(level5)
    channel.close()
    report = check(dlx, method)
    assert report.missing[0] == Entity("queue", level5)
    assert f"- missing queue {level5}" in report.lines()
    if method == "management":  # its binding went with it
        assert [str(e) for e in report.missing[1:]] == [f"binding {level5} -> queue {level5} key '*.*.*.*.*.1.#'"]
    else:
        assert report.missing == [Entity("queue", level5)]
    assert not report.different and not report.extra


def test_an_old_ladder_with_another_unit_is_extra_over_the_management_api_only(
    make_env: Callable[..., DLXEnv], observer: pika.BlockingConnection, management: str
) -> None:
    dlx = make_env(worker=False)
    declare(dlx)
    old = f"{dlx.prefix}.delay.1000ms.L00"
    channel = observer.channel()
    channel.exchange_declare(old, "topic", durable=True)
    channel.queue_declare(old, durable=True, arguments={"x-message-ttl": 1000})
    channel.queue_bind(old, old, routing_key="1.#")
    try:
        report = check(dlx, "management")
        assert [str(e) for e in report.extra] == [f"exchange {old}", f"queue {old}", f"binding {old} -> queue {old} key '1.#'"]
        assert f"+ extra queue {old}" in report.lines()
        assert not report.missing and not report.different
        over_amqp = check(dlx, "amqp")
        assert not over_amqp.drift and "bindings and extra entities not checked" in over_amqp.unchecked[0]
    finally:
        channel.queue_delete(old)
        channel.exchange_delete(old)
        channel.close()


def test_a_missing_destination_binding_is_reported(
    make_env: Callable[..., DLXEnv], observer: pika.BlockingConnection, management: str
) -> None:
    dlx = make_env(worker=False)
    declare(dlx)
    work, deliver = dlx.queues[0], dlx.topology.deliver_exchange.name
    channel = observer.channel()
    channel.queue_unbind(work, deliver, routing_key="", arguments=destination_binding_arguments(work))
    channel.close()
    report = check(dlx, "management")
    arguments = {"dlx_queue": work, "x-match": "all"}
    assert report.missing == [Entity("binding", f"{deliver} -> queue {work} key '' arguments {arguments}")]
    assert not report.extra and not report.different


def test_verify_creates_nothing(make_env: Callable[..., DLXEnv], method: str) -> None:
    dlx = make_env(worker=False)
    report = check(dlx, method)
    assert report.drift and not report.different and not report.extra
    assert Entity("queue", dlx.topology.level_queue(27).name) in report.missing
    assert Entity("queue", dlx.queues[0]) in report.missing
    assert names_on_broker(dlx.prefix) == []


def test_an_unreachable_api_falls_back_to_amqp_and_says_what_was_not_checked(make_env: Callable[..., DLXEnv]) -> None:
    dlx = make_env(worker=False)
    declare(dlx)
    with Connection(BROKER_URL) as conn:
        report = verify(conn, dlx.topology, destinations(dlx), management_url="http://127.0.0.1:1")
    assert report.method == "amqp" and not report.drift
    assert report.unchecked[0].startswith("bindings and extra entities not checked: management API not reachable at http://127.0.0.1:1 ")
    assert f"? {report.unchecked[0]}" in report.lines()


@pytest.fixture
def read_only_user(services: None) -> Iterator[str]:
    """A user that may read the default vhost but neither configure nor log in to the management API."""
    name = f"dlxtest-{uuid.uuid4().hex[:8]}"
    rabbitmqctl("add_user", name, "pw")
    try:
        rabbitmqctl("set_permissions", "-p", "/", name, "^$", "^$", ".*")
        yield name
    finally:
        rabbitmqctl("delete_user", name)


def test_without_configure_permission_only_existence_is_checked(
    make_env: Callable[..., DLXEnv], observer: pika.BlockingConnection, read_only_user: str
) -> None:
    dlx = make_env(worker=False)
    declare(dlx)
    channel = observer.channel()
    channel.queue_delete(dlx.topology.level_queue(1).name)
    channel.close()
    url = BROKER_URL.replace("guest:guest@", f"{read_only_user}:pw@")
    with Connection(url) as conn:
        report = verify(conn, dlx.topology, destinations(dlx), management_url=MANAGEMENT_URL)
    assert report.method == "amqp"
    assert report.missing == [Entity("queue", dlx.topology.level_queue(1).name)]
    assert report.unchecked[0].startswith("bindings and extra entities not checked: ")
    assert report.unchecked[1].startswith("properties and arguments not checked over AMQP: ACCESS_REFUSED")


@pytest.fixture
def slashed_vhost(services: None) -> Iterator[str]:
    """A vhost whose name needs percent-encoding in both the AMQP URL and the API path."""
    name = f"dlxtest/{uuid.uuid4().hex[:8]}"
    rabbitmqctl("add_vhost", name)
    try:
        rabbitmqctl("set_permissions", "-p", name, "guest", ".*", ".*", ".*")
        yield name
    finally:
        rabbitmqctl("delete_vhost", name)


def test_a_vhost_with_a_slash_in_its_name(make_env: Callable[..., DLXEnv], method: str, slashed_vhost: str) -> None:
    dlx = make_env(worker=False)
    url = f"{BROKER_URL.removesuffix('//')}/{quote(slashed_vhost, safe='')}"
    assert Connection(url).virtual_host == slashed_vhost
    assert check(dlx, method, url).missing  # nothing there yet
    assert names_on_broker(dlx.prefix, slashed_vhost) == []
    declare(dlx, url)
    assert not check(dlx, method, url).drift
    assert check(dlx, method).missing  # the default vhost has none of it


def test_the_default_vhost_in_its_url_spellings(make_env: Callable[..., DLXEnv], method: str) -> None:
    dlx = make_env(worker=False)
    declare(dlx)
    base = BROKER_URL.removesuffix("//")
    for url in (f"{base}//", f"{base}/%2F", base):
        assert not check(dlx, method, url).drift, url
