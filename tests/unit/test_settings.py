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
