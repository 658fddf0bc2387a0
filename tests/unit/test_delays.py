"""The delay planner: exact, bounded, never early."""

from __future__ import annotations

import math
import re
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from celery_dlx.broker.plan import MAX_LEVELS, DelayLevels

LEVELS = DelayLevels()
#: The planner without slack: every delay rounded up to the next unit.
EXACT = DelayLevels(precision=0)
delays = st.floats(min_value=0, max_value=LEVELS.max_delay, allow_nan=False, allow_infinity=False)


def test_defaults_cover_30_days_at_10_ms_with_at_most_40_queues() -> None:
    assert LEVELS.unit_ms <= 100
    assert LEVELS.max_delay >= 30 * 86400
    assert LEVELS.levels + 1 <= 40  # delay queues plus the parking queue
    assert LEVELS.max_delay_ms == (2**28 - 1) * 10


@given(delays)
def test_planned_delay_is_never_short_and_less_than_one_unit_long(delay: float) -> None:
    route = EXACT.plan(delay)
    planned = Fraction(route.delay_ms, 1000)
    assert Fraction(delay) <= planned < Fraction(delay) + Fraction(EXACT.unit_ms, 1000)


@given(delays)
def test_waits_add_up_to_the_planned_delay_and_hops_count_them(delay: float) -> None:
    route = LEVELS.plan(delay)
    assert sum(LEVELS.ttl_ms(k) for k in route.waits) == route.delay_ms
    assert route.hops == len(route.waits)
    assert list(route.waits) == sorted(route.waits, reverse=True)


@given(delays)
def test_routing_key_decodes_to_the_same_route_and_is_bounded(delay: float) -> None:
    route = LEVELS.plan(delay)
    assert LEVELS.route_from_key(route.routing_key) == route
    assert len(route.routing_key) <= 2 * LEVELS.levels - 1 < 255


@given(delays)
def test_each_level_pattern_matches_exactly_when_the_route_waits_there(delay: float) -> None:
    """Emulates RabbitMQ topic matching for the levels the message passes through."""
    route = LEVELS.plan(delay)
    if route.top is None:
        return
    for level in range(route.top + 1):
        waits = _topic_match(LEVELS.wait_pattern(level), route.routing_key)
        passes = _topic_match(LEVELS.pass_pattern(level), route.routing_key)
        assert waits == (level in route.waits)
        assert passes == (not waits)


def _topic_match(pattern: str, key: str) -> bool:
    regex = pattern.replace(".", r"\.").replace("*", r"[^.]+").replace(r"\.#", r"(\.[^.]+)*")
    return re.fullmatch(regex, key) is not None


def test_exact_decimal_delays_do_not_round_up_a_unit() -> None:
    assert EXACT.plan(0.3).delay_ms == 300
    assert EXACT.plan(2.5).delay_ms == 2500
    assert EXACT.plan(0.301).delay_ms == 310


def test_zero_delay_goes_nowhere_but_the_destination() -> None:
    route = LEVELS.plan(0)
    assert route.units == 0 and route.top is None and route.hops == 0


def test_the_maximum_is_accepted_and_one_unit_more_refused() -> None:
    assert LEVELS.plan(LEVELS.max_delay).units == 2**28 - 1
    with pytest.raises(ValueError, match=r"exceeds the maximum of 2684354\.55 s"):
        LEVELS.plan(LEVELS.max_delay + 0.001)


@pytest.mark.parametrize(
    "bad, message",
    [
        (-0.001, ">= 0"),
        (-1, ">= 0"),
        (math.nan, "finite"),
        (math.inf, "finite"),
        (-math.inf, "finite"),
        (1e30, "exceeds the maximum"),
        ("5", "number of seconds"),
        (None, "number of seconds"),
        (True, "number of seconds"),
    ],
)
def test_bad_delays_raise_value_error_naming_the_limit(bad: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        LEVELS.plan(bad)  # type: ignore[arg-type]


@pytest.mark.parametrize("unit_ms, levels", [(0, 28), (-10, 28), (1.5, 28), (10, 0), (10, MAX_LEVELS + 1), (True, 5)])
def test_bad_ladders_are_refused(unit_ms: object, levels: object) -> None:
    with pytest.raises(ValueError):
        DelayLevels(unit_ms=unit_ms, levels=levels)  # type: ignore[arg-type]


def test_routing_key_that_is_not_a_route_is_refused() -> None:
    with pytest.raises(ValueError, match="not a celery_dlx route"):
        LEVELS.route_from_key("celery")
    with pytest.raises(ValueError, match="not a celery_dlx route"):
        DelayLevels(levels=2).route_from_key("1.0.1")


def test_patterns_do_not_depend_on_the_number_of_levels() -> None:
    """Messages already in flight stay routable when dlx_levels changes."""
    assert DelayLevels(levels=10).wait_pattern(3) == DelayLevels(levels=30).wait_pattern(3) == "*.*.*.1.#"
