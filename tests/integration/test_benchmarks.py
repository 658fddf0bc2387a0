"""Smoke test of ``python -m benchmarks.run --quick``: end to end against the real services.

Runs the quick mode in a subprocess (real workers for every contender, the shared RabbitMQ in a
vhost of its own, Redis, a throwaway RabbitMQ node for the consumer_timeout section) and checks
that the table and the plot are written and that celery_dlx held every retry in the broker:
0 early deliveries, 0 unacked in the worker.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from ..support import BROKER_URL, address
from .conftest import require

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


def test_quick_benchmark_runs_end_to_end(tmp_path: Path) -> None:
    require("RabbitMQ", *address(BROKER_URL, 5672))
    require("Redis", "127.0.0.1", 6379)
    pytest.importorskip("matplotlib")
    pytest.importorskip("psutil")
    skip = []
    if not (Path(os.environ.get("DLX_RABBITMQ_BIN", "/usr/lib/rabbitmq/bin")) / "rabbitmq-server").exists() and not shutil.which(
        "rabbitmq-server"
    ):
        skip.append("timeout")  # no local RabbitMQ server for the throwaway node (e.g. RabbitMQ in Docker)
    command = [sys.executable, "-m", "benchmarks.run", "--quick", "--out", str(tmp_path)]
    if skip:
        command += ["--skip", ",".join(skip)]
    env = {**os.environ, "DLX_BENCH_BROKER": BROKER_URL}
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-4000:]

    table = (tmp_path / "benchmark.md").read_text()
    assert "## 1. Worker memory" in table and "## 4. Delivery lateness" in table
    png = tmp_path / "benchmark.png"
    assert png.stat().st_size > 10_000 and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    data = json.loads((tmp_path / "raw" / "results-quick.json").read_text())
    for name in ("dlx_classic", "dlx_quorum"):
        result = data["contenders"][name]
        late = result["lateness"]
        assert late["arrived"] == late["sent"] > 0, f"{name}: retries missing"
        assert sum(x < 0 for x in late["lateness_ms"]) == 0, f"{name}: early deliveries"
        steps = result["growth"]["steps"]
        assert steps and all(s["finished"] for s in steps), f"{name}: did not absorb within the quick caps: {steps}"
        assert all(s["unacked"] == 0 for s in steps), f"{name}: the worker held retries: {steps}"
        assert steps[-1]["broker_pending"] >= steps[-1]["target"]
    if "timeout" not in skip:
        assert data["timeout"]["dlx_classic"]["max_unacked"] == 0
        assert data["timeout"]["dlx_classic"]["worker_log_precondition_failed"] == 0
    # The table people read says the same: celery_dlx rows show 0 unacked and 0 early.
    sections = {part.split("\n", 1)[0].split(".")[0]: part for part in table.split("\n## ")[1:]}
    rows = {n: [line.split("|") for line in sections[n].splitlines() if line.startswith("| celery_dlx")] for n in ("1", "4")}
    assert rows["1"] and all(cells[5].strip() == "0" for cells in rows["1"]), rows["1"]
    assert rows["4"] and all(cells[10].strip() == "0" for cells in rows["4"]), rows["4"]
