"""Counters of what every worker did (retries, deferrals, parks, retry publish failures, planned
delays), kept in Redis so that every worker and every pool process adds to the same numbers, an
exporter restart loses nothing, and no Celery events are needed.

Recording must not slow a retry down: a Redis round trip per retry costs about as much as a
few percent of the confirmed publish itself.  So each process adds to an in-memory buffer (a
dict update under a lock, a few microseconds) and a background thread sends the buffer as one
pipelined round trip every :data:`FLUSH_INTERVAL` seconds.  The buffer is also flushed when a
Celery pool process shuts down (``worker_process_shutdown``) and at interpreter exit, so a
worker stopped normally loses nothing; a process killed hard (SIGKILL, a ``time_limit``) loses
at most its last :data:`FLUSH_INTERVAL` seconds.  While Redis does not answer the buffer is
kept and sent on a later flush.

No Redis configured (neither ``dlx_metrics_url`` nor a Redis result backend) or
``dlx_metrics=False``: nothing is recorded, and the exporter shows the broker's gauges only.

Keys (``dlx_metrics_prefix``, default ``celery_dlx:metrics:<dlx_prefix>``):

- ``{<prefix>}:counters``: a hash, field ``<counter>\\x1f<label>\\x1f…`` → count;
- ``{<prefix>}:minute:<unix minute>``: a hash per minute, ``retries`` / ``deferrals`` / ``parked``
  → count, expiring after :data:`MINUTES_KEPT` minutes (the dashboard's chart).
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import time
from collections import Counter
from collections.abc import Mapping
from typing import Any

from ..redisio.client import UNAVAILABLE, Client, configured_url, shared_client
from ..redisio.keys import tagged_prefix

logger = logging.getLogger(__name__)

#: Seconds between two flushes of a process's buffer.
FLUSH_INTERVAL = 1.0
#: Socket timeouts of the recording client: the flush runs beside the tasks, never in their way.
TIMEOUT = 2.0
#: Per-minute hashes live this many minutes.
MINUTES_KEPT = 180
#: Upper bounds (seconds) of the planned-delay histogram's buckets.
DELAY_BUCKETS = (1.0, 5.0, 15.0, 30.0, 60.0, 300.0, 900.0, 1800.0, 3600.0, 4 * 3600.0, 86400.0, float("inf"))
#: Separates a counter's name from its label values in a hash field.
SEP = "\x1f"

# Counter names (hash fields start with them) and what their labels are.
RETRIES = "retries"  # task, reason
DEFERRALS = "deferrals"  # task, by, name
PARKED = "parked"  # task, reason
PUBLISH_FAILURES = "publish_failures"  # task
DELAY_BUCKET = "delay_bucket"  # kind, le
DELAY_SUM = "delay_sum"  # kind
DELAY_COUNT = "delay_count"  # kind
#: Series of the per-minute hashes.
PER_MINUTE = (RETRIES, DEFERRALS, PARKED)


def metrics_prefix(conf: Mapping[str, Any]) -> str:
    """Where an app's counters live in Redis."""
    return str(conf.get("dlx_metrics_prefix") or f"celery_dlx:metrics:{conf.get('dlx_prefix') or 'celery_dlx'}")


def metrics_url(conf: Mapping[str, Any]) -> str | None:
    """The Redis URL counters go to (None: not recorded, see the module docstring)."""
    if conf.get("dlx_metrics", True) is False:
        return None
    return configured_url(conf, "dlx_metrics_url")


def field(name: str, *labels: str) -> str:
    """A hash field: the counter's name and its label values."""
    return SEP.join((name, *labels))


def bucket_of(seconds: float) -> str:
    """The histogram bucket (its upper bound as text) a planned delay falls in."""
    for bound in DELAY_BUCKETS:
        if seconds <= bound:
            return "+Inf" if bound == float("inf") else repr(bound)
    return "+Inf"


