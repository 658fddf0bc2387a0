"""The end of a run: check what arrived against what must have, and print the summary.

Exactly-once is checked per account against the roster's follower ids: the Redis set of
stored ids must equal the expected set (nothing missing, nothing foreign), and the count of
processed ids must equal the set's size (nothing processed twice).  Dead-token accounts are
expected in the parking queue, not synced; the parked messages are read (and removed) to see
which accounts they are.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import redis
from kombu import Connection

from .app import Config
from .roster import NETWORKS, Account
from .simulator import AUTH_INVALID, CALLS, IP_LIMITED, OUTAGE, SERVER_ERROR, SLOW, TOKEN_LIMITED

#: Header in which celery_dlx's parking lot records why a task was parked.
REASON_HEADER = "dlx_parked_reason"


@dataclass(frozen=True)
class Synced:
    """What arrived for one account whose token works."""

    account: Account
    stored: int
    missing: int
    unexpected: int
    duplicates: int

    @property
    def exact(self) -> bool:
        return not (self.missing or self.unexpected or self.duplicates)


@dataclass(frozen=True)
class Parked:
    """One message of the parking queue: the account its task was for, and why it was parked."""

    account_id: str | None
    reason: str


def check_synced(store: redis.Redis, config: Config, accounts: Iterable[Account]) -> list[Synced]:
    """Compare each account's stored followers with its roster."""
    processed = {name: int(count) for name, count in store.hgetall(config.key("processed")).items()}
    results = []
    for account in accounts:
        stored = {int(i) for i in store.smembers(config.key("synced", account.id))}
        expected = set(account.follower_ids())
        results.append(
            Synced(
                account,
                stored=len(stored),
                missing=len(expected - stored),
                unexpected=len(stored - expected),
                duplicates=processed.get(account.id, 0) - len(stored),
            )
        )
    return results


def drain_parking(broker_url: str, queue: str) -> list[Parked]:
    """Take every message out of the parking queue; the account is the task's first argument."""
    parked = []
    with Connection(broker_url) as conn:
        channel = conn.channel()
        while (message := channel.basic_get(queue, no_ack=True)) is not None:
            reason = (message.headers or {}).get(REASON_HEADER, "?")
            parked.append(Parked(_first_argument(message.body), str(reason)))
        channel.close()
    return parked


def _first_argument(body: bytes) -> str | None:
    """The first positional argument of a JSON Celery message (protocol 2: ``[args, kwargs, embed]``)."""
    try:
        args = json.loads(body)[0]
        return str(args[0]) if args else None
    except (ValueError, TypeError, IndexError, KeyError):
        return None


@dataclass(frozen=True)
class Outcome:
    """Everything the summary reports."""

    synced: Sequence[Synced]
    dead: Sequence[Account]
    parked: Sequence[Parked]
    api: Mapping[str, Counter[str]]
    retries: Mapping[str, int]
    halts: Counter[str]
    #: Why the run stopped before every account was done; None when it did not.
    unfinished: str | None
    sync_seconds: float
    wall_seconds: float
    marked_bad: int = 0
    #: Accounts whose expired token the simulator issued, and those on_token_expired refreshed.
    expired: Sequence[str] = ()
    refreshed: Sequence[str] = ()
    notes: list[str] = field(default_factory=list)
    #: False when ``--metrics-port`` was given and celery_dlx's counters differ from the demo's totals.
    metrics_agree: bool = True

    @property
    def stored(self) -> int:
        return sum(s.stored for s in self.synced)

    @property
    def expected(self) -> int:
        return sum(s.account.followers for s in self.synced)

    @property
    def exact(self) -> bool:
        return all(s.exact for s in self.synced)

    @property
    def dead_parked(self) -> list[Account]:
        parked = {p.account_id for p in self.parked}
        return [account for account in self.dead if account.id in parked]

    @property
    def ok(self) -> bool:
        refreshed = set(self.refreshed) == set(self.expired)
        exact = self.unfinished is None and self.exact and len(self.dead_parked) == len(self.dead)
        return exact and refreshed and self.metrics_agree


def summary(outcome: Outcome) -> list[str]:
    """The summary: a table per network, then the checks the exit code depends on."""
    header = (
        f"{'network':<9} {'accounts':>8} {'synced':>9} {'expected':>9} {'missing':>7} {'dupes':>5} "
        f"{'API calls':>9} {'429s':>5} {'5xx':>4} {'slow':>4} {'outage':>6} {'dead':>4} {'parked':>6}"
    )
    lines = [header, "-" * len(header)]
    rows = [(network, [s for s in outcome.synced if s.account.network == network]) for network in NETWORKS]
    for name, synced in [*rows, ("total", list(outcome.synced))]:
        networks = NETWORKS if name == "total" else (name,)
        api = sum((outcome.api[n] for n in networks), Counter())
        dead = [a for a in outcome.dead if a.network in networks]
        parked = [a for a in outcome.dead_parked if a.network in networks]
        lines.append(
            f"{name:<9} {len(synced) + len(dead):>8} {sum(s.stored for s in synced):>9,} "
            f"{sum(s.account.followers for s in synced):>9,} {sum(s.missing for s in synced):>7} "
            f"{sum(s.duplicates for s in synced):>5} {api[CALLS]:>9,} {api[TOKEN_LIMITED] + api[IP_LIMITED]:>5} "
            f"{api[SERVER_ERROR]:>4} {api[SLOW]:>4} {api[OUTAGE]:>6} {api[AUTH_INVALID]:>4} {len(parked):>6}"
        )
    relation = "==" if outcome.exact else "!="
    missing = sum(s.missing for s in outcome.synced)
    duplicates = sum(s.duplicates for s in outcome.synced)
    unexpected = sum(s.unexpected for s in outcome.synced)
    retries = ", ".join(f"{reason} {count}" for reason, count in sorted(outcome.retries.items(), key=lambda x: -x[1]))
    lines += [
        "",
        f"synced {relation} expected: {outcome.stored:,} {relation} {outcome.expected:,} "
        f"({missing} missing, {duplicates} processed twice, {unexpected} unexpected)",
        f"dead tokens parked: {len(outcome.dead_parked)} of {len(outcome.dead)} "
        f"({', '.join(_parked(p) for p in outcome.parked) or 'parking queue empty'}); "
        f"marked bad by on_auth_invalid: {outcome.marked_bad}",
        f"expired tokens refreshed by on_token_expired: {len(outcome.refreshed)} of {len(outcome.expired)} "
        f"({', '.join(sorted(outcome.refreshed)) or 'none'}); each call retried at once without using a retry",
        f"retries through the broker: {sum(outcome.retries.values()):,} ({retries or 'none'})",
        f"pagination guards stopped {sum(outcome.halts.values())} endless chains "
        f"({', '.join(f'{reason} {count}' for reason, count in outcome.halts.items()) or 'none'})",
        f"sync time {outcome.sync_seconds:.1f} s (first task sent to last account done), "
        f"{outcome.wall_seconds:.1f} s with the start of the simulator and workers"
        + (f" (unfinished: {outcome.unfinished})" if outcome.unfinished else ""),
        *outcome.notes,
    ]
    return lines


def _parked(parked: Parked) -> str:
    return f"{parked.account_id or '?'} {parked.reason}"
