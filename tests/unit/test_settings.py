"""Settings come from the Celery configuration and are checked up front."""

from __future__ import annotations

import pytest

from celery_dlx import ConfigurationError, Settings


def test_defaults() -> None:
    settings = Settings.from_conf({})
    assert (settings.prefix, settings.queue_type, settings.levels.unit_ms, settings.levels.levels) == (
        "celery_dlx",
        "classic",
        10,
        28,
    )
    assert settings.auto_declare is True


def test_values_are_read_from_dlx_keys() -> None:
    settings = Settings.from_conf(
        {"dlx_prefix": "app1", "dlx_queue_type": "quorum", "dlx_unit_ms": 100, "dlx_levels": 25, "dlx_confirm_timeout": 5}
    )
    assert settings.prefix == "app1" and settings.queue_type == "quorum"
    assert settings.levels.max_delay == (2**25 - 1) / 10
    assert settings.confirm_timeout == 5


@pytest.mark.parametrize(
    "conf, message",
    [
        ({"dlx_queue_type": "stream"}, "dlx_queue_type"),
        ({"dlx_prefix": ""}, "dlx_prefix"),
        ({"dlx_prefix": "has space"}, "dlx_prefix"),
        ({"dlx_unit_ms": 0}, "dlx_unit_ms"),
        ({"dlx_levels": 41}, "dlx_levels"),
        ({"dlx_confirm_timeout": 0}, "dlx_confirm_timeout"),
        ({"dlx_confirm_timeout": float("nan")}, "dlx_confirm_timeout"),
    ],
)
def test_bad_settings_raise_configuration_error(conf: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        Settings.from_conf(conf)


def test_time_scale_is_refused_outside_test_mode() -> None:
    with pytest.raises(ConfigurationError, match="for tests only"):
        Settings.from_conf({"dlx_time_scale": 0.001}, environ={})
    with pytest.raises(ConfigurationError, match="for tests only"):
        Settings.from_conf({"dlx_time_scale": 0.001}, environ={"CELERY_DLX_TEST_MODE": "yes"})


def test_time_scale_in_test_mode() -> None:
    settings = Settings.from_conf({"dlx_time_scale": 0.001}, environ={"CELERY_DLX_TEST_MODE": "1"})
    assert settings.time_scale == 0.001
    assert Settings.from_conf({}, environ={}).time_scale == 1.0


@pytest.mark.parametrize("scale", [0, -1, 2, float("nan"), "fast"])
def test_time_scale_must_be_in_zero_one(scale: object) -> None:
    with pytest.raises(ConfigurationError, match="dlx_time_scale"):
        Settings.from_conf({"dlx_time_scale": scale}, environ={"CELERY_DLX_TEST_MODE": "1"})


def test_parking_retention_defaults_are_100000_messages_and_30_days() -> None:
    settings = Settings.from_conf({})
    assert settings.parking_max_messages == 100_000
    assert settings.parking_max_age == 30 * 86400
    assert settings.parking_max_age_ms == 30 * 86400 * 1000


@pytest.mark.parametrize("messages, age", [(None, None), (0, 0), (0, 0.0)])
def test_parking_retention_none_or_zero_means_no_limit(messages: object, age: object) -> None:
    settings = Settings.from_conf({"dlx_parking_max_messages": messages, "dlx_parking_max_age": age})
    assert settings.parking_max_messages is None and settings.parking_max_age is None
    assert settings.parking_max_age_ms is None


def test_parking_max_age_becomes_whole_milliseconds_rounded_up() -> None:
    assert Settings.from_conf({"dlx_parking_max_age": 1.5}).parking_max_age_ms == 1500
    assert Settings.from_conf({"dlx_parking_max_age": 0.0015}).parking_max_age_ms == 2


@pytest.mark.parametrize(
    "conf, message",
    [
        ({"dlx_parking_max_messages": -1}, r"dlx_parking_max_messages must be a whole number of messages >= 0 \(0 or None: no limit\), got -1"),
        ({"dlx_parking_max_messages": 2.5}, "dlx_parking_max_messages .* got 2.5"),
        ({"dlx_parking_max_messages": True}, "dlx_parking_max_messages .* got True"),
        ({"dlx_parking_max_messages": "10000"}, "dlx_parking_max_messages .* got '10000'"),
        ({"dlx_parking_max_age": -5}, r"dlx_parking_max_age must be a number of seconds >= 0 \(0 or None: no limit\), got -5"),
        ({"dlx_parking_max_age": float("inf")}, "dlx_parking_max_age .* got inf"),
        ({"dlx_parking_max_age": float("nan")}, "dlx_parking_max_age .* got nan"),
        ({"dlx_parking_max_age": "7d"}, "dlx_parking_max_age .* got '7d'"),
        ({"dlx_parking_max_age": False}, "dlx_parking_max_age .* got False"),
        ({"dlx_parking_max_age": 0.0001}, "whole milliseconds: at least 0.001 s"),
    ],
)
def test_bad_parking_retention_raises_configuration_error(conf: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        Settings.from_conf(conf)
