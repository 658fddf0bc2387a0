"""Rates and adaptive parameters: what a limit is, written the way API documentation writes it."""

from __future__ import annotations

import pytest

from celery_dlx.ratelimit import AdaptiveRate, Rate


@pytest.mark.parametrize(
    ("text", "limit", "period"),
    [
        ("900/15 minutes", 900, 900.0),
        ("900 per 15 minutes", 900, 900.0),
        ("10/second", 10, 1.0),
        ("10/s", 10, 1.0),
        ("200 per hour", 200, 3600.0),
        ("100000/day", 100000, 86400.0),
        ("5/1.5s", 5, 1.5),
        ("3 / 2 Min", 3, 120.0),
    ],
)
def test_rates_are_read_as_api_docs_write_them(text: str, limit: int, period: float) -> None:
    assert Rate.parse(text) == Rate(limit, period)


@pytest.mark.parametrize(
    "text", ["", "900", "0/minute", "900/15 fortnights", "-1/second", "1.5/second", "1/0 seconds", None]
)
def test_unreadable_rates_say_how_to_write_one(text: str) -> None:
    with pytest.raises(ValueError, match="rate"):
        Rate.parse(text)


def test_a_rate_counts_in_whole_microseconds() -> None:
    assert Rate.parse("900/15 minutes").period_us == 900_000_000
    assert Rate(1, 0.0000015).period_us == 2
    with pytest.raises(ValueError, match="microsecond"):
        Rate(1, 0.0000001)


def test_rate_of_accepts_a_rate_or_its_text() -> None:
    rate = Rate(2, 1.0)
    assert Rate.of(rate) is rate
    assert Rate.of("2/second") == rate
    assert str(Rate.parse("900/15 minutes")) == "900/900 seconds"


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"initial": 0}, "initial"),
        ({"floor": 5}, "floor <= initial"),
        ({"ceiling": 0.5}, "floor <= initial"),
        ({"decrease": 1.0}, "decrease"),
        ({"recover": 0}, "recover"),
        ({"burst": 1.5}, "burst"),
        ({"forget_after": float("inf")}, "forget_after"),
    ],
)
def test_adaptive_rates_check_their_parameters(options: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        AdaptiveRate(**{"initial": 1.0, "floor": 0.1, "ceiling": 10.0, **options})  # type: ignore[arg-type]
