"""Signals celery_dlx sends, for metrics, logging and test assertions.

``retry_published`` is sent in the process that ran the task, after the broker confirmed a
delayed retry.  Keyword arguments:

- ``request``: the task's request (``task.request``) of the attempt that failed;
- ``retries``: the retry number this message carries (``request.retries + 1``);
- ``delay``: seconds the caller asked for; ``planned``: seconds the broker will apply (rounded
  up to the unit, and scaled by ``dlx_time_scale`` in tests);
- ``queue``: the work queue the retry comes back to; ``exc``: the exception given, if any.
"""

from __future__ import annotations

from celery.utils.dispatch import Signal

retry_published = Signal(
    name="retry_published",
    providing_args={"request", "retries", "delay", "planned", "queue", "exc"},
)
