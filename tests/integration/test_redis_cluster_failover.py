"""A Redis Cluster master dies under a rate-limit hammer: what the limiter does, and by how much
it may over-admit.

Several threads (each with its own client, as workers have) acquire as fast as they can
against one tight limit whose keys live on one master; that master is SIGKILLed, its replica
is promoted after ``cluster-node-timeout`` (1 s here).  Expected, and asserted:

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
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

import pytest

from celery_dlx.ratelimit import Limit, Limiter, Rate, RedisStorage
from celery_dlx.redisio.keys import tagged_prefix
from celery_dlx.testing.redis_cluster import LocalCluster

from ..support import missing

pytestmark = [pytest.mark.integration, pytest.mark.redis_cluster]

#: Ports of this test's own cluster (the session's runs on 7100-7105).
FIRST_PORT = 7110
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
    when: float  # time.monotonic()
    allowed: bool
    degraded: bool
    at_us: int  # Redis's time of the decision (the limiter's own clock when degraded)


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[LocalCluster]:
    if shutil.which("redis-server") is None or shutil.which("redis-cli") is None:
        missing("redis-server and redis-cli are not installed", "the Redis Cluster tests")
    with LocalCluster(FIRST_PORT, tmp_path / "failover", node_timeout_ms=1000) as running:
        yield running


def hammer(
    url: str, rate: Rate, prefix: str, stop: threading.Event, events: list[Event], errors: list[BaseException]
) -> None:
    limiter = Limiter(
        RedisStorage.from_url(url, timeout=0.25), [Limit("app", rate)], prefix=prefix, unavailable_wait=0.05
    )
    while not stop.is_set():
        try:
            decision = limiter.acquire()
        except BaseException as exc:  # recorded, so the test can show that nothing escaped
            errors.append(exc)
            return
        events.append(Event(time.monotonic(), decision.allowed, decision.degraded, decision.at_us))
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


def test_a_killed_master_costs_degraded_decisions_then_the_limiter_recovers_with_bounded_over_admission(
    cluster: LocalCluster,
) -> None:
    """A replica in sync: the promoted replica knows every admission (loopback replication is
    immediate), so nothing is admitted twice."""
    events, killed, recovered = failover(cluster, RATE, "failover", stale=False)
    busiest = report("replica in sync", events, killed, recovered, RATE)
    assert busiest == RATE.limit


def test_a_stale_replica_forgets_at_most_one_window_so_over_admission_is_at_most_the_limit(
    cluster: LocalCluster,
) -> None:
    """The worst case: the replica stopped replicating before the window filled, so
    the promoted replica has none of its admissions and, the window being longer than the
    failover, admits the limit again within it: one window holds twice the limit, no more."""
    events, killed, recovered = failover(cluster, LONG_RATE, "failover-stale", stale=True)
    busiest = report("stale replica", events, killed, recovered, LONG_RATE)
    assert busiest > LONG_RATE.limit, "the promoted replica forgot the admissions it never received"


def failover(cluster: LocalCluster, rate: Rate, prefix: str, *, stale: bool) -> tuple[list[Event], float, float]:
    """Hammer ``rate`` from THREADS threads, kill the master of the limiter's slot (its replica
    paused from before the first call when ``stale``), and hammer on until AFTER s after the
    limiter recovered.  Returns the decisions, the kill time and the recovery time."""
    master = cluster.master_of(tagged_prefix(prefix))
    replica = cluster.replica_of(master)
    if stale:
        cluster.cut_off(replica, master)
    stop, events, errors = threading.Event(), list[Event](), list[BaseException]()
    args = (cluster.url, rate, prefix, stop, events, errors)
    threads = [threading.Thread(target=hammer, args=args) for _ in range(THREADS)]
    for thread in threads:
        thread.start()
    try:
        time.sleep(STALE_BEFORE if stale else BEFORE)
        killed = time.monotonic()
        cluster.kill(master)
        if stale:
            cluster.resume(replica)
        recovered = wait_for_recovery(events, killed)
        time.sleep(AFTER)
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=10)
    assert not errors, f"exceptions reached the caller: {errors!r}"
    return events, killed, recovered


def wait_for_recovery(events: list[Event], killed: float) -> float:
    """The time of the first admission decided by Redis after the kill and after a degraded one."""
    deadline = killed + RECOVERY_LIMIT
    while time.monotonic() < deadline:
        after = [e for e in list(events) if e.when > killed]
        first_degraded = next((e.when for e in after if e.degraded), None)
        if first_degraded is not None:
            healthy = [e.when for e in after if e.when > first_degraded and not e.degraded]
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
