#!/usr/bin/env python3
"""Run a subset of Celery's own integration tests twice, with Celery's ``Task`` and with
``DLXTask`` as every task's class, and fail if a test that passes with the first does not
pass with the second.

DLXTask claims to be a drop-in ``celery.Task``; Celery's integration suite is the best
description there is of what a Task must do.  Steps, each a function below:

1. Ask the venv under test (``--python``) for its Celery version and download that version's
   sdist from PyPI (``pip download --no-binary :all:``): only the sdist ships ``t/integration``.
2. Build a throw-away venv layered over the one under test (it sees the same Celery, kombu and
   celery_dlx) and install there only what the suite needs, pinned as the sdist's own
   ``requirements/`` pins it; the venv under test is left untouched.
3. Pick the tests of ``tests/celery_upstream/selection.txt`` from those collected.
4. Run them once per task class, each in a RabbitMQ vhost of its own (created with
   ``rabbitmqctl``, deleted afterwards even on failure) and with Redis as the result backend,
   configured through Celery's ``TEST_BROKER``/``TEST_BACKEND``; the class is set by
   ``tests/celery_upstream/upstream_conftest.py``, copied in as the root ``conftest.py``.
5. Compare the outcomes per test id, print both runs' counts, and check
   ``tests/celery_upstream/known_failures.txt`` (tests failing in both runs) against reality.

Exit status: 0 when nothing regressed; 1 for a regression, an unlisted test failing in both
runs, or a run that did not complete; 2 when the setup failed (no sdist, pip, rabbitmqctl).
A stale known-failures entry only warns.  Without RabbitMQ or Redis the script skips (exit 0)
unless ``CI=true``, where a missing service fails.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "tests" / "celery_upstream"
TEST_FILES = ("t/integration/test_tasks.py", "t/integration/test_canvas.py")
DLX_TASK_CLS = "celery_dlx:DLXTask"
#: First word of every celery_dlx exchange and queue (``dlx_prefix``'s default).
DLX_PREFIX = "celery_dlx."
CELERY_TASK_CLS = "celery.app.task:Task"
#: The pytest plugins and libraries Celery's t/integration imports or marks tests with
#: (``flaky`` -> rerunfailures, ``timeout`` -> pytest-timeout, ``subtests``, pydantic in
#: tasks.py).  pytest-celery is not needed: it only registers ``celery.contrib.pytest``
#: (passed with ``-p`` here) and pulls in Docker tooling.
NEEDED = ("pytest-rerunfailures", "pytest-timeout", "pytest-subtests", "pydantic")
OUTCOMES = ("passed", "failed", "error", "skipped", "xfailed", "xpassed")
PASSED = "passed"
FAILED = frozenset({"failed", "error"})


class SetupError(Exception):
    """Something needed before the tests can run is missing or failed; exit status 2."""


class ServiceMissing(Exception):
    """RabbitMQ or Redis does not answer: skip outside CI, fail under ``CI=true``."""


@dataclass(frozen=True)
class Run:
    """One pytest run of the selected tests with one task class."""

    label: str
    task_cls: str
    outcomes: dict[str, str]
    exitstatus: int
    seconds: float
    #: celery_dlx exchanges and queues found in the run's vhost afterwards: DLXTask declares
    #: its delay topology on its first retry, so 0 means no retry went through celery_dlx.
    dlx_entities: int

    def counts(self) -> Counter[str]:
        """How many tests ended in each outcome."""
        return Counter(self.outcomes.values())

    def summary(self) -> str:
        """``celery-integration[Task]: 80 passed, 2 failed, ...`` (zero counts shown too)."""
        counts = self.counts()
        parts = ", ".join(f"{counts.get(name, 0)} {name}" for name in OUTCOMES)
        return f"celery-integration[{self.label}]: {parts} in {self.seconds:.0f}s"


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; see the module docstring for the exit statuses."""
    args = parse_args(argv)
    install_signal_handlers()
    try:
        check_services(args.broker, args.redis_url)
    except ServiceMissing as missing:
        if os.environ.get("CI", "").lower() == "true":
            print(f"celery-integration: FAILED, {missing} (CI=true)", file=sys.stderr)
            return 1
        print(f"celery-integration: skipped, {missing} (set CI=true to fail instead)")
        return 0
    workdir = Path(tempfile.mkdtemp(prefix="celery-integration-", dir=args.workdir))
    try:
        return run_all(args, workdir)
    except SetupError as error:
        print(f"celery-integration: setup failed: {error}", file=sys.stderr)
        return 2
    finally:
        if args.keep:
            print(f"celery-integration: work directory kept at {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """Command line; every default fits this repository's CI."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument(
        "--python",
        default=str(ROOT / ".venv" / "bin" / "python"),
        help="interpreter of the venv under test (its Celery version is the one tested)",
    )
    parser.add_argument(
        "--broker",
        default=os.environ.get("CELERY_UPSTREAM_BROKER", "amqp://guest:guest@127.0.0.1:5672"),
        help="RabbitMQ URL without a vhost; each run adds its own",
    )
    parser.add_argument(
        "--redis-url",
        default=os.environ.get("CELERY_UPSTREAM_REDIS", "redis://127.0.0.1:6379/0"),
        help="result backend (Celery's Redis helpers in tasks.py use the same host and port)",
    )
    parser.add_argument("--selection", type=Path, default=DATA / "selection.txt")
    parser.add_argument("--known-failures", type=Path, default=DATA / "known_failures.txt")
    parser.add_argument(
        "--run-timeout",
        type=float,
        default=900.0,
        help="seconds one pytest run may take before it is killed and counted as failed",
    )
    parser.add_argument(
        "--test-timeout",
        type=int,
        default=180,
        help="pytest-timeout seconds per test (Celery's @flaky tests set their own 300)",
    )
    parser.add_argument("--workdir", type=Path, default=None, help="parent of the temp dir")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (sdist, logs)")
    return parser.parse_args(argv)


