"""A Redis master dies under a rate-limit hammer (in a Redis Cluster, and under Sentinel): what
the limiter does, and by how much it may over-admit.

Several threads (each with its own client, as workers have) acquire as fast as they can
against one tight limit whose keys live on one master; that master is SIGKILLed, its replica
is promoted after ``cluster-node-timeout`` / ``down-after-milliseconds`` (1 s here).
Expected, and asserted:

- no exception reaches the caller and nothing loops: while the slot has no master, calls come
  back degraded (:class:`~celery_dlx.ratelimit.StorageUnavailable` → ``on_unavailable="deny"``),
  each within the client's timeouts;
- the limiter recovers by itself once the replica is master (admissions resume);
- over-admission is bounded: replication is asynchronous, so the promoted replica may lack the
  admissions of the last moments before the kill and admit the same quota again.  What it
  forgets was admitted under the limit, and what it admits again is under the limit, so no
  window of the period holds more than twice the limit.  With a replica in sync (the usual
  case on a fast network) nothing is forgotten; with a replica that had stopped replicating
  before the window filled, the bound is reached.  The measured numbers are printed (``-s``)
  and quoted in docs/ratelimit.md.
"""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import NamedTuple

import pytest

from celery_dlx.ratelimit import Limit, Limiter, Rate, RedisStorage
from celery_dlx.redisio.keys import tagged_prefix
from celery_dlx.testing.redis_cluster import LocalCluster
from celery_dlx.testing.redis_sentinel import LocalSentinel

from ..support import missing

pytestmark = pytest.mark.integration

#: Ports of these tests' own servers (the session's run on 7100-7105, 7150-7151 and 26379-26381).
FIRST_PORT = 7110
SENTINEL_DATA_PORT, SENTINEL_PORT = 7160, 26389
RATE = Rate.parse("20/0.5 seconds")
#: A window longer than the failover: what a forgetful replica costs shows within it.
LONG_RATE = Rate.parse("20/10 seconds")
THREADS = 4
#: Hammer this long before the kill, and this long after the limiter has recovered.
BEFORE, AFTER = 2.0, 2.0
#: With a paused replica: long enough to fill the window, short enough for the replica to stay
#: eligible for promotion (its data may be 10 node timeouts old).
STALE_BEFORE = 0.5
#: The failover must be over by then (node timeout 1 s, election, the client's rediscovery).
RECOVERY_LIMIT = 20.0


class Event(NamedTuple):
    started: float  # time.monotonic() when the call was made
    when: float  # time.monotonic() when its decision came back
    allowed: bool
    degraded: bool
    at_us: int  # Redis's time of the decision (the limiter's own clock when degraded)


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[LocalCluster]:
    if shutil.which("redis-server") is None or shutil.which("redis-cli") is None:
        missing("redis-server and redis-cli are not installed", "the Redis Cluster tests")
    with LocalCluster(FIRST_PORT, tmp_path / "failover", node_timeout_ms=1000) as running:
        yield running


@pytest.fixture
def sentinel(tmp_path: Path) -> Iterator[LocalSentinel]:
    if shutil.which("redis-server") is None:
        missing("redis-server is not installed", "the Redis Sentinel tests")
    with LocalSentinel(SENTINEL_DATA_PORT, SENTINEL_PORT, tmp_path / "failover", down_after_ms=1000) as running:
        yield running


def hammer(
    url: str, rate: Rate, prefix: str, stop: threading.Event, events: list[Event], errors: list[BaseException]
) -> None:
    limiter = Limiter(
        RedisStorage.from_url(url, timeout=0.25), [Limit("app", rate)], prefix=prefix, unavailable_wait=0.05
    )
    while not stop.is_set():
        started = time.monotonic()
        try:
            decision = limiter.acquire()
        except BaseException as exc:  # recorded, so the test can show that nothing escaped
            errors.append(exc)
            return
        events.append(Event(started, time.monotonic(), decision.allowed, decision.degraded, decision.at_us))
        if decision.degraded:
            time.sleep(decision.wait)  # a worker would defer the task by unavailable_wait


def busiest_window(times_us: list[int], period_us: int) -> int:
    times = sorted(times_us)
    most, first = 0, 0
    for last, t in enumerate(times):
        while times[first] <= t - period_us:
            first += 1
        most = max(most, last - first + 1)
    return most


@pytest.mark.redis_cluster
def test_a_killed_master_costs_degraded_decisions_then_the_limiter_recovers_with_bounded_over_admission(
    cluster: LocalCluster,
) -> None:
    """A replica in sync: the promoted replica knows every admission (loopback replication is
    immediate), so nothing is admitted twice."""
    master = cluster.master_of(tagged_prefix("failover"))
    events, killed, recovered = failover(cluster.url, RATE, "failover", BEFORE, lambda: cluster.kill(master))
    busiest = report("cluster, replica in sync", events, killed, recovered, RATE)
    assert busiest == RATE.limit


