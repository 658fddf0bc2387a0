"""The overview page: the numbers of ``celery dlx status``, drawn, and the Redis-backed panels
of :mod:`.activity` (retries and parks per minute, rate limits).

It calls the very function behind ``celery dlx status --json`` (:func:`~..ops.status.broker_status`),
so the page and the command cannot disagree: the delay ladder as a bar chart, the parking lot
against its limits, the work queues and the circuit breakers.
"""

from __future__ import annotations

from celery import Celery
from flask import Blueprint, current_app, render_template

from ..broker.topology import Topology
from ..ops.status import broker_status, duration
from ..settings import Settings
from .activity import CHART_HEIGHT, CHART_WIDTH, SERIES, activity, rate_limits
from .broker import broker
from .charts import bars

overview = Blueprint("overview", __name__)

LADDER_WIDTH, LADDER_HEIGHT = 640.0, 120.0


def celery_app() -> Celery:
    app: Celery = current_app.config["DLX_CELERY_APP"]
    return app


def topology() -> Topology:
    return Topology(Settings.from_conf(celery_app().conf))


@overview.get("/")
def index() -> str:
    app = celery_app()
    with broker(app) as connection:
        status = broker_status(app, connection, topology())
    ladder = bars(
        [(f"L{level.level:02d}", level.queue.messages) for level in status.levels], LADDER_WIDTH, LADDER_HEIGHT
    )
    limits, limits_note = rate_limits(app)
    return render_template(
        "overview.html",
        status=status,
        ladder=ladder,
        ladder_size=(LADDER_WIDTH, LADDER_HEIGHT),
        activity=activity(app),
        series=SERIES,
        chart_size=(CHART_WIDTH, CHART_HEIGHT),
        limits=limits,
        limits_note=limits_note,
        duration=duration,
    )
