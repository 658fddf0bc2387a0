"""Root ``conftest.py`` for Celery's own integration tests, as run by
``scripts/celery_integration.py``, which copies this file into the extracted Celery sdist.

It does three things, all driven by environment variables so one file serves both runs:

- ``CELERY_UPSTREAM_TASK_CLS`` (e.g. ``celery_dlx:DLXTask``) becomes the ``task_cls`` of the
  apps Celery's fixtures build: their ``celery_session_app``/``celery_app`` pass the
  ``celery_parameters`` fixture to ``Celery(...)``, and a conftest fixture overrides the
  plugin's.  Unset: Celery's own ``Task``.
- Every test first checks that the session app's tasks really are of that class, so a run that
  silently fell back to Celery's ``Task`` cannot pass as a DLXTask run.
- ``CELERY_UPSTREAM_OUTCOMES`` names a JSON file that receives each test's final outcome.
  Junit XML is not used for this: pytest-rerunfailures writes every rerun as a ``testcase``
  with no child (indistinguishable from a pass), and junit has no ``xpassed``.

This module is not collected by the project's own test run (its name does not start with
``test_`` and it is not called ``conftest.py`` here).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from celery import Celery  # type: ignore[import-untyped]
from celery.utils.imports import symbol_by_name  # type: ignore[import-untyped]

TASK_CLS_ENV = "CELERY_UPSTREAM_TASK_CLS"
OUTCOMES_ENV = "CELERY_UPSTREAM_OUTCOMES"
CELERY_TASK_CLS = "celery.app.task:Task"

#: Outcomes from best to worst: a test with several reports (a call that passed and a
#: teardown that errored, a failed subtest) gets the worst one.
SEVERITY = ("passed", "skipped", "xfailed", "xpassed", "failed", "error")
#: pytest's summary categories that are not one of SEVERITY but decide a test's outcome.
CATEGORY_ALIASES = {"subtests failed": "failed"}


def requested_task_cls() -> str:
    """The ``task_cls`` this run is about (Celery's own when the variable is unset)."""
    return os.environ.get(TASK_CLS_ENV) or CELERY_TASK_CLS


@pytest.fixture(scope="session")
def celery_parameters() -> Mapping[str, Any]:
    """``Celery(...)`` keyword arguments of the apps built by Celery's test fixtures."""
    return {"task_cls": requested_task_cls()}


@pytest.fixture(autouse=True)
def upstream_task_class_in_use(celery_session_app: Celery) -> None:
    """Error out unless the session app's tasks are of the requested class.

    Checked on a task the integration suite retries (``retry_once``), not only on
    ``app.Task``, because that is the object whose ``retry`` the tests exercise.
    """
    expected = symbol_by_name(requested_task_cls())
    task = celery_session_app.tasks.get("t.integration.tasks.retry_once")
    if task is None:  # tasks are registered when the worker fixture imports them
        task = celery_session_app.Task
    cls = task if isinstance(task, type) else type(task)
    if not issubclass(cls, expected):
        pytest.fail(f"tasks are {cls.__mro__}, not subclasses of {expected!r}")
    if requested_task_cls() == CELERY_TASK_CLS and any(
        c.__module__.startswith("celery_dlx") for c in cls.__mro__
    ):
        pytest.fail(f"the Celery Task run uses a celery_dlx class: {cls.__mro__}")


def final_outcomes(stats: Mapping[str, list[Any]]) -> dict[str, str]:
    """Each test id's final outcome from pytest's terminal ``stats``.

    Reruns (category ``rerun``), setup/teardown passes (``""``), passed subtests and warnings
    are not outcomes of their own.
    """
    outcomes: dict[str, str] = {}
    for category, reports in stats.items():
        outcome = CATEGORY_ALIASES.get(category, category)
        if outcome not in SEVERITY:
            continue
        for report in reports:
            nodeid = getattr(report, "nodeid", "")
            if not nodeid:
                continue
            previous = outcomes.get(nodeid)
            if previous is None or SEVERITY.index(outcome) > SEVERITY.index(previous):
                outcomes[nodeid] = outcome
    return outcomes


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Write the outcomes file the comparing script reads."""
    path = os.environ.get(OUTCOMES_ENV)
    if not path:
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    stats: Mapping[str, list[Any]] = getattr(reporter, "stats", {})
    Path(path).write_text(
        json.dumps({"exitstatus": int(exitstatus), "outcomes": final_outcomes(stats)}, indent=1)
    )
