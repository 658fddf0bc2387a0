"""The Prometheus collector: at each scrape, read the broker and Redis and report what is there.

Broker gauges come from the same passive ``queue.declare`` calls as ``celery dlx status``
(:mod:`celery_dlx.ops.status`): the broker answers each from the queue's own counter in
constant time, so a scrape costs the same with ten or a million retries pending (about 30
queues, one channel each).  Unacknowledged deliveries are not in a declare's answer; they come
from the management API (``dlx_management_url``, default ``http://<broker host>:15672``), whose
figures RabbitMQ refreshes every few seconds.

Each source that cannot be read is reported as ``celery_dlx_up{source=…} 0`` and its metrics
are left out, so a scrape always answers: ``broker``, ``management`` and ``redis`` (the
counters, the breakers and the rate limits; absent when the app has no Redis).  Every read
has a timeout of :data:`TIMEOUT` seconds.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from urllib.parse import quote

from celery import Celery
from kombu import Connection
from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from ..breaker.state import CLOSED, HALF_OPEN, OPEN
from ..broker.topology import Topology
from ..ops.management_api import ManagementAPI
from ..ops.status import Status, breaker_states, broker_status
from ..redisio.client import shared_client
from ..settings import Settings
from . import counters as c
from . import ratelimits

logger = logging.getLogger(__name__)

#: Seconds any one source may take to answer a scrape.
TIMEOUT = 3.0
#: Breaker modes, one ``celery_dlx_breaker_state`` series each.
BREAKER_MODES = (CLOSED, OPEN, HALF_OPEN)
#: Metric name prefix.
NS = "celery_dlx"


class DLXCollector(Collector):
    """Reads ``app``'s broker topology, breakers, rate limits and counters at each scrape."""

    def __init__(self, app: Celery) -> None:
        self.app = app
        self.settings = Settings.from_conf(app.conf)
        self.topology = Topology(self.settings)
        #: Sources that failed their last read (their failure was logged).
        self._down: set[str] = set()
        #: The broker connection kept between scrapes, and the lock of scrapes that use it.
        self._connection: Connection | None = None
        self._lock = threading.Lock()

    def describe(self) -> list[Metric]:
        """Nothing: the series depend on what the broker and Redis hold at scrape time (and
        registering must not read them)."""
        return []

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily(f"{NS}_up", "1 if the source answered this scrape, else 0 (its metrics are left out).", labels=["source"])
        took = GaugeMetricFamily(f"{NS}_scrape_duration_seconds", "Seconds each source took to read.", labels=["source"])
        out: list[Metric] = []
        for source, read in self._sources():
            start = time.perf_counter()
            try:
                out += read()
                up.add_metric([source], 1)
            except Exception as error:
                # Once per outage, not once per scrape: celery_dlx_up says the rest.
                level = logging.WARNING if source not in self._down else logging.DEBUG
                logger.log(level, "celery_dlx metrics: %s not read: %r", source, error)
                self._down.add(source)
                up.add_metric([source], 0)
            else:
                self._down.discard(source)
            took.add_metric([source], time.perf_counter() - start)
        yield up
        yield took
        yield from out

    def _sources(self) -> list[tuple[str, Callable[[], list[Metric]]]]:
        sources: list[tuple[str, Callable[[], list[Metric]]]] = [("broker", self._broker), ("management", self._management)]
        if c.metrics_url(self.app.conf) or ratelimits.limiters_of(self.app.conf) or _has_breakers(self.app):
            sources.append(("redis", self._redis))
        return sources

    def _broker(self) -> list[Metric]:
        """One connection kept between scrapes (opening one costs more than the ~30 declares);
        after an error on a kept connection the read is tried once more on a new one, so a
        connection the broker closed while idle costs no scrape."""
        with self._lock:
            while True:
                reused = self._connection is not None
                if self._connection is None:
                    self._connection = self.app.connection_for_read(connect_timeout=TIMEOUT, heartbeat=0)
                try:
                    self._connection.ensure_connection(max_retries=1, interval_start=0, interval_step=0.1, timeout=TIMEOUT)
                    return broker_metrics(broker_status(self.app, self._connection, self.topology, breakers=False))
                except Exception:
                    self._connection.release()
                    self._connection = None
                    if not reused:
                        raise

    def _management(self) -> list[Metric]:
        with self.app.connection_for_read() as connection:
            api = ManagementAPI.for_connection(connection, self.app.conf.get("dlx_management_url"), timeout=TIMEOUT)
            vhost = connection.virtual_host
        rows = api.get(f"/api/queues/{quote(vhost, safe='')}?columns=name,messages_unacknowledged")
        wanted = set(self.app.amqp.queues)
        unacked = GaugeMetricFamily(f"{NS}_queue_unacked_messages", "Deliveries of a work queue not yet acknowledged (management API, refreshed every few seconds).", labels=["queue"])
        for row in rows:
            if row.get("name") in wanted:
                unacked.add_metric([row["name"]], float(row.get("messages_unacknowledged") or 0))
        return [unacked]

    def _redis(self) -> list[Metric]:
        out: list[Metric] = []
        url = c.metrics_url(self.app.conf)
        if url is not None:
            client = shared_client(url, TIMEOUT)
            out += counter_metrics(c.read_counters(client, c.metrics_prefix(self.app.conf)))
        out += self._breakers()
        out += self._rate_limits()
        return out

    def _breakers(self) -> list[Metric]:
        snapshots, note = breaker_states(self.app)
        if note.startswith("circuit breakers unknown"):
            raise ConnectionError(note)
        state = GaugeMetricFamily(f"{NS}_breaker_state", "1 for the mode each circuit breaker is in (closed, open, half_open).", labels=["breaker", "state"])
        waiting = GaugeMetricFamily(f"{NS}_breaker_waiting_tasks", "Tasks deferred by the breaker whose slot is still ahead (an upper bound).", labels=["breaker"])
        failures = GaugeMetricFamily(f"{NS}_breaker_failures", "Recent failures counting towards opening the breaker.", labels=["breaker"])
        for snap in snapshots:
            for mode in BREAKER_MODES:
                state.add_metric([snap["name"], mode], 1.0 if snap["mode"] == mode else 0.0)
            waiting.add_metric([snap["name"]], snap["waiting"])
            failures.add_metric([snap["name"]], snap["failures"])
        return [state, waiting, failures]

    def _rate_limits(self) -> list[Metric]:
        docs = {
            "used": "Calls admitted in the current window of the limit's slot.",
            "allowed": "Calls a window of the limit allows (an adaptive limit's burst).",
            "window_seconds": "Length of the limit's window (an adaptive limit's at its learned rate).",
            "budget_remaining": "Calls left until the reset a server's rate-limit headers announced.",
            "adaptive_rate": "Calls per second an adaptive limit has learned.",
        }
        families = {k: GaugeMetricFamily(f"{NS}_ratelimit_{k}", doc, labels=["limit", "slot"]) for k, doc in docs.items()}
        slots = GaugeMetricFamily(f"{NS}_ratelimit_slots", "Slots (factor combinations) of the limit with state in Redis.", labels=["limit"])
        for limiter in ratelimits.limiters_of(self.app.conf):
            usages, counts = ratelimits.usage(limiter)
            for name, count in counts.items():
                slots.add_metric([name], count)
            for suffix, labels, value in ratelimits.series(usages):
                families[suffix].add_metric(list(labels), value)
        return [*families.values(), slots]


