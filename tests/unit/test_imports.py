"""Importing a part of celery_dlx is cheap and has no side effects."""

from __future__ import annotations

import subprocess
import sys

import pytest

import celery_dlx

HEAVY = ("celery", "kombu", "redis")


def _loaded_after(statement: str) -> set[str]:
    code = f"import sys\n{statement}\nprint(' '.join(sorted(sys.modules)))"
    output = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    return set(output.split())


def test_the_delay_planner_imports_neither_celery_nor_kombu_nor_redis() -> None:
    loaded = _loaded_after("import celery_dlx.broker.plan")
    assert not {name for name in loaded if name.split(".")[0] in HEAVY}


@pytest.mark.parametrize("statement", ["import celery_dlx", "import celery_dlx.classify", "import celery_dlx.ratelimit"])
def test_importing_the_package_loads_no_broker_client(statement: str) -> None:
    loaded = _loaded_after(statement)
    assert not {name for name in loaded if name.split(".")[0] in HEAVY}


def test_no_signal_is_connected_at_import() -> None:
    code = (
        "from celery import signals\n"
        "before = {name: len(getattr(signals, name).receivers) for name in signals.__all__}\n"
        "import celery_dlx, celery_dlx.softlimit.task, celery_dlx.pagination.tasks, celery_dlx.networks.tasks\n"
        "import celery_dlx.testing.pytest_plugin\n"
        "after = {name: len(getattr(signals, name).receivers) for name in signals.__all__}\n"
        "print(sorted(name for name in before if before[name] != after[name]))"
    )
    output = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert output.strip() == "[]"


def test_every_public_name_resolves_lazily() -> None:
    for name in celery_dlx.__all__:
        assert getattr(celery_dlx, name) is not None
    assert set(celery_dlx.__all__) <= set(dir(celery_dlx))
    with pytest.raises(AttributeError):
        celery_dlx.no_such_name  # noqa: B018
