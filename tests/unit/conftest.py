"""Every test of this folder that takes a Redis fixture (``redis_client``, ``redis_url``,
``redis_prefix``) runs on the standalone Redis, on the local Redis Cluster and on the local Sentinel's master."""

from __future__ import annotations

import pytest

from .ratelimit_support import FLAVOURS, redis_clients, redis_flavour, redis_url  # noqa: F401  (fixtures)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "redis_flavour" in metafunc.fixturenames:
        metafunc.parametrize("redis_flavour", FLAVOURS)
