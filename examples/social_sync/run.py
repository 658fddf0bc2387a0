"""``python -m examples.social_sync [--short] [--seed N] [--chart PATH] [--timeout S]``

Starts the simulator in this process and three real workers, sends one task tree per account,
prints progress once a second until every tree is done, then checks exactly-once, prints the
summary, draws the chart and deletes everything the run created (also after Ctrl-C).  Exit
code 0 only if every follower of every live account arrived exactly once and every dead-token
account was parked.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import redis

from celery_dlx import PageLedger, TreeResult, start_tree

from . import chart, metrics
from .app import Config, make_app, start_task_name
from .deployment import Deployment
from .progress import Monitor, Sample, legend, line
from .report import Outcome, check_synced, drain_parking, summary
from .roster import FULL, NETWORKS, SHORT, Account, build
from .simulator import Faults, SocialAPI

RESULTS = Path(__file__).resolve().parent / "results"


def parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m examples.social_sync", description=__doc__.split("\n\n")[1])
    parser.add_argument("--short", action="store_true", help="nine accounts and a small whale (about 20 s), for CI")
    parser.add_argument("--seed", type=int, default=7, help="seeds the roster and the simulator's failures (default 7)")
    parser.add_argument(
        "--chart", type=Path, help=f"where to write the PNG chart (default: {RESULTS}/social_sync[_short].png)"
    )
    parser.add_argument(
        "--timeout", type=float, help="give up after this many seconds of syncing (default 600, --short 120)"
    )
    parser.add_argument(
        "--metrics-port", type=int, help="serve celery_dlx's Prometheus metrics on 127.0.0.1:PORT while the demo runs, "
        "and check its counters against the demo's totals at the end (needs celery_dlx[web])",
    )  # fmt: skip
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse(argv)
    started = time.monotonic()
    shape = SHORT if args.short else FULL
    accounts = build(args.seed, shape)
    faults = Faults.seeded(args.seed, NETWORKS, within=2.0 if args.short else 40.0)
    urls = {
        name: os.environ[Config.ENV[name]] for name in ("broker_url", "redis_url") if Config.ENV[name] in os.environ
    }
    with SocialAPI(accounts, faults) as api, _interrupts_on_sigterm():
        config = Config(f"social.{uuid.uuid4().hex[:8]}", api.url, shape.whale_threshold, **urls)
        demo = Demo(args, accounts, faults, api, config, started)
        try:
            outcome = demo.sync()
        except KeyboardInterrupt:
            print("\ninterrupted: deleting what this run created", flush=True)
            return 130
        finally:
            demo.deployment.teardown(demo.task_ids)
    print("\n".join(summary(outcome)))
    return 0 if outcome.ok else 1


class Demo:
    """One run: the app and deployment for ``config``, and a task tree per account."""

    def __init__(
        self,
        args: argparse.Namespace,
        accounts: list[Account],
        faults: Faults,
        api: SocialAPI,
        config: Config,
        started: float,
    ) -> None:
        self.args = args
        self.accounts = accounts
        self.live = [account for account in accounts if not account.dead]
        self.faults = faults
        self.api = api
        self.config = config
        self.started = started
        self.app = make_app(config)
        self.store = redis.Redis.from_url(config.redis_url, decode_responses=True)
        self.deployment = Deployment(self.app, config, Path(tempfile.mkdtemp(prefix="social_sync.")))
        self.trees: dict[str, TreeResult] = {}

    @property
    def mode(self) -> str:
        return "short" if self.args.short else "full"

    def sync(self) -> Outcome:
        """Set up, sync every account, and gather what the summary reports."""
        self.introduce()
        self.store.hset(self.config.key("tokens"), mapping={account.id: account.token for account in self.accounts})
        self.deployment.declare()
        server = metrics.serve(self.app, self.args.metrics_port) if self.args.metrics_port else None
        up = time.monotonic()
        self.deployment.start_workers()
        print(f"workers up in {time.monotonic() - up:.1f} s; {legend(self.deployment.workers)}", flush=True)
        kickoff = time.monotonic()
        for account in self.accounts:
            self.trees[account.id] = start_tree(self.app.tasks[start_task_name(account.network)].s(account.id))
        samples, unfinished = self.watch(kickoff)
        sync_seconds = time.monotonic() - kickoff
        path = self.args.chart or RESULTS / f"social_sync{'_short' if self.args.short else ''}.png"
        chart.draw(samples, path, f"social-sync demo ({self.mode}, seed {self.args.seed})")
        scraped = metrics.scrape(self.app) if server is not None else None  # before the lot is drained
        parked = drain_parking(self.config.broker_url, self.deployment.topology.parking_queue.name)
        retries = {str(reason): int(count) for reason, count in self.store.hgetall(self.config.key("retries")).items()}
        notes, agree = [f"chart: {path}"], True
        if server is not None and scraped is not None:
            server.shutdown()
            lines, agree = metrics.compare(scraped, retries, len(parked))
            notes += lines
        return Outcome(
            synced=check_synced(self.store, self.config, self.live),
            dead=[account for account in self.accounts if account.dead],
            parked=parked,
            api=self.api.stats(),
            retries=retries,
            halts=Counter() if unfinished else self.halts(),
            unfinished=unfinished,
            sync_seconds=sync_seconds,
            wall_seconds=time.monotonic() - self.started,
            marked_bad=int(self.store.hlen(self.config.key("bad_tokens"))),
            expired=sorted(self.api.expired),
            refreshed=sorted(self.store.hkeys(self.config.key("refreshed"))),
            notes=notes,
            metrics_agree=agree,
        )

    def watch(self, kickoff: float) -> tuple[list[Sample], str | None]:
        """Sample once a second until every tree is done; then the samples and None, or why the
        run stopped before (a timeout, a worker that exited)."""
        timeout = self.args.timeout or (120.0 if self.args.short else 600.0)
        expected = sum(account.followers for account in self.live)
        monitor = Monitor(self.deployment, self.api, self.store, self.config)
        samples: list[Sample] = []
        pending = dict(self.trees)
        while True:
            tick = time.monotonic()
            pending = {account_id: tree for account_id, tree in pending.items() if not tree.ready()}
            sample = monitor.sample(tick - kickoff, self.live, len(self.trees) - len(pending))
            samples.append(sample)
            _show(line(sample, len(self.trees), expected))
            exited = self.deployment.exited()
            if not pending or sample.t > timeout or exited:
                _end_status()
                if exited:
                    return samples, f"worker {', '.join(exited)} exited (logs in {self.deployment.logdir})"
                return samples, f"timed out after {timeout:g} s" if pending else None
            time.sleep(max(0.0, 1.0 - (time.monotonic() - tick)))

    def halts(self) -> Counter[str]:
        """Guards that stopped a page chain, by reason, over every live account's pagination run."""
        ledger = PageLedger.for_app(self.app)
        halts: Counter[str] = Counter()
        for account in self.live:
            run = self.app.AsyncResult(self.trees[account.id].id).result["run"]
            halts.update(halt.value for halt in ledger.halts(run).values())
        return halts

    def task_ids(self) -> Iterator[str]:
        """Every task id of every tree sent so far."""
        for tree in self.trees.values():
            tree.progress()
            yield from (result.id for result in tree.results)

    def introduce(self) -> None:
        """What this run is about to do."""
        whales = [a for a in self.live if a.followers >= self.config.whale_threshold]
        outages = ", ".join(f"{o.network} at {o.start:g} s for {o.duration:g} s" for o in self.faults.outages)
        print(
            f"social-sync demo ({self.mode}, seed {self.args.seed}): {len(self.accounts)} accounts on "
            f"{', '.join(NETWORKS)}; whales {', '.join(f'{a.id} ({a.followers:,})' for a in whales)}; "
            f"dead tokens {', '.join(a.id for a in self.accounts if a.dead)}\n"
            f"expected followers {sum(a.followers for a in self.live):,} (dead-token accounts excluded); "
            f"outages {outages} (from the first API call)\n"
            f"prefix {self.config.prefix}; simulator {self.config.api_url}; worker logs {self.deployment.logdir}",
            flush=True,
        )


def _show(text: str) -> None:
    """A status line: rewritten in place on a terminal, one line each otherwise (logs, CI)."""
    if sys.stdout.isatty():
        print(f"\r{text}\033[K", end="", flush=True)
    else:
        print(text, flush=True)


def _end_status() -> None:
    """Keep the last status line on a terminal."""
    if sys.stdout.isatty():
        print(flush=True)


@contextmanager
def _interrupts_on_sigterm() -> Iterator[None]:
    """SIGTERM cleans up like Ctrl-C."""

    def interrupt(*_: Any) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
