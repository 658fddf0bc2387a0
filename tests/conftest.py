"""Session-wide: the test log names the broker the suites run against."""

from __future__ import annotations

import pytest
from kombu import Connection

from celery_dlx.ops.broker_info import broker_version

from .support import BROKER_URL


def pytest_report_header(config: pytest.Config) -> str:
    """CI runs the integration suite on RabbitMQ 3.10.8 and on 4.0.5: say which one this is."""
    try:
        with Connection(BROKER_URL, connect_timeout=3) as conn:
            conn.ensure_connection(max_retries=1)
            broker = broker_version(conn)
    except Exception as exc:  # the suites report a missing broker themselves (skip, or fail under CI)
        return f"broker: {BROKER_URL} not reachable ({exc})"
    return f"broker: {broker} at {BROKER_URL}"
