"""Throwaway RabbitMQ nodes: own ports and data, config applied, nothing left behind."""

from __future__ import annotations

import pytest
from kombu import Connection, Producer, Queue

from celery_dlx.testing.rabbitnode import RabbitNode

from ..support import rabbitmqctl

pytestmark = pytest.mark.integration


def test_node_keeps_durable_messages_across_restart_and_cleans_up(services: None) -> None:
    node = RabbitNode("dlxnodetest", 5791, config={"consumer_timeout": "60000"})
    try:
        node.start()
        assert "60000" in node.ctl("eval", "application:get_env(rabbit, consumer_timeout).")
        with Connection(node.url) as conn:
            Queue("kept", durable=True)(conn.default_channel).declare()
            Producer(conn).publish("x", routing_key="kept", delivery_mode=2)
        node.stop()
        node.start()
        with Connection(node.url) as conn:
            assert conn.default_channel.queue_declare("kept", passive=True).message_count == 1
        assert "kept" not in rabbitmqctl("list_queues", "name"), "the shared broker must not be touched"
    finally:
        node.destroy()
    assert not node.base.exists()