def _has_breakers(app: Celery) -> bool:
    from ..breaker.tasks import breaker_for

    return breaker_for(app) is not None


def broker_metrics(status: Status) -> list[Metric]:
    """Gauges of one ``celery dlx status`` report."""
    level = GaugeMetricFamily(f"{NS}_delay_messages", "Messages waiting in a delay level's queue.", labels=["level", "wait_seconds"])
    for lv in status.levels:
        level.add_metric([str(lv.level), repr(lv.wait_ms / 1000)], lv.queue.messages)
    pending = GaugeMetricFamily(f"{NS}_pending_messages", "Messages waiting in all delay levels (retries and deferrals not yet due).")
    pending.add_metric([], status.pending)
    parked = GaugeMetricFamily(f"{NS}_parked_messages", "Messages in the parking lot.")
    parked.add_metric([], status.parking.messages)
    out: list[Metric] = [level, pending, parked]
    if status.parking.max_messages is not None:
        most = GaugeMetricFamily(f"{NS}_parking_max_messages", "Most messages the parking lot keeps (dlx_parking_max_messages).")
        most.add_metric([], status.parking.max_messages)
        out.append(most)
    ready = GaugeMetricFamily(f"{NS}_queue_messages", "Messages ready in a work queue of the app.", labels=["queue"])
    consumers = GaugeMetricFamily(f"{NS}_queue_consumers", "Consumers of a work queue of the app.", labels=["queue"])
    for queue in status.work_queues:
        if queue.exists:
            ready.add_metric([queue.name], queue.messages)
            consumers.add_metric([queue.name], queue.consumers)
    missing = GaugeMetricFamily(f"{NS}_missing_queues", "Queues of the topology the broker does not have (run `celery dlx declare`).")
    missing.add_metric([], len(status.missing))
    return [*out, ready, consumers, missing]