def install_signal_handlers() -> None:
    """Turn SIGTERM/SIGHUP into SystemExit so ``finally`` blocks delete the vhosts."""

    def _exit(signum: int, frame: FrameType | None) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, _exit)
    signal.signal(signal.SIGHUP, _exit)


def check_services(broker: str, redis_url: str) -> None:
    """Raise :class:`ServiceMissing` unless both servers accept a TCP connection."""
    for name, url, port in (("RabbitMQ", broker, 5672), ("Redis", redis_url, 6379)):
        parts = urlsplit(url)
        host, real_port = parts.hostname or "127.0.0.1", parts.port or port
        try:
            socket.create_connection((host, real_port), timeout=3).close()
        except OSError as error:
            raise ServiceMissing(f"{name} is not reachable on {host}:{real_port}: {error}") from error


def run_all(args: argparse.Namespace, workdir: Path) -> int:
    """Steps 1-5 of the module docstring."""
    start = time.monotonic()
    python = resolve_python(args.python)
    version = celery_version(python)
    print(f"celery-integration: Celery {version} from {python}")
    sdist = extract_sdist(download_sdist(python, version, workdir / "download"), workdir / "src")
    overlay = make_overlay_venv(python, workdir / "venv", suite_requirements(sdist))
    shutil.copyfile(DATA / "upstream_conftest.py", sdist / "conftest.py")
    collected = collect(overlay, sdist)
    selected, unmatched = select(collected, read_rules(args.selection))
    for rule in unmatched:
        print(f"celery-integration: warning: selection rule matches no test of Celery {version}: {rule}")
    if not selected:
        raise SetupError(f"no test selected out of {len(collected)} collected")
    print(
        f"celery-integration: {len(selected)} of {len(collected)} collected tests selected "
        f"(setup: sdist, venv, collection took {time.monotonic() - start:.0f}s)"
    )
    runs = [
        run_tests(args, overlay, sdist, workdir, label, task_cls, selected)
        for label, task_cls in (("Task", CELERY_TASK_CLS), ("DLXTask", DLX_TASK_CLS))
    ]
    return report(runs[0], runs[1], read_known_failures(args.known_failures))


def resolve_python(python: str) -> Path:
    """The venv interpreter as given (not resolved: a venv's python is a symlink to the
    base interpreter, and resolving it would leave the venv)."""
    path = Path(python)
    if not path.is_absolute():
        path = Path.cwd() / path
    if not path.exists():
        raise SetupError(f"{python} does not exist; create the venv first (make test does)")
    return path