class Recorder:
    """One process's buffer of counter increments for one Redis and prefix, and its flusher."""

    def __init__(self, url: str, prefix: str) -> None:
        self.url, self.prefix = url, prefix
        self.pid = os.getpid()
        self._lock = threading.Lock()
        self._counts: Counter[str] = Counter()
        self._sums: dict[str, float] = {}
        self._minutes: Counter[tuple[int, str]] = Counter()
        self._thread: threading.Thread | None = None
        #: Held for a whole flush, so two flushes (the thread's, a shutdown's) never interleave.
        self._flushing = threading.Lock()
        self._down = False

    def add(self, name: str, labels: tuple[str, ...], per_minute: str | None = None) -> None:
        """Count one event of counter ``name`` (and of the minute's ``per_minute`` series)."""
        key = field(name, *labels)
        with self._lock:
            self._counts[key] += 1
            if per_minute is not None:
                self._minutes[(int(time.time() // 60), per_minute)] += 1
        self._start()

    def observe_delay(self, kind: str, seconds: float) -> None:
        """Add a planned delay to the histogram of ``kind`` (``retry`` or ``deferral``)."""
        with self._lock:
            self._counts[field(DELAY_BUCKET, kind, bucket_of(seconds))] += 1
            self._counts[field(DELAY_COUNT, kind)] += 1
            name = field(DELAY_SUM, kind)
            self._sums[name] = self._sums.get(name, 0.0) + seconds
        self._start()

    def flush(self) -> bool:
        """Send the buffer in one pipelined round trip; False (buffer kept) if Redis did not answer."""
        with self._flushing:
            return self._flush()

    def _flush(self) -> bool:
        with self._lock:
            counts, sums, minutes = self._counts, self._sums, self._minutes
            self._counts, self._sums, self._minutes = Counter(), {}, Counter()
        if not (counts or sums or minutes):
            return True
        key = counters_key(self.prefix)
        try:
            with shared_client(self.url, TIMEOUT).pipeline(transaction=False) as pipe:
                for name, n in counts.items():
                    pipe.hincrby(key, name, n)
                for name, total in sums.items():
                    pipe.hincrbyfloat(key, name, total)
                for (minute, series), n in minutes.items():
                    pipe.hincrby(minute_key(self.prefix, minute), series, n)
                for minute in {m for m, _ in minutes}:  # after the writes: EXPIRE ignores a missing key
                    pipe.expire(minute_key(self.prefix, minute), MINUTES_KEPT * 60)
                pipe.execute()
        except UNAVAILABLE as error:
            with self._lock:  # keep them for the next flush
                self._counts.update(counts)
                for name, total in sums.items():
                    self._sums[name] = self._sums.get(name, 0.0) + total
                self._minutes.update(minutes)
            if not self._down:
                logger.warning("celery_dlx metrics: Redis %s did not answer, counters kept in memory: %r", self.url, error)
            self._down = True
            return False
        self._down = False
        return True

    def _start(self) -> None:
        if self._thread is None:
            with self._lock:
                if self._thread is None:
                    self._thread = threading.Thread(target=self._run, name="celery_dlx-metrics", daemon=True)
                    self._thread.start()

    def _run(self) -> None:
        while True:
            time.sleep(FLUSH_INTERVAL)
            try:
                self.flush()
            except Exception:  # never let the flusher die: the next flush tries again
                logger.exception("celery_dlx metrics: flush failed")


_recorders: dict[tuple[int, str, str], Recorder] = {}
_recorders_lock = threading.Lock()


def recorder_for(conf: Mapping[str, Any]) -> Recorder | None:
    """This process's recorder for an app's configuration (None: metrics not recorded)."""
    url = metrics_url(conf)
    if url is None:
        return None
    key = (os.getpid(), url, metrics_prefix(conf))
    recorder = _recorders.get(key)
    if recorder is None:
        with _recorders_lock:
            recorder = _recorders.get(key)
            if recorder is None:
                if not _recorders:
                    _flush_at_shutdown()
                recorder = _recorders[key] = Recorder(url, key[2])
    return recorder


def flush_all() -> None:
    """Flush every recorder of this process (at shutdown; also for tests)."""
    pid = os.getpid()
    for (owner, _, _), recorder in list(_recorders.items()):
        if owner == pid:
            recorder.flush()


def _flush_at_shutdown() -> None:
    """Flush when a pool process stops (billiard ends it with ``os._exit``, so ``atexit`` alone
    would not run) and when the interpreter exits."""
    from celery.signals import worker_process_shutdown

    worker_process_shutdown.connect(_on_process_shutdown, weak=False, dispatch_uid="celery_dlx.metrics.flush")
    atexit.register(flush_all)


def _on_process_shutdown(**_: Any) -> None:
    flush_all()


def counters_key(prefix: str) -> str:
    """The hash of every counter.  All metric keys carry ``prefix`` as their hash tag, so a
    flush is one pipeline to one Redis Cluster node: it fails or succeeds as a whole, and the
    counters it keeps after a failure are not counted twice."""
    return f"{tagged_prefix(prefix)}:counters"


def minute_key(prefix: str, minute: int) -> str:
    """The hash of one UNIX minute's series."""
    return f"{tagged_prefix(prefix)}:minute:{minute}"


def read_counters(client: Client, prefix: str) -> dict[tuple[str, ...], float]:
    """Every counter of ``prefix``: (name, *labels) → value."""
    raw: dict[Any, Any] = client.hgetall(counters_key(prefix))
    out: dict[tuple[str, ...], float] = {}
    for name, value in raw.items():
        text = name.decode() if isinstance(name, bytes) else str(name)
        out[tuple(text.split(SEP))] = float(value)
    return out


def read_per_minute(client: Client, prefix: str, minutes: int, now: float | None = None) -> dict[str, list[tuple[int, int]]]:
    """Counts per minute of the last ``minutes`` minutes, oldest first, the current one last."""
    current = int((time.time() if now is None else now) // 60)
    span = range(current - minutes + 1, current + 1)
    with client.pipeline(transaction=False) as pipe:
        for minute in span:
            pipe.hgetall(minute_key(prefix, minute))
        rows: list[dict[Any, Any]] = pipe.execute()
    out: dict[str, list[tuple[int, int]]] = {series: [] for series in PER_MINUTE}
    for minute, row in zip(span, rows):
        values = {(k.decode() if isinstance(k, bytes) else k): int(v) for k, v in row.items()}
        for series in PER_MINUTE:
            out[series].append((minute, values.get(series, 0)))
    return out
