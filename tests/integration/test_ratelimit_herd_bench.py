"""Smoke test of ``benchmarks.ratelimit_herd``: a small herd through a real worker, end to end.

Checks what the benchmark's numbers rest on: every call admitted, no window of the limit (by
the limiter's clock) admitted more than the limit, celery_dlx's deferral counter equal to the
deliveries the task recorded beyond the admissions, and every deferral a confirmed publish the
broker counted.
"""

from __future__ import annotations

import pytest

from ..support import BROKER_URL, address
from .conftest import require

pytestmark = pytest.mark.integration


def test_max_in_window_counts_a_half_open_period() -> None:
    from benchmarks.ratelimit_herd import max_in_window

    assert max_in_window([], 1.0) == 0
    assert max_in_window([0.0, 0.5, 1.0], 1.0) == 2  # 1.0 is a period after 0.0: the next window
    assert max_in_window([0.0, 0.5, 0.99, 1.0, 1.2], 1.0) == 4  # [0.5, 1.5)
    assert max_in_window([3.0, 0.1, 0.2, 2.0, 2.5, 2.9], 1.0) == 3


def test_small_herd_end_to_end(monkeypatch: pytest.MonkeyPatch) -> None:
    require("RabbitMQ", *address(BROKER_URL, 5672))
    require("Redis", "127.0.0.1", 6379)
    pytest.importorskip("psutil")
    from benchmarks import harness
    from benchmarks.ratelimit_herd import parse_args, run_all

    monkeypatch.setattr(harness, "BROKER_URL", BROKER_URL)  # the tests' broker (DLX_RABBITMQCTL names its rabbitmqctl)

    [outcome] = run_all(parse_args(["--calls", "60", "--rate", "20/second", "--concurrency", "2", "--timeout", "60"]))

    assert outcome.admitted == 60
    assert outcome.max_window_limiter <= 20
    assert outcome.deferrals_counted == outcome.deferrals_seen > 0
    assert sum(outcome.per_call) == outcome.deferrals_seen
    received, confirm_mode, confirmed, _ = outcome.broker
    # Node-wide counters: others may publish too, so at least this run's own.
    assert received >= 60 + outcome.deferrals_counted
    assert confirm_mode >= outcome.deferrals_counted and confirmed >= outcome.deferrals_counted
