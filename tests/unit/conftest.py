"""Every test of this folder that takes a Redis fixture (``redis_client``, ``redis_url``,
``redis_prefix``) runs on the standalone Redis, on the local Redis Cluster and on the local Sentinel's master;
a test of the rate limiter that takes ``storage`` or ``make_limiter`` runs on memory and on each of them
(``ratelimit_support.py``)."""

from __future__ import annotations

import pytest

from .ratelimit_support import (  # noqa: F401  (fixtures)
    FLAVOURS,
    clock,
    make_limiter,
    prefix,
    redis_clients,
    redis_flavour,
    redis_url,
    storage,
)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "redis_flavour" in metafunc.fixturenames:
        metafunc.parametrize("redis_flavour", FLAVOURS)