@pytest.mark.redis_cluster
def test_a_stale_replica_forgets_at_most_one_window_so_over_admission_is_at_most_the_limit(
    cluster: LocalCluster,
) -> None:
    """The worst case: the replica stopped replicating before the window filled, so
    the promoted replica has none of its admissions and, the window being longer than the
    failover, admits the limit again within it: one window holds twice the limit, no more."""
    master = cluster.master_of(tagged_prefix("failover-stale"))
    replica = cluster.replica_of(master)
    cluster.cut_off(replica, master)

    def kill() -> None:
        cluster.kill(master)
        cluster.resume(replica)

    events, killed, recovered = failover(cluster.url, LONG_RATE, "failover-stale", STALE_BEFORE, kill)
    busiest = report("cluster, stale replica", events, killed, recovered, LONG_RATE)
    assert busiest > LONG_RATE.limit, "the promoted replica forgot the admissions it never received"


@pytest.mark.redis_sentinel
def test_a_sentinel_failover_costs_degraded_decisions_then_the_limiter_follows_the_new_master(
    sentinel: LocalSentinel,
) -> None:
    events, killed, recovered = failover(sentinel.url, RATE, "failover", BEFORE, lambda: sentinel.kill(sentinel.master()))
    busiest = report("sentinel, replica in sync", events, killed, recovered, RATE)
    assert busiest == RATE.limit


def failover(
    url: str, rate: Rate, prefix: str, hold: float, kill: Callable[[], None]
) -> tuple[list[Event], float, float]:
    """Hammer ``rate`` from THREADS threads for ``hold`` s, ``kill`` the master, and hammer on
    until AFTER s after the limiter recovered.  Returns the decisions, the kill time and the
    recovery time."""
    stop, events, errors = threading.Event(), list[Event](), list[BaseException]()
    args = (url, rate, prefix, stop, events, errors)
    threads = [threading.Thread(target=hammer, args=args) for _ in range(THREADS)]
    for thread in threads:
        thread.start()
    try:
        time.sleep(hold)
        killed = time.monotonic()
        kill()
        recovered = wait_for_recovery(events, killed)
        time.sleep(AFTER)
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=10)
    assert not errors, f"exceptions reached the caller: {errors!r}"
    return events, killed, recovered


def wait_for_recovery(events: list[Event], killed: float) -> float:
    """When the first call made after a degraded decision was decided by Redis again (a call
    made before the kill may still come back healthy after it)."""
    deadline = killed + RECOVERY_LIMIT
    while time.monotonic() < deadline:
        after = [e for e in list(events) if e.when > killed]
        first_degraded = next((e.when for e in after if e.degraded), None)
        if first_degraded is not None:
            healthy = [e.when for e in after if e.started > first_degraded and not e.degraded]
            if healthy:
                return healthy[0]
        time.sleep(0.05)
    pytest.fail(f"the limiter did not recover within {RECOVERY_LIMIT} s of the kill")


def report(name: str, events: list[Event], killed: float, recovered: float, rate: Rate) -> int:
    """Print the measurements, check the documented behaviour, return the busiest window."""
    before = [e for e in events if e.when < killed]
    during = [e for e in events if killed <= e.when < recovered]
    after = [e for e in events if e.when >= recovered]
    degraded = [e for e in events if e.degraded]
    admitted_us = [e.at_us for e in events if e.allowed and not e.degraded]
    busiest = busiest_window(admitted_us, rate.period_us)
    busiest_before = busiest_window([e.at_us for e in before if e.allowed], rate.period_us)
    print(
        f"\nfailover, {name}: {len(events)} decisions by {THREADS} threads against {rate.limit}/{rate.period_us / 1e6:g} s; "
        f"master killed, limiter recovered after {recovered - killed:.2f} s; {len(degraded)} degraded decisions "
        f"(all denials), {len(during)} decisions in the failover window; busiest window before the kill "
        f"{busiest_before}, over the whole run {busiest} (limit {rate.limit})"
    )
    assert all(not e.allowed for e in degraded), "on_unavailable='deny' admits nothing it cannot record"
    assert degraded and all(killed <= e.when for e in degraded), "degraded only after the kill"
    assert busiest_before == rate.limit, "the limit was contended before the kill"
    assert sum(e.allowed for e in after) >= rate.limit, "admissions resumed on the promoted replica"
    assert busiest <= 2 * rate.limit, f"over-admission beyond the documented bound: {busiest} in one window"
    return busiest
