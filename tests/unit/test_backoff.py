"""Backoff policies are tenacity wait objects."""

from __future__ import annotations

import pytest
from tenacity import RetryCallState, wait_chain, wait_exponential, wait_fixed, wait_random

from celery_dlx.backoff import wait_seconds


def test_exponential_wait_follows_the_attempt_number() -> None:
    wait = wait_exponential(multiplier=1, min=1, max=60)
    assert [wait_seconds(wait, n) for n in range(1, 8)] == [1, 2, 4, 8, 16, 32, 60]


def test_composed_waits_work() -> None:
    wait = wait_fixed(3) + wait_random(0, 1)
    for attempt in range(1, 5):
        assert 3 <= wait_seconds(wait, attempt) <= 4
    chain = wait_chain(wait_fixed(1), wait_fixed(5))
    assert [wait_seconds(chain, n) for n in (1, 2, 3)] == [1, 5, 5]


class RateLimited(Exception):
    def __init__(self, retry_after: float) -> None:
        super().__init__(f"retry after {retry_after}")
        self.retry_after = retry_after


def test_a_wait_can_take_its_delay_from_the_exception() -> None:
    def from_retry_after(state: RetryCallState) -> float:
        assert state.outcome is not None
        exc = state.outcome.exception()
        return exc.retry_after if isinstance(exc, RateLimited) else 1.0

    assert wait_seconds(from_retry_after, 1, RateLimited(42.5)) == 42.5
    assert wait_seconds(from_retry_after, 1, ValueError()) == 1.0


@pytest.mark.parametrize("attempt", [0, -1, 1.5, True])
def test_attempt_must_be_a_positive_whole_number(attempt: object) -> None:
    with pytest.raises(ValueError, match="attempt"):
        wait_seconds(wait_fixed(1), attempt)  # type: ignore[arg-type]
