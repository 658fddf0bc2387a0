"""Prometheus metrics for celery_dlx: what waits in the broker and in Redis, read at scrape
time, and counters of what every worker did (kept in Redis, see :mod:`.counters`).

``build_registry(app)`` is a ``prometheus_client`` registry to serve (``python -m
celery_dlx.metrics -A proj --port 9808``, or mounted by a web app); ``per_minute(app)`` gives
the retries, deferrals and parks of the last hour, minute by minute.  Needs the ``web`` extra
(``pip install celery_dlx[web]``) for ``prometheus_client``; recording the counters does not.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import lazy_names

if TYPE_CHECKING:  # the names for type checkers, one line a module
    from .collector import DLXCollector, build_registry, per_minute

#: Module (relative) -> the public names it defines, loaded on first use.
_MODULES = {".collector": "DLXCollector build_registry per_minute"}

__getattr__, __dir__ = lazy_names(__name__, _MODULES)

__all__ = ["DLXCollector", "build_registry", "per_minute"]