def counter_metrics(values: dict[tuple[str, ...], float]) -> list[Metric]:
    """The counters every worker recorded in Redis (:mod:`.counters`)."""
    retries = CounterMetricFamily(f"{NS}_retries", "Retries published and confirmed, by task and reason (verdict kind or exception class).", labels=["task", "reason"])
    deferrals = CounterMetricFamily(f"{NS}_deferrals", "Tasks deferred without using up a retry, by task, mechanism (ratelimit, breaker) and limit or breaker name.", labels=["task", "by", "name"])
    parked = CounterMetricFamily(f"{NS}_parked", "Tasks parked, by task and reason.", labels=["task", "reason"])
    failures = CounterMetricFamily(f"{NS}_retry_publish_failures", "Retries the broker did not confirm (the task failed or was requeued).", labels=["task"])
    families = {c.RETRIES: retries, c.DEFERRALS: deferrals, c.PARKED: parked, c.PUBLISH_FAILURES: failures}
    buckets: dict[str, dict[str, float]] = {}
    for (name, *labels), value in sorted(values.items()):
        if name in families:
            families[name].add_metric(labels, value)
        elif name == c.DELAY_BUCKET:
            buckets.setdefault(labels[0], {})[labels[1]] = value
    delays = HistogramMetricFamily(f"{NS}_planned_delay_seconds", "Delays the broker applies to retries and deferrals (rounded up to the unit).", labels=["kind"])
    for kind, counts in sorted(buckets.items()):
        cumulative, rows = 0.0, []
        for bound in c.DELAY_BUCKETS:
            le = c.bucket_of(bound)
            cumulative += counts.get(le, 0.0)
            rows.append((le, cumulative))
        delays.add_metric([kind], rows, values.get((c.DELAY_SUM, kind), 0.0))
    return [*families.values(), delays]


def build_registry(app: Celery) -> CollectorRegistry:
    """A registry holding only celery_dlx's collector for ``app`` (serve it, or merge it into
    your own with ``registry.register(DLXCollector(app))``)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(DLXCollector(app))
    return registry


def per_minute(app: Celery, minutes: int = 60) -> dict[str, list[tuple[int, int]]]:
    """Retries, deferrals and parks per minute over the last ``minutes`` minutes, for a chart:
    ``{"retries": [(unix_minute, count), …], "deferrals": …, "parked": …}``, oldest first, the
    current (partial) minute last; ``unix_minute`` is ``int(unix_time // 60)``.  Empty lists
    when the app records no counters (no Redis); raises redis-py's errors when Redis is down."""
    url = c.metrics_url(app.conf)
    if url is None:
        return {series: [] for series in c.PER_MINUTE}
    return c.read_per_minute(shared_client(url, TIMEOUT), c.metrics_prefix(app.conf), minutes)
