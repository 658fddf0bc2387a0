"""The supported-versions matrix, run with nox (in the ``test`` extra): ``make matrix`` or ``nox``.

Sessions (``nox -l`` lists them):

- ``unit-3.10`` … ``unit-3.13``: ``tests/unit`` on every supported Python with the newest Celery.
- ``compat(5.4)`` ``compat(5.5)`` ``compat(5.6)``: on the latest patch of each older Celery
  minor, the tests marked ``compat``: the Celery-facing unit tests (eager retry, retry
  validation, request handling) and the integration subset (retry through the broker with
  ``retry(**options)``, canvas with retrying members, parking and replay, the ``celery dlx``
  commands, the pytest plugin, a network task's rate-limit retry) against the real RabbitMQ
  and Redis.  Tests marked ``compat`` run on every Celery minor; mark a new test ``compat``
  when it covers something Celery versions could do differently.
- ``integration``: the whole suite on the newest Celery (what ``make test`` runs; for users —
  CI runs ``make test`` instead of this session).

CI runs ``make matrix`` (``nox -s unit-3.10 unit-3.12 unit-3.13 compat``) after ``make test``,
which covers Python 3.11 and the newest Celery in full.  Each older Celery runs on a different
Python, so that every Python also runs the integration subset once.  Each session prints one ``matrix:`` line with its versions and counts
and appends it to ``.nox/matrix.txt``.

Installs go through pip and its cache.  A virtualenv is reused only by ``nox -r`` (never in CI,
whose checkout is fresh), and every install asks pip for ``--upgrade-strategy eager``, so a
reused environment ends with the same versions a fresh one would get.
"""

from __future__ import annotations

import glob
import os
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import nox

ROOT = Path(__file__).resolve().parent
PYTHONS = ["3.10", "3.11", "3.12", "3.13"]
#: The Python ``make test`` (CI's full run) uses: the unit session for it is not in the ``ci`` tag.
MAKE_TEST_PYTHON = "3.11"
#: Latest patch of each older Celery minor: (release, the Python its session runs on, other pins).
#: Celery 5.4 runs with the lowest kombu celery_dlx accepts, so the session tests the lower
#: bounds of pyproject.toml together; the others take the kombu pip installs with them.
OLDER_CELERY = {
    "5.4": ("5.4.0", "3.10", ("kombu==5.4.2",)),
    "5.5": ("5.5.3", "3.12", ()),
    "5.6": ("5.6.3", "3.13", ()),
}
SUMMARY = ROOT / ".nox" / "matrix.txt"

nox.options.error_on_missing_interpreters = True  # a missing Python fails the matrix, never skips it
nox.options.sessions = ["unit", "compat"]


def _interpreters_from_pyenv() -> None:
    """Put pyenv's interpreters on PATH ahead of its shims.

    A pyenv shim such as ``python3.12`` exists for every installed version but refuses to run
    one that is not selected (``pyenv global``), and nox takes the first ``python3.X`` on PATH.
    """
    root = os.environ.get("PYENV_ROOT", os.path.expanduser("~/.pyenv"))
    found = [max(glob.glob(f"{root}/versions/{version}.*/bin"), default=None) for version in PYTHONS]
    dirs = [d for d in found if d]
    if dirs:
        os.environ["PATH"] = os.pathsep.join([*dirs, os.environ.get("PATH", "")])


_interpreters_from_pyenv()


def _install(session: nox.Session, *requirements: str) -> None:
    session.install("--upgrade", "--upgrade-strategy", "eager", "-e", ".[test,http,web]", *requirements)


def _versions(session: nox.Session) -> str:
    script = (
        "import sys, celery, kombu, amqp; "
        "print(f'py{sys.version_info[0]}.{sys.version_info[1]} celery {celery.__version__} "
        "kombu {kombu.__version__} amqp {amqp.__version__}')"
    )
    return str(session.run("python", "-c", script, silent=True)).strip()


def _pytest(session: nox.Session, kind: str, *args: str) -> None:
    """Run pytest, then print and record one line: versions, counts, seconds."""
    started = time.monotonic()
    versions = _versions(session)
    report = Path(session.create_tmp()) / "junit.xml"
    try:
        session.run("python", "-m", "pytest", "-p", "no:cacheprovider", f"--junitxml={report}", *args, *session.posargs)
    finally:
        line = f"matrix: {kind} {versions}: {_counts(report)} in {time.monotonic() - started:.0f} s"
        session.log(line)
        SUMMARY.parent.mkdir(exist_ok=True)
        with SUMMARY.open("a") as summary:
            summary.write(line + "\n")


def _counts(report: Path) -> str:
    if not report.exists():
        return "no test report"
    suite = ET.parse(report).getroot()
    suite = suite if suite.tag == "testsuite" else suite.find("testsuite")  # type: ignore[assignment]
    if suite is None:
        return "no test report"
    tests, skipped = int(suite.get("tests", 0)), int(suite.get("skipped", 0))
    failed = int(suite.get("failures", 0)) + int(suite.get("errors", 0))
    return f"{tests - skipped - failed} passed, {failed} failed, {skipped} skipped"


@nox.session(python=PYTHONS)
def unit(session: nox.Session) -> None:
    """tests/unit on this Python with the newest Celery pip resolves."""
    _install(session)
    _pytest(session, "unit", "tests/unit")


@nox.session
@nox.parametrize(
    ("python", "minor"), [(python, minor) for minor, (_, python, _) in OLDER_CELERY.items()], ids=list(OLDER_CELERY)
)
def compat(session: nox.Session, minor: str) -> None:
    """The tests marked ``compat`` (Celery-facing unit tests and the integration subset) on the
    latest patch of an older Celery minor."""
    release, _, pins = OLDER_CELERY[minor]
    _install(session, f"celery=={release}", *pins)
    _pytest(session, f"compat-{minor}", "tests/unit", "tests/integration", "-m", "compat")


@nox.session(python=MAKE_TEST_PYTHON)
def integration(session: nox.Session) -> None:
    """The whole suite on the newest Celery, as ``make test`` runs it."""
    _install(session)
    _pytest(session, "integration", "tests")
