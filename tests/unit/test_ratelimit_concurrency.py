"""Several processes hammering the same limits through real Redis.

Each process is a separate client, as workers are.  Every admission is timed by Redis itself
(``Decision.at``, the ``TIME`` inside the atomic script), and no window of the period, wherever
it starts, may hold more admissions than the limit.
"""

from __future__ import annotations

import multiprocessing
import threading
import time
from collections.abc import Sequence
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Barrier

import pytest

from celery_dlx.ratelimit import Limit, Limiter, MemoryStorage, Rate, RedisStorage

from .ratelimit_support import redis_client, redis_prefix  # noqa: F401  (fixtures)

APP = Rate.parse("20/0.5 seconds")
TOKEN = Rate.parse("12/0.5 seconds")  # two tokens could take 24: the app limit binds
PROCESSES = 6
TOKENS = ("t0", "t1")
DURATION = 2.0


def hammer(url: str, prefix: str, token: str, ready: Barrier, out: Queue) -> None:  # type: ignore[type-arg]
    """Runs in a child process: once every process is connected, ask as fast as possible for
    DURATION s; put its token, the admission times and the number of asks on ``out``."""
    limiter = Limiter(
        RedisStorage.from_url(url, timeout=2.0),
        [Limit("app", APP), Limit("token", TOKEN, by=("token",))],
        prefix=prefix,
    )
    ready.wait(timeout=60)  # every process is up: a slow spawn cannot miss the contended run
    start = time.time()
    admitted, attempts = [], 0
    while time.time() < start + DURATION:
        decision = limiter.acquire(token=token)
        attempts += 1
        if decision.allowed:
            admitted.append(decision.at_us)
    out.put((token, admitted, attempts))


def reserver(url: str, prefix: str, token: str, ready: Barrier, out: Queue) -> None:  # type: ignore[type-arg]
    """Runs in a child process: as :func:`hammer`, but each denied call reserves a slot, sleeps
    until it and claims it; puts its token, the admission times and how many claims failed."""
    limiter = Limiter(
        RedisStorage.from_url(url, timeout=2.0),
        [Limit("app", APP), Limit("token", TOKEN, by=("token",))],
        prefix=prefix,
    )
    ready.wait(timeout=60)
    out.put((token, *reserve_and_claim(limiter, token)))


def reserve_and_claim(limiter: Limiter, token: str) -> tuple[list[int], int]:
    """Call for DURATION s, each denied call waiting for its reservation (the Redis clock decides
    it); the admission times (Redis's) and the claims that did not run."""
    start = time.time()
    admitted, failed, claim = [], 0, None
    while time.time() < start + DURATION:
        decision = limiter.reserve(claim=claim, token=token)
        failed += claim is not None and not decision.allowed
        claim = None
        if decision.allowed:
            admitted.append(decision.at_us)
        else:
            claim = decision.reservation
            time.sleep(decision.wait)
    return admitted, failed


def busiest_window(times_us: Sequence[int], period_us: int) -> int:
    """The most admissions in any window ``[t, t + period)``."""
    times = sorted(times_us)
    most, first = 0, 0
    for last, t in enumerate(times):
        while times[first] <= t - period_us:
            first += 1
        most = max(most, last - first + 1)
    return most


@pytest.mark.integration
def test_several_processes_never_exceed_any_limit_in_any_window(redis_url: str, redis_prefix: str) -> None:  # noqa: F811
    tokens = [TOKENS[n % len(TOKENS)] for n in range(PROCESSES)]
    context = multiprocessing.get_context("spawn")
    ready, out = context.Barrier(PROCESSES), context.Queue()
    processes = [context.Process(target=hammer, args=(redis_url, redis_prefix, token, ready, out)) for token in tokens]
    for process in processes:
        process.start()
    results = [out.get(timeout=120) for _ in processes]
    for process in processes:
        process.join(timeout=30)
    every = [t for _, admitted, _ in results for t in admitted]
    attempts = sum(n for _, _, n in results)
    assert busiest_window(every, APP.period_us) == APP.limit
    for token in TOKENS:
        of_token = [t for mine, admitted, _ in results if mine == token for t in admitted]
        assert busiest_window(of_token, TOKEN.period_us) <= TOKEN.limit
    # The limits were really contended: far more asks than admissions, and the app limit full.
    assert attempts > 10 * len(every)
    assert len(every) >= 3 * APP.limit


def test_busiest_window_counts_half_open_windows() -> None:
    assert busiest_window([0, 10, 20, 30], 30) == 3
    assert busiest_window([0, 10, 20, 30], 31) == 4
    assert busiest_window([], 10) == 0


@pytest.mark.integration
def test_reservations_from_several_processes_never_exceed_any_limit_and_run_on_their_slots(
    redis_url: str, redis_prefix: str  # noqa: F811
) -> None:
    tokens = [TOKENS[n % len(TOKENS)] for n in range(PROCESSES)]
    context = multiprocessing.get_context("spawn")
    ready, out = context.Barrier(PROCESSES), context.Queue()
    processes = [context.Process(target=reserver, args=(redis_url, redis_prefix, token, ready, out)) for token in tokens]
    for process in processes:
        process.start()
    results = [out.get(timeout=120) for _ in processes]
    for process in processes:
        process.join(timeout=30)
    every = [t for _, admitted, _ in results for t in admitted]
    assert busiest_window(every, APP.period_us) <= APP.limit
    for token in TOKENS:
        of_token = [t for mine, admitted, _ in results if mine == token for t in admitted]
        assert busiest_window(of_token, TOKEN.period_us) <= TOKEN.limit
    # Each process runs about one call a slot: the app limit is kept busy, and claims are
    # rarely late (a sleep that overslept the grace on a busy machine).
    assert len(every) >= 2 * APP.limit
    assert sum(failed for _, _, failed in results) <= len(every) // 10


def test_reservations_from_threads_on_memory_storage_never_exceed_any_limit() -> None:
    limiter = Limiter(MemoryStorage(), [Limit("app", APP), Limit("token", TOKEN, by=("token",))])
    results: list[tuple[str, list[int], int]] = []
    threads = [
        threading.Thread(target=lambda token=token: results.append((token, *reserve_and_claim(limiter, token))))
        for token in [TOKENS[n % len(TOKENS)] for n in range(PROCESSES)]
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    every = [t for _, admitted, _ in results for t in admitted]
    assert busiest_window(every, APP.period_us) <= APP.limit
    for token in TOKENS:
        assert busiest_window([t for mine, admitted, _ in results if mine == token for t in admitted], TOKEN.period_us) <= TOKEN.limit
    assert len(every) >= 2 * APP.limit
