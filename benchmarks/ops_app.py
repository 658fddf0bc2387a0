"""The Celery app ``benchmarks.operations`` runs ``celery dlx status`` against, configured from
the environment (DLX_OPS_PREFIX, DLX_OPS_QUEUE_TYPE, DLX_OPS_BROKER) so the benchmark process
and the CLI subprocess build the same app."""

from __future__ import annotations

import os

from celery import Celery

from celery_dlx import Settings, Topology
from celery_dlx.queues import work_queue as make_work_queue

PREFIX = os.environ.get("DLX_OPS_PREFIX", "dlxops")
work_queue = f"{PREFIX}.work"

app = Celery("dlx_ops", broker=os.environ.get("DLX_OPS_BROKER", "amqp://guest:guest@127.0.0.1:5672//"), set_as_current=False)
app.conf.update(
    dlx_prefix=PREFIX,
    dlx_queue_type=os.environ.get("DLX_OPS_QUEUE_TYPE", "classic"),
    task_queues=[make_work_queue(work_queue)],
    task_default_queue=work_queue,
)
topology = Topology(Settings.from_conf(app.conf))
