"""The celery_dlx pytest plugin, run by pytester against the real broker."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from ..support import rabbitmqctl

pytestmark = pytest.mark.integration
pytest_plugins = ["pytester"]

APP = '''
import os
from celery import Celery
from celery_dlx import DLXTask

app = Celery("plugin_user_app", broker="amqp://guest:guest@127.0.0.1:5672//", set_as_current=False)
app.conf.task_default_queue = "plugin-user-work"
runs = []

@app.task(bind=True, base=DLXTask, shared=False, name="user.sync")
def sync(self, account):
    runs.append((account, self.request.retries))
    if self.request.retries < 2:
        raise self.retry(countdown=900, exc=RuntimeError("429 Too Many Requests"))
    return f"synced {account}"
'''

TESTS = '''
import time
import pytest
from user_app import app, sync, runs

@pytest.fixture
def dlx_app():
    return app

def test_fifteen_minute_retries_take_about_a_second(dlx_worker):
    started = time.monotonic()
    result = sync.delay(ACCOUNT)
    assert result.get(timeout=10) if app.conf.result_backend else True
    deadline = time.monotonic() + 10
    while len(runs) < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    elapsed = time.monotonic() - started
    assert runs == [(ACCOUNT, 0), (ACCOUNT, 1), (ACCOUNT, 2)]
    assert 1.8 <= elapsed < 5, elapsed
    history = dlx_worker.history(result.id)
    assert [(r.attempt, r.delay, r.planned) for r in history] == [(1, 900, 0.9), (2, 900, 0.9)]
    assert "429" in history[0].exc
    assert dlx_worker.pending() == {}
    assert dlx_worker.parked() == []
    print("PREFIX", app.conf.dlx_prefix, "VHOST", app.conf.broker_url.rsplit("/", 1)[-1])
'''


def write_project(pytester: pytest.Pytester, account: int) -> None:
    pytester.makepyfile(user_app=APP, test_user=TESTS.replace("ACCOUNT", str(account)))


def test_time_scale_history_and_a_clean_broker(pytester: pytest.Pytester) -> None:
    write_project(pytester, 7)
    result = pytester.runpytest_subprocess("-s", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    line = next(x for x in result.outlines if "PREFIX" in x)
    prefix, vhost = re.search(r"PREFIX (\S+) VHOST (\S+)", line).groups()  # type: ignore[union-attr]
    assert vhost.startswith("dlx-test-")
    assert vhost not in rabbitmqctl("list_vhosts"), "the session's virtual host was not deleted"
    assert prefix not in rabbitmqctl("list_queues", "name")


def test_two_runs_at_once_do_not_see_each_others_tasks(pytester: pytest.Pytester, tmp_path: Path) -> None:
    """Both runs use the same app, task names and work queue name; each must see only its own task."""
    runs = []
    for account in (1, 2):
        project = tmp_path / f"run{account}"
        project.mkdir()
        (project / "user_app.py").write_text(APP)
        (project / "test_user.py").write_text(TESTS.replace("ACCOUNT", str(account)))
        runs.append(
            subprocess.Popen(
                [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(project)],
                cwd=project, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            )
        )
    outputs = [proc.communicate(timeout=120)[0] for proc in runs]
    for proc, output in zip(runs, outputs):
        assert proc.returncode == 0, output


def test_time_scale_is_refused_outside_test_mode(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_refused='''
import pytest
from celery import Celery
from celery_dlx import ConfigurationError, Settings

def test_refused(monkeypatch):
    monkeypatch.delenv("CELERY_DLX_TEST_MODE", raising=False)
    app = Celery("prod", set_as_current=False)
    app.conf.dlx_time_scale = 0.001
    with pytest.raises(ConfigurationError, match="for tests only"):
        Settings.from_conf(app.conf)
'''
    )
    pytester.runpytest_subprocess("-p", "no:cacheprovider").assert_outcomes(passed=1)


def test_plugin_does_nothing_unless_used(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_plain="def test_plain():\n    import os\n    assert 'CELERY_DLX_TEST_MODE' not in os.environ\n")
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)


@pytest.mark.compat
def test_readme_example_twitter_rate_limit(pytester: pytest.Pytester) -> None:
    """The README's testing example runs as written and passes."""
    example = Path(__file__).parents[2] / "examples" / "testing" / "test_twitter_rate_limit.py"
    pytester.makepyfile(test_twitter_rate_limit=example.read_text())
    pytester.runpytest_subprocess("-p", "no:cacheprovider").assert_outcomes(passed=1)