def celery_version(python: Path) -> str:
    """``celery.__version__`` as installed in the venv under test."""
    code = "import celery; print(celery.__version__)"
    result = subprocess.run([str(python), "-c", code], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise SetupError(f"cannot import celery with {python}: {result.stderr.strip()}")
    return result.stdout.strip()


def download_sdist(python: Path, version: str, dest: Path) -> Path:
    """The ``celery-<version>.tar.gz`` sdist from PyPI (wheels do not ship the tests)."""
    command = [str(python), "-m", "pip", "download", "--no-binary", ":all:", "--no-deps"]
    command += ["--quiet", f"celery=={version}", "-d", str(dest)]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    archives = sorted(dest.glob("celery-*.tar.gz")) if dest.is_dir() else []
    if result.returncode != 0 or not archives:
        raise SetupError(
            f"could not download the Celery {version} sdist from PyPI "
            f"({shlex.join(command)} exited {result.returncode}):\n{tail(result.stderr)}"
        )
    return archives[0]


def extract_sdist(archive: Path, dest: Path) -> Path:
    """Extract ``archive`` and return the directory that holds ``t/integration``."""
    dest.mkdir(parents=True)
    with tarfile.open(archive) as tar:
        if hasattr(tarfile, "data_filter"):  # refuses links and paths out of dest
            tar.extractall(dest, filter="data")
        else:  # Python < 3.11.4; the archive comes from PyPI over HTTPS
            tar.extractall(dest)
    roots = [p.parent.parent for p in dest.glob("*/t/integration") if p.is_dir()]
    if len(roots) != 1:
        raise SetupError(f"{archive.name} has no single t/integration directory")
    return roots[0]


def suite_requirements(sdist: Path) -> list[str]:
    """The :data:`NEEDED` packages, pinned as the sdist's requirements files pin them.

    Celery's pins are what its integration tests were last run with (see :func:`rank`).  A
    package it does not list (pydantic in older versions) is not needed by that version's
    suite either.
    """
    pins: dict[str, str] = {}
    for path in sorted((sdist / "requirements").rglob("*.txt")):
        for line in path.read_text().splitlines():
            match = re.match(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)(\[[^\]]*\])?\s*([^#;]*)", line)
            if match:
                name = normalize(match.group(1))
                spec = match.group(3).strip()
                if rank(spec) > rank(pins.get(name)):
                    pins[name] = spec
    wanted = [normalize(n) for n in NEEDED]
    return [f"{name}{pins[name]}" for name in wanted if name in pins]


def rank(spec: str | None) -> int:
    """Which of two specifiers of one package to keep: an exact pin over a range (Celery
    5.4 has ``>=11.1.2`` in one file and ``==14.0`` in another), a range over nothing."""
    if spec is None:
        return -1
    return 2 if spec.startswith("==") else 1 if spec else 0


def normalize(name: str) -> str:
    """PEP 503 project name normalisation."""
    return re.sub(r"[-_.]+", "-", name).lower()


def make_overlay_venv(python: Path, dest: Path, requirements: list[str]) -> Path:
    """A venv that sees the packages of ``python``'s venv, plus ``requirements``.

    A ``.pth`` line calls ``site.addsitedir`` on the venv under test, so its own ``.pth``
    files (the editable celery_dlx install) work too; pip then counts its packages as
    installed and adds only what is missing.  Returns the overlay's interpreter.
    """
    paths_code = "import sysconfig as s; print(s.get_paths()['purelib']); print(s.get_paths()['platlib'])"
    parent = run_checked([str(python), "-c", paths_code], "reading the venv's site-packages")
    run_checked([str(python), "-m", "venv", str(dest)], "creating the overlay venv")
    overlay = dest / "bin" / "python"
    own = run_checked([str(overlay), "-c", paths_code], "reading the overlay's site-packages")
    lines = [f"import site; site.addsitedir({p!r})" for p in dict.fromkeys(parent.split())]
    (Path(own.split()[0]) / "_celery_upstream_parent.pth").write_text("\n".join(lines) + "\n")
    if requirements:
        print(f"celery-integration: installing {' '.join(requirements)}")
        pip = [str(overlay), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
        run_checked(pip + requirements, "installing the integration suite's requirements")
    return overlay


def run_checked(command: list[str], what: str) -> str:
    """Run ``command``; its stdout, or :class:`SetupError` saying ``what`` failed."""
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise SetupError(f"{what} failed ({shlex.join(command)}):\n{tail(result.stderr)}")
    return result.stdout


def tail(text: str, lines: int = 20) -> str:
    """The last lines of a command's output, for an error message."""
    return "\n".join(text.strip().splitlines()[-lines:])


def collect(overlay: Path, sdist: Path) -> list[str]:
    """Node ids of the tests in :data:`TEST_FILES` (collection opens no connection)."""
    command = [str(overlay), "-m", "pytest", "-p", "celery.contrib.pytest", "-p", "no:cacheprovider"]
    command += ["--collect-only", "-q", *TEST_FILES]
    result = subprocess.run(command, cwd=sdist, capture_output=True, text=True, check=False)
    ids = [line for line in result.stdout.splitlines() if "::" in line and not line.startswith(" ")]
    if result.returncode != 0 or not ids:
        raise SetupError(f"collecting Celery's integration tests failed:\n{tail(result.stdout + result.stderr)}")
    return ids


def read_rules(path: Path) -> list[str]:
    """Non-empty lines of a rule file, without ``# comments``."""
    rules = []
    for line in path.read_text().splitlines():
        rule = line.split("#", 1)[0].strip()
        if rule:
            rules.append(rule)
    return rules


def read_known_failures(path: Path) -> dict[str, str]:
    """``known_failures.txt``: node id -> reason.  An entry without a reason is refused."""
    known: dict[str, str] = {}
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        nodeid, _, reason = line.partition("#")
        if not reason.strip():
            raise SetupError(f"{path}:{number}: a known failure needs `# reason`: {line.strip()}")
        known[nodeid.strip()] = reason.strip()
    return known


def select(collected: list[str], rules: list[str]) -> tuple[list[str], list[str]]:
    """The collected ids any rule matches (in collection order), and the rules matching none.

    ``keyword:<text>`` matches a test whose name contains text; anything else is a node id
    that matches itself, its parametrisations (``id[...]``) and its children (``id::...``).
    ``exclude:<rule>`` takes what ``<rule>`` matches out again, whatever the order of the lines
    (for a test that is racy in itself, whichever task class runs it).
    """
    selected: set[str] = set()
    excluded: set[str] = set()
    unmatched = []
    for rule in rules:
        negated = rule.startswith("exclude:")
        pattern = rule.removeprefix("exclude:")
        hits = {nodeid for nodeid in collected if rule_matches(pattern, nodeid)}
        if not hits:
            unmatched.append(rule)
        (excluded if negated else selected).update(hits)
    return [nodeid for nodeid in collected if nodeid in selected - excluded], unmatched


def rule_matches(rule: str, nodeid: str) -> bool:
    """Whether one selection rule picks ``nodeid``; see :func:`select`."""
    if rule.startswith("keyword:"):
        return rule.removeprefix("keyword:") in nodeid.rsplit("::", 1)[-1]
    return nodeid == rule or nodeid.startswith((rule + "::", rule + "["))


def rabbitmqctl() -> list[str]:
    """The rabbitmqctl command (``DLX_RABBITMQCTL`` may name a container's, as for the
    project's own tests)."""
    return shlex.split(os.environ.get("DLX_RABBITMQCTL", "rabbitmqctl"))


@contextlib.contextmanager
def vhost(prefix: str) -> Iterator[str]:
    """A fresh RabbitMQ vhost that guest may use, deleted on the way out whatever happens:
    queues, delay topology and unacked leftovers of one run never reach the next run or
    the default vhost."""
    name = f"{prefix}-{uuid.uuid4().hex[:8]}"
    run_checked([*rabbitmqctl(), "add_vhost", name], f"creating vhost {name}")
    try:
        run_checked(
            [*rabbitmqctl(), "set_permissions", "-p", name, "guest", ".*", ".*", ".*"],
            f"granting guest vhost {name}",
        )
        yield name
    finally:
        result = subprocess.run(
            [*rabbitmqctl(), "delete_vhost", name], capture_output=True, text=True, check=False
        )
        if result.returncode != 0:
            print(f"celery-integration: warning: could not delete vhost {name}: {tail(result.stderr)}")


def run_tests(
    args: argparse.Namespace,
    overlay: Path,
    sdist: Path,
    workdir: Path,
    label: str,
    task_cls: str,
    selected: list[str],
) -> Run:
    """One pytest run of ``selected`` with ``task_cls`` in its own vhost.

    pytest's output goes to this process's stdout as it runs, so CI shows progress and
    tracebacks.
    """
    outcomes_file = workdir / f"outcomes-{label}.json"
    redis = urlsplit(args.redis_url)
    with vhost(f"celery-integration-{label.lower()}") as name:
        env = {
            **os.environ,
            "TEST_BROKER": f"{args.broker.rstrip('/')}/{name}",
            "TEST_BACKEND": args.redis_url,
            "REDIS_HOST": redis.hostname or "127.0.0.1",
            "REDIS_PORT": str(redis.port or 6379),
            "CELERY_UPSTREAM_TASK_CLS": task_cls,
            "CELERY_UPSTREAM_OUTCOMES": str(outcomes_file),
        }
        command = [str(overlay), "-m", "pytest", "-p", "celery.contrib.pytest", "-p", "no:cacheprovider"]
        command += ["-q", "-rfE", "--disable-warnings", "--durations=10"]
        command += [f"--timeout={args.test_timeout}", *selected]
        print(f"celery-integration[{label}]: running {len(selected)} tests in vhost {name}", flush=True)
        start = time.monotonic()
        try:
            subprocess.run(command, cwd=sdist, env=env, timeout=args.run_timeout, check=False)
        except subprocess.TimeoutExpired:
            print(f"celery-integration[{label}]: killed after {args.run_timeout:.0f}s", flush=True)
        seconds = time.monotonic() - start
        entities = dlx_entities(name)
    outcomes, exitstatus = read_outcomes(outcomes_file)
    return Run(label, task_cls, outcomes, exitstatus, seconds, entities)


def dlx_entities(vhost_name: str) -> int:
    """How many celery_dlx exchanges and queues ``vhost_name`` holds."""
    count = 0
    for kind in ("list_exchanges", "list_queues"):
        command = [*rabbitmqctl(), kind, "-q", "--no-table-headers", "-p", vhost_name, "name"]
        names = run_checked(command, f"listing the {kind[5:]} of vhost {vhost_name}").split()
        count += sum(name.startswith(DLX_PREFIX) for name in names)
    return count


def read_outcomes(path: Path) -> tuple[dict[str, str], int]:
    """What upstream_conftest.py wrote; a run that wrote nothing counts as crashed (-1)."""
    if not path.exists():
        return {}, -1
    data = json.loads(path.read_text())
    return dict(data["outcomes"]), int(data["exitstatus"])


def report(first: Run, second: Run, known: Mapping[str, str]) -> int:
    """Print the counts, regressions and known-failure check; the exit status."""
    print()
    for run in (first, second):
        print(run.summary())
    status = 0
    for run in (first, second):
        if run.exitstatus not in (0, 1) or not run.outcomes:
            print(f"celery-integration[{run.label}]: FAILED: pytest did not complete (exit {run.exitstatus})")
            status = 1
    print(f"celery-integration[DLXTask]: {second.dlx_entities} celery_dlx exchanges/queues declared by its retries")
    if first.dlx_entities:
        print(f"celery-integration[Task]: FAILED: {first.dlx_entities} celery_dlx entities in Celery's Task run")
        status = 1
    if not second.dlx_entities:
        print("celery-integration[DLXTask]: FAILED: no retry went through the celery_dlx delay topology")
        status = 1
    regressions = sorted(
        (nodeid, second.outcomes.get(nodeid, "not run"))
        for nodeid, outcome in first.outcomes.items()
        if outcome == PASSED and second.outcomes.get(nodeid) != PASSED
    )
    if regressions:
        status = 1
        print(f"celery-integration: {len(regressions)} regression(s): passed with Task, not with DLXTask:")
        for nodeid, outcome in regressions:
            print(f"  {outcome:8} {nodeid}")
    else:
        print("celery-integration: no regressions: every test that passed with Task passed with DLXTask")
    only_first = sorted(n for n, o in second.outcomes.items() if o == PASSED and first.outcomes.get(n) in FAILED)
    for nodeid in only_first:
        print(f"celery-integration: note: failed with Task, passed with DLXTask: {nodeid}")
    both = {n for n, o in first.outcomes.items() if o in FAILED and second.outcomes.get(n) in FAILED}
    unlisted = sorted(both - set(known))
    if unlisted:
        status = 1
        print("celery-integration: failing in both runs and not in known_failures.txt (add with a reason):")
        for nodeid in unlisted:
            print(f"  {nodeid}")
    for nodeid in sorted(set(known) & both):
        print(f"celery-integration: known failure (both runs): {nodeid}  # {known[nodeid]}")
    for nodeid in sorted(set(known) - both):
        seen = f"Task {first.outcomes.get(nodeid, 'not run')}, DLXTask {second.outcomes.get(nodeid, 'not run')}"
        print(f"celery-integration: warning: stale known failure ({seen}), remove it: {nodeid}")
    print(f"celery-integration: {'FAILED' if status else 'OK'}")
    return status


if __name__ == "__main__":
    sys.exit(main())
