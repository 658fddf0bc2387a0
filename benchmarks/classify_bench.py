"""Classifications per second on a mixed corpus: every recorded response in tests/fixtures/.

    python -m benchmarks.classify_bench                  # this checkout
    python -m benchmarks.classify_bench --against main   # and a git ref, side by side

The corpus is every fixture of every network (hand-written and generated), classified with
its own network's rules, in a shuffled but fixed order.  With ``--against``, the ref's
``celery_dlx`` is exported (``git archive``) to a temporary directory and both versions run in
alternating child processes on the same corpus, so machine load hits both alike; the report
is the median of the rounds and the ratio.  Pure CPU, no services.
"""

from __future__ import annotations

import argparse
import base64
import importlib.util
import json
import random
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from io import BytesIO
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures"
NOW = 1_700_000_000.0


def corpus() -> list[tuple[str, Any, Any, Any]]:
    """``(network, status, headers, body)`` of every fixture, shuffled with a fixed seed."""
    items = []
    for path in sorted(FIXTURES.glob("*/*.json")):
        fixture = json.loads(path.read_text(encoding="utf-8"))
        body = base64.b64decode(fixture["body_base64"]) if "body_base64" in fixture else fixture.get("body")
        items.append((path.parent.name, fixture["status"], fixture["headers"], body))
    random.Random(22).shuffle(items)
    return items


def _load_package(code_dir: Path) -> None:
    """Import ``celery_dlx`` from ``code_dir`` (an editable install's finder would otherwise win)."""
    init = code_dir / "celery_dlx" / "__init__.py"
    spec = importlib.util.spec_from_file_location("celery_dlx", init, submodule_search_locations=[str(init.parent)])
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["celery_dlx"] = module
    spec.loader.exec_module(module)


def measure(seconds: float, code_dir: Path) -> dict[str, Any]:
    """Classify the corpus over and over for about ``seconds``; classifications per second."""
    _load_package(code_dir)
    from celery_dlx.classify import classify

    items = corpus()
    for network, status, headers, body in items:  # warm-up: imports, regex compilation
        classify(network, status, headers, body, now=NOW)
    done, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        for network, status, headers, body in items:
            classify(network, status, headers, body, now=NOW)
        done += len(items)
    elapsed = time.perf_counter() - started
    import celery_dlx

    return {"per_s": done / elapsed, "corpus": len(items), "code": str(Path(celery_dlx.__file__).parent)}


def _child(code_dir: Path, seconds: float) -> dict[str, Any]:
    command = [sys.executable, "-m", "benchmarks.classify_bench", "--child", str(code_dir), "--seconds", str(seconds)]
    out = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=True).stdout
    return dict(json.loads(out))


def _export(ref: str, into: Path) -> Path:
    """``celery_dlx`` of git ``ref``, unpacked under ``into``."""
    archive = subprocess.run(["git", "archive", ref, "celery_dlx"], cwd=ROOT, capture_output=True, check=True).stdout
    with tarfile.open(fileobj=BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")
    return into


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--against", help="a git ref to compare with (its celery_dlx, this corpus)")
    parser.add_argument("--rounds", type=int, default=5, help="alternating rounds per version")
    parser.add_argument("--seconds", type=float, default=2.0, help="measuring time per round")
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(args.seconds, args.child)))
        return 0
    with tempfile.TemporaryDirectory(prefix="classify_bench.") as tmp:
        versions = {"this checkout": ROOT}
        if args.against:
            versions = {args.against: _export(args.against, Path(tmp)), **versions}
        rates: dict[str, list[float]] = {name: [] for name in versions}
        size = 0
        for _ in range(args.rounds):
            for name, code_dir in versions.items():
                result = _child(code_dir, args.seconds)
                rates[name].append(result["per_s"])
                size = result["corpus"]
                if not result["code"].startswith(str(code_dir)):
                    raise SystemExit(f"{name}: imported celery_dlx from {result['code']}, not {code_dir}")
    print(f"corpus: {size} responses (tests/fixtures, all networks); {args.rounds} rounds of {args.seconds:g} s")
    for name, values in rates.items():
        print(f"{name:>14}: {statistics.median(values):>9,.0f} classifications/s (median; min {min(values):,.0f}, max {max(values):,.0f})")
    if args.against:
        ratio = statistics.median(rates["this checkout"]) / statistics.median(rates[args.against])
        print(f"this checkout / {args.against}: {ratio:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
