"""``celery dlx verify`` where more than one broker or app is around: a management API of
another broker is refused, another app's bindings to the shared prefix are foreign, not drift.

As a new user would meet them: a second broker on other loopback ports (a throwaway node of
the same RabbitMQ installation as the suite's broker), and a second app sharing the prefix,
whose work queue pika binds to ``<prefix>.deliver`` as that app's ``declare`` would.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Iterator

import pika
import pytest

from celery_dlx.broker.topology import destination_binding_arguments
from celery_dlx.testing.rabbitnode import RABBITMQ_BIN, RabbitNode

from ..support import missing, reachable
from .conftest import DLXEnv
from .test_cli import dlx

pytestmark = pytest.mark.integration

OTHER_AMQP, OTHER_MANAGEMENT = 5792, 15792


@pytest.fixture(scope="module")
def other_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A second broker with its management API on 127.0.0.1:15792; yields the API's URL."""
    if not (RABBITMQ_BIN / "rabbitmq-server").exists():
        missing(f"no RabbitMQ server in {RABBITMQ_BIN} for a second broker", "integration tests")
    node = RabbitNode("dlxother", OTHER_AMQP, base_dir=tmp_path_factory.mktemp("other"), management_port=OTHER_MANAGEMENT)
    try:
        node.start()
        deadline = time.monotonic() + 60
        while not reachable("127.0.0.1", OTHER_MANAGEMENT) and time.monotonic() < deadline:
            time.sleep(0.5)
        yield f"http://guest:guest@127.0.0.1:{OTHER_MANAGEMENT}"
    finally:
        node.destroy()


def test_verify_refuses_the_management_api_of_another_broker(make_env: Callable[..., DLXEnv], other_broker: str) -> None:
    env = make_env(worker=False)
    assert dlx(env, "declare").returncode == 0
    result = dlx(env, "verify", extra_env={"CELERY_DLX_MANAGEMENT_URL": other_broker})
    assert result.returncode == 1, result.stdout
    assert "belongs to another broker" in result.stderr and "dlxother@" in result.stderr, result.stderr
    assert "extra" not in result.stdout and "missing" not in result.stdout, "no phantom drift"
    # The same check passes against the broker's own API (the suite's default).
    assert dlx(env, "verify").returncode == 0


def test_another_apps_binding_to_the_shared_prefix_is_foreign_unless_strict(
    make_env: Callable[..., DLXEnv], observer: pika.BlockingConnection
) -> None:
    env = make_env(worker=False)
    assert dlx(env, "declare").returncode == 0
    other_queue = f"{env.prefix}-otherapp.{socket.gethostname()}.work"
    deliver = env.topology.deliver_exchange.name
    channel = observer.channel()
    try:
        channel.queue_declare(other_queue, durable=True)
        channel.queue_bind(other_queue, deliver, routing_key="", arguments=destination_binding_arguments(other_queue))
        relaxed = dlx(env, "verify")
        assert relaxed.returncode == 0, relaxed.stdout + relaxed.stderr
        assert f"= foreign binding {deliver} -> queue {other_queue}" in relaxed.stdout
        assert "no drift" in relaxed.stdout and "1 foreign binding(s)" in relaxed.stdout
        strict = dlx(env, "verify", "--strict")
        assert strict.returncode == 1
        assert f"+ extra binding {deliver} -> queue {other_queue}" in strict.stdout
        # A binding into this app's own namespace stays drift without --strict.
        level0 = env.delay_queue_names[0]
        channel.queue_bind(level0, deliver, routing_key="", arguments={"x-match": "all", "stray": "1"})
        assert dlx(env, "verify").returncode == 1
    finally:
        channel.queue_delete(other_queue)
        channel.close()
