"""The installed distribution says what it is: typed, Python >= 3.10, the right dependencies."""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
import zipfile
from importlib import metadata
from pathlib import Path

import pytest

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


ROOT = Path(__file__).resolve().parents[2]
LUA = {
    "celery_dlx/redisio/lua/clock.lua",
    "celery_dlx/redisio/lua/once_acquire.lua",
    "celery_dlx/ratelimit/lua/acquire.lua",
    "celery_dlx/breaker/lua/admit.lua",
    "celery_dlx/pagination/lua/observe.lua",
}
#: The dashboard's templates (a sample: the wheel without them serves nothing).
TEMPLATES = {"celery_dlx/web/templates/base.html", "celery_dlx/web/templates/parked.html"}


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Wheel and sdist built from this checkout (no isolation: setuptools and wheel come with
    the test extra, so no download is needed)."""
    out = tmp_path_factory.mktemp("dist")
    subprocess.run(
        [sys.executable, "-m", "build", "--no-isolation", "--wheel", "--sdist", "--outdir", str(out), str(ROOT)],
        check=True, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    return out


def test_the_wheel_and_the_sdist_carry_lua_and_py_typed(built: Path) -> None:
    (wheel,) = built.glob("*.whl")
    (sdist,) = built.glob("*.tar.gz")
    in_wheel = set(zipfile.ZipFile(wheel).namelist())
    assert {*LUA, *TEMPLATES, "celery_dlx/py.typed"} <= in_wheel
    assert not any(name.startswith("tests/") for name in in_wheel)
    with tarfile.open(sdist) as archive:
        in_sdist = {name.split("/", 1)[1] for name in archive.getnames() if "/" in name}
    assert {*LUA, *TEMPLATES, "celery_dlx/py.typed", "pyproject.toml"} <= in_sdist


def test_the_installed_wheel_imports_and_runs_the_cli(built: Path, tmp_path: Path) -> None:
    """A fresh venv with the wheel alone (its dependencies are this environment's, on the path
    by a .pth line, so nothing is downloaded): the package is the wheel's, and ``celery dlx``
    is found through the wheel's entry point."""
    (wheel,) = built.glob("*.whl")
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    site = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True, capture_output=True, text=True,
    ).stdout.strip()  # fmt: skip
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(site)
    dependencies = [p for p in sys.path if p.endswith("site-packages")]
    (Path(site) / "dependencies.pth").write_text("\n".join(dependencies) + "\n")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}  # only the venv decides what is imported
    found = subprocess.run(
        [str(python), "-c", "import celery_dlx, celery_dlx.broker.plan as p; print(celery_dlx.__file__); print(p.DelayLevels().levels)"],
        check=True, capture_output=True, text=True, cwd=tmp_path, env=env,
    ).stdout.split()  # fmt: skip
    assert found[0].startswith(site) and found[1] == "28"
    cli = subprocess.run(
        [str(python), "-m", "celery", "dlx", "--help"], capture_output=True, text=True, cwd=tmp_path, timeout=120, env=env
    )
    assert cli.returncode == 0, cli.stderr
    for verb in ("declare", "verify", "status", "parked", "replay", "purge", "send", "serve"):
        assert verb in cli.stdout
