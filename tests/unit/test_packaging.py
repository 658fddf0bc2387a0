"""The installed distribution says what it is: typed, Python >= 3.10, the right dependencies."""

from __future__ import annotations

from importlib import metadata
from pathlib import Path

import celery_dlx


def test_metadata() -> None:
    dist = metadata.distribution("celery_dlx")
    assert dist.metadata["Requires-Python"] == ">=3.10"
    requires = " ".join(dist.requires or [])
    for dependency in ("celery>=5.4", "kombu", "tenacity"):
        assert dependency in requires
    assert 'pika>=1.3; extra == "test"' in requires.replace("'", '"')


def test_py_typed_ships_with_the_package() -> None:
    assert (Path(celery_dlx.__file__).parent / "py.typed").exists()


def test_public_api() -> None:
    assert {"delayed_retry", "DLXTask", "DelayLevels", "Topology", "Settings", "TopologyMismatch"} <= set(celery_dlx.__all__)
