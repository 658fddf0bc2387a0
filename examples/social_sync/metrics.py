"""``--metrics-port``: the demo serves celery_dlx's Prometheus metrics while it runs, and at the
end checks the counters against its own totals.

The demo counts every retry it sees (``retry_published``, by reason) in its own Redis hash;
celery_dlx counts retries (by reason) and deferrals (by limiter or breaker) in its counters.
Once every tree is done, the two must agree: the demo's ``limiter`` and ``breaker`` reasons are
celery_dlx's deferrals, every other reason its retries; and the parking lot holds what
celery_dlx counted as parked.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from celery import Celery

from celery_dlx.metrics.counters import FLUSH_INTERVAL

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def serve(app: Celery, port: int) -> Any:
    """Serve ``/metrics`` of ``app`` on 127.0.0.1:``port``; returns the server (``shutdown()`` it)."""
    from prometheus_client import start_http_server  # the web extra: only with --metrics-port

    from celery_dlx.metrics import build_registry

    server, _ = start_http_server(port, addr="127.0.0.1", registry=build_registry(app))
    print(f"metrics: curl http://127.0.0.1:{port}/metrics", flush=True)
    return server


def scrape(app: Celery) -> Samples:
    """One scrape, once every worker process flushed what it counted (they flush every second)."""
    from prometheus_client import generate_latest
    from prometheus_client.parser import text_string_to_metric_families

    from celery_dlx.metrics import build_registry

    time.sleep(2.5 * FLUSH_INTERVAL)
    text = generate_latest(build_registry(app)).decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def total(samples: Samples, name: str, **labels: str) -> int:
    """The sum of ``name``'s samples whose labels include ``labels``."""
    return int(
        sum(v for (n, ls), v in samples.items() if n == name and all((k, x) in ls for k, x in labels.items()))
    )


def compare(samples: Samples, retries: Mapping[str, int], parked: int) -> tuple[list[str], bool]:
    """Report lines and whether the counters equal the demo's totals."""
    demo_limiter, demo_breaker = retries.get("limiter", 0), retries.get("breaker", 0)
    demo_retries = sum(retries.values()) - demo_limiter - demo_breaker
    pairs = [
        ("retries", total(samples, "celery_dlx_retries_total"), demo_retries),
        ("deferrals by the rate limiter", total(samples, "celery_dlx_deferrals_total", by="ratelimit"), demo_limiter),
        ("deferrals by a breaker", total(samples, "celery_dlx_deferrals_total", by="breaker"), demo_breaker),
        ("parked", total(samples, "celery_dlx_parked_total"), parked),
    ]
    ok = all(ours == theirs for _, ours, theirs in pairs)
    lines = [
        "metrics counters vs the demo's totals: "
        + "; ".join(f"{what} {ours} {'==' if ours == theirs else '!='} {theirs}" for what, ours, theirs in pairs),
        "metrics non-zero at the end: " + ", ".join(sorted(nonzero(samples))),
    ]
    return lines, ok


def nonzero(samples: Samples) -> set[str]:
    """Names of the metrics with at least one non-zero sample."""
    return {name for (name, _), value in samples.items() if value and not name.endswith("_created")}
