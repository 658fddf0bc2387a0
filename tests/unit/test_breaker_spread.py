"""The recovery spread and the pure state machine, without any storage."""

from __future__ import annotations

import random
from bisect import bisect_left

import pytest

from celery_dlx.breaker import CLOSED, DEFER, FAILURE, OPEN, Policy, State, spread
from celery_dlx.breaker import state as machine


@pytest.mark.parametrize("rate", [0.5, 3.0, 45.0, 1000.0])
def test_no_interval_gets_more_than_its_share_however_many_wait(rate: float) -> None:
    rng = random.Random(int(rate * 10))
    period = spread.period_us(rate)
    cursor, line, dues = 0, 0, []
    probe_at = 5_000_000
    for _ in range(5_000):
        due, cursor, line = spread.slot(cursor, line, probe_at, period, rng.random())
        dues.append(due)
    dues.sort()
    assert dues[0] >= probe_at, "nobody comes back before the probe time"
    window = 1_000_000
    busiest = max(bisect_left(dues, d + window) - i for i, d in enumerate(dues))
    assert busiest <= spread.max_returns(1.0, rate)
    assert spread.waiting(cursor, line, 0, period) == 5_000
    assert dues[-1] - dues[0] >= (5_000 - 2) * period, "the spread grows with the number waiting"


def test_a_gap_starts_a_new_line() -> None:
    due, cursor, line = spread.slot(0, 0, 10_000, 100, 0.0)
    assert (due, cursor, line) == (10_000, 10_100, 10_000)
    due, cursor, line = spread.slot(cursor, line, 50_000, 100, 0.5)  # the line was drained
    assert (due, cursor, line) == (50_050, 50_100, 50_000)
    with pytest.raises(ValueError):
        spread.slot(0, 0, 0, 100, 1.0)
    with pytest.raises(ValueError):
        spread.period_us(float("inf"))


def test_the_state_machine_is_pure_values() -> None:
    policy = Policy(threshold=2, window=10, open_for=3, recovery_rate=2)
    state = State()
    state = machine.record(state, policy, 1_000_000, FAILURE, False)
    assert state.mode == CLOSED and state.failures == (1_000_000,)
    state = machine.record(state, policy, 2_000_000, FAILURE, False)
    assert state.mode == OPEN and state.probe_us == 5_000_000 and state.failures == ()
    admission, after = machine.admit(state, policy, 2_500_000, 0.25)
    assert admission.action == DEFER and admission.due_us == 5_125_000 and admission.wait == 2.625
    assert state.cursor_us == 0, "the input state is not changed"
    assert machine.snapshot("x", after, policy, 2_500_000).waiting == 1


def test_the_pure_modules_import_no_celery_kombu_or_redis() -> None:
    import ast
    from pathlib import Path

    for module in (spread, machine):
        tree = ast.parse(Path(module.__file__ or "").read_text())
        names = {alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
        names |= {node.module.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module and node.level == 0}
        assert not names & {"celery", "kombu", "redis"}, (module.__name__, names)
