"""Celery countdown vs native delayed delivery vs celery_dlx: memory, throughput, lateness, timeouts.

Run: ``python -m benchmarks.run`` (full) or ``python -m benchmarks.run --quick`` (smoke, < 2 min),
with RabbitMQ and Redis on 127.0.0.1 (rabbitmqctl on PATH, or DLX_RABBITMQCTL set) and the
RabbitMQ server installed locally for the throwaway node of section 5.  The full mode writes
``benchmarks/results/benchmark.md`` and ``benchmark.png``; ``--quick`` writes to
``benchmarks/results/raw/quick/`` unless ``--out`` says otherwise; raw JSON and worker logs go to
``<out>/raw/`` (git-ignored under benchmarks/results/).

Measured runtime on the 2-core development machine (RabbitMQ 3.10.8, shared with other test runs):
full mode 32.5 min (1 950 s), quick mode 1.5 min (89 s); each results file states its own run's.
Sections can be left out with ``--skip`` and contenders chosen with ``--contenders``.

Contenders, each a real ``celery worker`` subprocess running :mod:`benchmarks.bench_app`:

- ``countdown``: Celery's ``self.retry(countdown=…)``; the worker holds the retry unacked;
- ``native``: the same call with Celery's native delayed delivery (quorum work queue, topic
  exchange, ``celery_delayed_*`` quorum queues declared by the worker's bootstep);
- ``dlx_classic`` / ``dlx_quorum``: :class:`celery_dlx.DLXTask` with classic / quorum delay queues.

Sections (numbers as in the results table):

1. worker RSS/USS (prefork, parent + children) and broker-side unacked while pending retries
   grow to 1 000, 10 000, 100 000 (delay 1 h, nothing comes due); measured after a warm-up
   (sections 3 and 4 run first on the same worker: a prefork child grows ~70 MB in its first
   ~1 000 retries whatever the retry mechanism, then stays flat).  Each step has a time cap;
   a contender that misses it is reported with what it absorbed and skips the larger steps;
2. time to absorb N failing tasks that each schedule one retry, prefork -c 2 and solo;
3. retry publish throughput: tasks that retry at once (10 ms; native: 1 s, its minimum),
   Celery countdown also with ``confirm_publish`` on;
4. delivery lateness (arrival - due) of retries with random delays, sent at a pace the worker
   keeps up with (the sender waits while the work queue has a backlog);
5. a 45-minute retry on a throwaway broker with ``consumer_timeout`` lowered (60 s; quick: 10 s):
   channel closures, redeliveries and unacked, from the node log, the worker log and rabbitmqctl;
6. broker memory per pending message in classic and quorum delay queues (``list_queues memory``);
7. a plain no-op task's throughput with 0 and with 1 000 000 celery_dlx retries pending.  The
   million are published straight into the classic delay topology with kombu (a real retry
   message, routed like one, 1 h delay), not through the worker.

Everything a run creates is removed at the end, also on Ctrl-C or an error: it works in a
virtual host of its own (``dlxbench-<random>``, deleted with all its queues, exchanges and
messages; native delayed delivery's global ``celery_delayed_*`` names stay out of the shared
``/``), stops its workers, deletes its Redis keys and destroys the throwaway node.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
import time
import uuid
from dataclasses import asdict
from pathlib import Path
from typing import Any

import redis

from . import harness
from .bench_app import CONTENDERS, REDIS_URL
from .harness import (
    LABELS,
    RESULTS,
    Cleanup,
    Deployment,
    Progress,
    full_mode,
    in_parallel,
    quick_mode,
    rabbitmqctl,
    start_all,
    unacked,
)
from .report import plot, report
from .sections.growth import absorb, section_growth
from .sections.lateness import section_lateness
from .sections.million import section_million
from .sections.publish import section_publish_rounds
from .sections.timeout import section_timeout

# --------------------------------------------------------------------------------------------


def create_vhost() -> str:
    vhost = f"dlxbench-{uuid.uuid4().hex[:8]}"
    rabbitmqctl("add_vhost", vhost)
    rabbitmqctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
    return vhost


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smoke mode, < 2 min")
    parser.add_argument("--out", type=Path, help="output directory (default: benchmarks/results; --quick: benchmarks/results/raw/quick)")
    parser.add_argument("--contenders", default=",".join(CONTENDERS), help="comma-separated subset of " + ",".join(CONTENDERS))
    parser.add_argument("--skip", default="", help="comma-separated sections to skip: publish,lateness,growth,solo,confirm,timeout,million")
    args = parser.parse_args(argv)
    mode = quick_mode() if args.quick else full_mode()
    out: Path = args.out or (RESULTS / "raw" / "quick" if args.quick else RESULTS)
    rawdir = out / "raw"
    rawdir.mkdir(parents=True, exist_ok=True)
    contenders = [x for x in args.contenders.split(",") if x]
    unknown = set(contenders) - set(CONTENDERS)
    if unknown:
        parser.error(f"unknown contenders {sorted(unknown)}")
    skip = set(args.skip.split(","))
    store = redis.Redis.from_url(REDIS_URL)
    cleanup = Cleanup()
    progress = Progress(3 + 2 * len(contenders) + ("million" not in skip) + ("timeout" not in skip))

    def on_term(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    import celery
    import kombu

    data: dict[str, Any] = {
        "mode": asdict(mode), "contenders": {name: {} for name in contenders}, "solo_n": mode.solo_n,
        "command": "python -m benchmarks.run" + (" --quick" if args.quick else "") + (f" --contenders {args.contenders}" if args.contenders != ",".join(CONTENDERS) else "") + (f" --skip {args.skip}" if args.skip else ""),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "rabbitmq": rabbitmqctl("version").strip(), "celery": celery.__version__, "kombu": kombu.__version__,
    }  # fmt: skip
    t0 = time.monotonic()
    harness.VHOST = create_vhost()  # every broker URL and rabbitmqctl call of the run uses it
    cleanup.push("vhost", lambda: rabbitmqctl("delete_vhost", harness.VHOST))
    data["vhost"] = harness.VHOST
    timeout_thread = None
    timeout_result: dict[str, Any] = {}
    timeout_stop = threading.Event()
    try:
        if "timeout" not in skip:
            # Mostly waiting on its own throwaway node: runs beside the other sections.
            def run_timeout() -> None:
                try:
                    timeout_result.update(section_timeout(store, cleanup, rawdir, mode, timeout_stop))
                except Exception as error:
                    timeout_result["error"] = repr(error)

            timeout_thread = threading.Thread(target=run_timeout, daemon=True)
            timeout_thread.start()

        progress.start("starting one prefork worker per contender")
        deps = {name: Deployment(name, store, cleanup, rawdir) for name in contenders}
        if "confirm" not in skip and "countdown" in contenders:
            deps["countdown_confirm"] = Deployment("countdown", store, cleanup, rawdir, confirm=True)
        start_all(list(deps.values()))
        progress.finish()

        progress.start("retry publish throughput, interleaved rounds (3)")
        publish = section_publish_rounds(deps, mode, progress) if "publish" not in skip else {}
        for name, result in publish.items():
            if name == "countdown_confirm":
                data["countdown_confirm"] = result
            else:
                data["contenders"][name]["publish"] = result
        if "countdown_confirm" in deps:
            cleanup.pop(deps.pop("countdown_confirm").prefix)
        progress.finish()

        for name, dep in deps.items() if "lateness" not in skip else ():
            progress.start(f"{LABELS[name]}: delivery lateness (4)")
            status: dict[str, str] = {}
            data["contenders"][name]["lateness"] = in_parallel(
                {name: lambda d=dep, st=status: section_lateness(d, mode, st)},
                lambda st=status, n=name: progress.show(st.get(n, "")),
            )[name]
            progress.finish()

        for name, dep in deps.items() if "growth" not in skip else ():
            progress.start(f"{LABELS[name]}: memory and unacked vs pending retries (1, 2)")
            data["contenders"][name]["growth"] = section_growth(dep, mode, progress)
            cleanup.pop(dep.prefix)  # stop it: the others' figures should not share the machine with it
            progress.finish()

        if "solo" not in skip:
            progress.start(f"solo pool: {mode.solo_n:,} failing tasks per contender, one at a time (2)")
            solo = {name: Deployment(name, store, cleanup, rawdir, pool="solo", concurrency=1) for name in contenders}
            start_all(list(solo.values()))
            for name, dep in solo.items():
                finished, seconds, reached = absorb(
                    dep, dep.key(), mode.solo_n, mode.solo_n, mode.solo_cap, lambda d, n=name: progress.show(f"{LABELS[n]}: {d}")
                )
                data["contenders"][name]["solo"] = {"n": mode.solo_n, "finished": finished, "seconds": seconds,
                                                    "reached": reached, "cap": mode.solo_cap, "unacked": unacked(dep.prefix)}  # fmt: skip
                cleanup.pop(dep.prefix)
            progress.finish()

        if "million" not in skip:
            progress.start(f"no-op throughput with {mode.million:,} celery_dlx retries pending (6, 7)")
            data["million"] = section_million(store, cleanup, rawdir, mode, progress)
            progress.finish()

        if timeout_thread is not None:
            progress.start(f"consumer_timeout {mode.timeout_ms // 1000} s on a throwaway node (5)")
            while timeout_thread.is_alive():
                progress.show("waiting for the observation to end")
                timeout_thread.join(1)
            data["timeout"] = timeout_result
            progress.finish()
    except KeyboardInterrupt:
        print("\ninterrupted: cleaning up", file=sys.stderr)
        raise
    finally:
        timeout_stop.set()
        if timeout_thread is not None:
            timeout_thread.join(30)  # let it stop using its node before the node is destroyed
        cleanup.run_all()
    data["runtime_s"] = time.monotonic() - t0
    (rawdir / f"results-{mode.name}.json").write_text(json.dumps(data, indent=1))
    png = out / "benchmark.png"
    md = out / "benchmark.md"
    plot(data, png)
    text = report(data, png)
    md.write_text(text)
    print("\n" + text)
    print(f"wrote {md} and {png} in {data['runtime_s']:.0f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
