"""Live progress of a run, sampled once a second: one line on the terminal, a row for the chart.

What it shows is read from where it lives, not from the app's own bookkeeping: retries waiting
in each delay queue and tasks in the parking queue from the broker (passive declares), worker
memory from /proc, refusals from the simulator's counters, followers from the app's Redis sets.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

import redis

from .app import Config
from .deployment import Deployment
from .roster import Account
from .simulator import CALLS, IP_LIMITED, TOKEN_LIMITED, SocialAPI

MIB = 2**20
_LEVEL = re.compile(r"\.(L\d+)$")


@dataclass(frozen=True)
class Sample:
    """The run at ``t`` seconds after the first task was sent."""

    t: float
    accounts_done: int
    synced: int
    #: Retries waiting per delay level (``"L07"``: 10 ms × 2^7), only the non-empty levels.
    waiting: dict[str, int]
    parked: int
    api_calls: int
    rate_limited: int
    rss: dict[str, int] = field(default_factory=dict)

    @property
    def retries_waiting(self) -> int:
        return sum(self.waiting.values())


class Monitor:
    """Takes :class:`Sample` s of a running deployment."""

    def __init__(self, deployment: Deployment, api: SocialAPI, store: redis.Redis, config: Config) -> None:
        self.deployment = deployment
        self.api = api
        self.store = store
        self.config = config

    def sample(self, t: float, accounts: Iterable[Account], done: int) -> Sample:
        queues = self.deployment.waiting()
        parking = self.deployment.topology.parking_queue.name
        waiting = {_level(name): ready for name, ready in queues.items() if name != parking and ready}
        stats = self.api.stats().values()
        return Sample(
            t=t,
            accounts_done=done,
            synced=self.synced(accounts),
            waiting=waiting,
            parked=queues[parking],
            api_calls=sum(counts[CALLS] for counts in stats),
            rate_limited=sum(counts[TOKEN_LIMITED] + counts[IP_LIMITED] for counts in stats),
            rss=self.deployment.rss(),
        )

    def synced(self, accounts: Iterable[Account]) -> int:
        """Distinct followers stored so far, over ``accounts``."""
        with self.store.pipeline(transaction=False) as pipe:
            for account in accounts:
                pipe.scard(self.config.key("synced", account.id))
            return sum(pipe.execute())


def _level(queue_name: str) -> str:
    match = _LEVEL.search(queue_name)
    return match.group(1) if match else queue_name


def line(sample: Sample, accounts: int, expected: int) -> str:
    """One status line: accounts done, followers, retries waiting per level, 429s, parked, RSS."""
    levels = " ".join(f"{level}:{count}" for level, count in sorted(sample.waiting.items())) or "-"
    rss = "/".join(f"{value / MIB:.0f}" for value in sample.rss.values())
    return (
        f"[{sample.t:5.1f}s] accounts {sample.accounts_done}/{accounts}  followers {sample.synced:,}/{expected:,}"
        f"  retries waiting {sample.retries_waiting} ({levels})  rate-limited {sample.rate_limited}"
        f"  parked {sample.parked}  API calls {sample.api_calls}  RSS {rss} MiB"
    )


def legend(workers: Iterable[str]) -> str:
    """What the status line's abbreviations mean."""
    return (
        "retries waiting per delay level Lk (a level holds a retry for 10 ms x 2^k); "
        f"RSS of the workers {'/'.join(workers)}"
    )
