"""The pure parts of scripts/celery_integration.py (selection, pins, outcomes, comparison) and
of its conftest; the script as a whole runs in CI (`make celery-upstream`)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType, SimpleNamespace

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _load(name: str, path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


script = _load("celery_integration", ROOT / "scripts" / "celery_integration.py")
upstream = _load("upstream_conftest", ROOT / "tests" / "celery_upstream" / "upstream_conftest.py")

IDS = [
    "t/integration/test_tasks.py::test_tasks::test_retry",
    "t/integration/test_tasks.py::test_tasks::test_task_retried_once",
    "t/integration/test_tasks.py::test_tasks::test_basic_task",
    "t/integration/test_canvas.py::test_chord::test_parent_ids",
    "t/integration/test_canvas.py::test_chord::test_parent_ids__OR",
    "t/integration/test_canvas.py::test_chord::test_generator[3]",
    "t/integration/test_canvas.py::test_stamping_mechanism::test_stamping_workflow",
]


def test_selection_rules_match_keyword_id_parametrisations_and_children_only() -> None:
    rules = [
        "keyword:retr",
        "t/integration/test_canvas.py::test_chord::test_parent_ids",
        "t/integration/test_canvas.py::test_chord::test_generator",
        "t/integration/test_canvas.py::test_stamping_mechanism",
        "t/integration/test_canvas.py::test_gone",
    ]
    selected, unmatched = script.select(IDS, rules)
    assert selected == [
        IDS[0],
        IDS[1],
        IDS[3],  # not test_parent_ids__OR: a rule is no plain prefix
        IDS[5],
        IDS[6],
    ]
    assert unmatched == ["t/integration/test_canvas.py::test_gone"]


def test_exclude_rules_take_tests_out_whatever_the_order() -> None:
    rules = [
        "exclude:t/integration/test_tasks.py::test_tasks::test_retry",
        "keyword:retr",
        "exclude:t/integration/test_canvas.py::test_gone",
    ]
    selected, unmatched = script.select(IDS, rules)
    assert selected == [IDS[1]]
    assert unmatched == ["exclude:t/integration/test_canvas.py::test_gone"]


def test_committed_selection_and_known_failures_parse() -> None:
    rules = script.read_rules(script.DATA / "selection.txt")
    assert "keyword:retr" in rules
    assert all("#" not in rule and rule == rule.strip() for rule in rules)
    known = script.read_known_failures(script.DATA / "known_failures.txt")
    assert all(reason for reason in known.values())


def test_a_known_failure_without_reason_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "known.txt"
    path.write_text("# header\nt/x.py::test_a  # blpop timeout\nt/x.py::test_b\n")
    with pytest.raises(script.SetupError, match=r"known.txt:3"):
        script.read_known_failures(path)
    path.write_text("t/x.py::test_a  # blpop timeout\n")
    assert script.read_known_failures(path) == {"t/x.py::test_a": "blpop timeout"}


def test_requirements_take_the_exact_pins_of_the_needed_packages_only(tmp_path: Path) -> None:
    reqs = tmp_path / "requirements"
    (reqs / "extras").mkdir(parents=True)
    (reqs / "test-integration.txt").write_text("-r extras/redis.txt\npytest-rerunfailures>=11.1.2\n")
    (reqs / "test.txt").write_text(
        "pytest==9.1.1\npytest-celery[all]>=1.3.0\npytest_rerunfailures==14.0\n"
        "pytest-timeout==2.3.1  # comment\npytest-subtests==0.12.1; python_version>'3'\n"
    )
    (reqs / "extras" / "redis.txt").write_text("kombu[redis]\n")
    assert script.suite_requirements(tmp_path) == [
        "pytest-rerunfailures==14.0",
        "pytest-timeout==2.3.1",
        "pytest-subtests==0.12.1",
    ]


def test_final_outcome_is_the_worst_report_and_reruns_do_not_count() -> None:
    def reports(*nodeids: str) -> list[SimpleNamespace]:
        return [SimpleNamespace(nodeid=n) for n in nodeids]

    stats = {
        "passed": reports("a", "b", "c", "d"),
        "error": reports("b"),  # teardown error after a passed call
        "rerun": reports("c", "c"),  # failed twice, then passed
        "subtests failed": reports("d"),
        "subtests passed": reports("e"),
        "xpassed": reports("f"),
        "": reports("a"),  # setup/teardown passes
        "warnings": [SimpleNamespace()],
    }
    assert upstream.final_outcomes(stats) == {
        "a": "passed",
        "b": "error",
        "c": "passed",
        "d": "failed",
        "f": "xpassed",
    }


def _run(label: str, outcomes: dict[str, str], entities: int) -> object:
    return script.Run(label, "x:Y", outcomes, 1 if "failed" in outcomes.values() else 0, 12.0, entities)


def test_report_fails_on_a_regression_and_prints_both_counts(capsys: pytest.CaptureFixture[str]) -> None:
    first = _run("Task", {"a": "passed", "b": "passed", "c": "skipped", "k": "failed"}, 0)
    second = _run("DLXTask", {"a": "passed", "b": "failed", "c": "skipped", "k": "failed"}, 40)
    assert script.report(first, second, {"k": "needs a feature"}) == 1
    out = capsys.readouterr().out
    assert "celery-integration[Task]: 2 passed, 1 failed, 0 error, 1 skipped, 0 xfailed, 0 xpassed in 12s" in out
    assert "celery-integration[DLXTask]: 1 passed, 2 failed," in out
    assert "  failed   b" in out
    assert "known failure (both runs): k  # needs a feature" in out


def test_report_passes_when_nothing_regressed_and_warns_on_stale_entries(
    capsys: pytest.CaptureFixture[str],
) -> None:
    first = _run("Task", {"a": "passed", "k": "failed"}, 0)
    second = _run("DLXTask", {"a": "passed", "k": "passed"}, 40)
    assert script.report(first, second, {"k": "flaky blpop"}) == 0
    out = capsys.readouterr().out
    assert "stale known failure (Task failed, DLXTask passed), remove it: k" in out
    assert "failed with Task, passed with DLXTask: k" in out


def test_report_fails_on_an_unlisted_failure_in_both_runs(capsys: pytest.CaptureFixture[str]) -> None:
    first = _run("Task", {"a": "passed", "k": "error"}, 0)
    second = _run("DLXTask", {"a": "passed", "k": "failed"}, 40)
    assert script.report(first, second, {}) == 1
    assert "not in known_failures.txt" in capsys.readouterr().out


def test_report_fails_when_no_retry_reached_the_delay_topology(capsys: pytest.CaptureFixture[str]) -> None:
    first = _run("Task", {"a": "passed"}, 0)
    second = _run("DLXTask", {"a": "passed"}, 0)
    assert script.report(first, second, {}) == 1
    assert "no retry went through the celery_dlx delay topology" in capsys.readouterr().out


def test_report_fails_when_a_run_crashed(capsys: pytest.CaptureFixture[str]) -> None:
    first = _run("Task", {"a": "passed"}, 0)
    second = script.Run("DLXTask", "x:Y", {}, -1, 3.0, 40)
    assert script.report(first, second, {}) == 1
    assert "pytest did not complete (exit -1)" in capsys.readouterr().out
