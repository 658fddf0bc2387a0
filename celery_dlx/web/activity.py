"""The overview's Redis-backed panels: retries and parks per minute over the last hour (the
counters every worker records, :func:`~..metrics.per_minute`) and rate-limit usage (the
limiters named in ``dlx_metrics_limiters``, read as ``/metrics`` reads them).

Redis being down must not take the page down: each panel then carries a note saying so, and
the broker's panels still show.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from celery import Celery
from redis.exceptions import RedisError

from ..metrics import per_minute
from ..metrics.counters import metrics_url
from ..metrics.ratelimits import SlotUsage, limiters_of, usage
from .charts import Bar, bars

MINUTES = 60
CHART_WIDTH, CHART_HEIGHT = 360.0, 60.0
#: The per-minute series drawn, with their titles.
SERIES = {"retries": "retries per minute", "parked": "tasks parked per minute", "deferrals": "deferrals per minute"}


@dataclass
class Activity:
    """Each series' bars and total over the hour; ``note`` says why there are none."""

    charts: dict[str, list[Bar]] = field(default_factory=dict)
    totals: dict[str, int] = field(default_factory=dict)
    note: str = ""


def activity(app: Celery) -> Activity:
    if metrics_url(app.conf) is None:
        return Activity(note="no counters: the app has no Redis for them (dlx_metrics_url or a redis:// result backend)")
    try:
        series = per_minute(app, minutes=MINUTES)
    except (RedisError, OSError) as exc:
        return Activity(note=f"retries per minute unknown: Redis did not answer ({exc})")
    shown = Activity()
    for name in SERIES:
        points = series.get(name, [])
        shown.totals[name] = sum(count for _, count in points)
        shown.charts[name] = bars([(str(minute), count) for minute, count in points], CHART_WIDTH, CHART_HEIGHT, gap=1.0)
    return shown


def rate_limits(app: Celery) -> tuple[list[SlotUsage], str]:
    """Usage of every slot of the app's named limiters (the most used first), and a note when
    there is nothing to show."""
    limiters = limiters_of(app.conf)
    if not limiters:
        return [], "no rate limits to show: name the app's Redis limiters in dlx_metrics_limiters"
    found: list[SlotUsage] = []
    try:
        for limiter in limiters:
            found += usage(limiter)[0]
    except (RedisError, OSError) as exc:
        return [], f"rate limits unknown: Redis did not answer ({exc})"
    return found, "" if found else "no rate-limited calls recorded"
