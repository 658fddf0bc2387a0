"""Session-wide: the test log names the broker the suites run against; the Redis Cluster
fixture and the selection of its tests."""

from __future__ import annotations

import shutil
from collections.abc import Iterator

import pytest
from kombu import Connection

from celery_dlx.ops.broker_info import broker_version
from celery_dlx.testing.redis_cluster import LocalCluster
from celery_dlx.testing.redis_sentinel import LocalSentinel

from .support import BROKER_URL, missing

#: First port of the session's Redis Cluster (7100-7105); the failover test uses its own.
CLUSTER_PORT = 7100
#: The session's Sentinel setup: data nodes from 7150, sentinels from 26379.
SENTINEL_DATA_PORT, SENTINEL_PORT = 7150, 26379


def pytest_report_header(config: pytest.Config) -> str:
    """CI runs the integration suite on RabbitMQ 3.10.8 and on 4.0.5: say which one this is."""
    try:
        with Connection(BROKER_URL, connect_timeout=3) as conn:
            conn.ensure_connection(max_retries=1)
            broker = broker_version(conn)
    except Exception as exc:  # the suites report a missing broker themselves (skip, or fail under CI)
        return f"broker: {BROKER_URL} not reachable ({exc})"
    return f"broker: {broker} at {BROKER_URL}"


@pytest.fixture(scope="session")
def redis_cluster_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A Redis Cluster of 3 masters and 3 replicas on 127.0.0.1:7100-7105 for the session,
    removed afterwards.  Without ``redis-server`` the tests skip, and fail under CI=true."""
    if shutil.which("redis-server") is None or shutil.which("redis-cli") is None:
        missing("redis-server and redis-cli are not installed", "the Redis Cluster tests")
    with LocalCluster(CLUSTER_PORT, tmp_path_factory.mktemp("redis-cluster")) as cluster:
        yield cluster.url


@pytest.fixture(scope="session")
def redis_sentinel_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A master (127.0.0.1:7150), its replica (7151) and three sentinels (26379-26381) for the
    session, removed afterwards.  Without ``redis-server`` the tests skip, fail under CI=true."""
    if shutil.which("redis-server") is None:
        missing("redis-server is not installed", "the Redis Sentinel tests")
    with LocalSentinel(SENTINEL_DATA_PORT, SENTINEL_PORT, tmp_path_factory.mktemp("redis-sentinel")) as sentinel:
        yield sentinel.url


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Leave the Redis Cluster and Sentinel variants out unless ``-m`` names their marker: they
    start servers of their own and run in their own CI step (``make test-redis-cluster``)."""
    for marker in ("redis_cluster", "redis_sentinel"):
        if marker in (config.getoption("markexpr") or ""):
            continue
        left_out = [item for item in items if item.get_closest_marker(marker)]
        if left_out:
            config.hook.pytest_deselected(items=left_out)
            items[:] = [item for item in items if not item.get_closest_marker(marker)]
