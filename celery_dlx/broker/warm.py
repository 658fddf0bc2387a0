"""Warm start: every process that publishes retries has its confirmed connection open, and the
topology in place, before its first retry.

Opening the connection and declaring ~90 entities cost a fresh worker's first retries
hundreds of milliseconds of lateness (issue 23: p99 366 ms over the first 300 retries), on
every deploy.  Now the worker's bootstep (:mod:`celery_dlx.ops.bootstep`) declares or verifies
the topology once, before the pool starts its processes, and each pool process opens its
connection when it starts: a prefork child on Celery's ``worker_process_init`` signal, trusting
the declaration it inherited; solo, threads, gevent and eventlet pools, which publish from the
worker process itself, right after the declaration.  A process that only publishes (a web app,
a script calling ``delayed_retry`` or ``celery dlx send`` logic) calls :func:`warm_up` once.

A connection that fails later is opened again on the next publish and declares the topology
again, as before: trust in the worker's declaration covers only the first connection.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterable
from typing import Any

from celery import Celery
from celery.signals import worker_process_init

from ..settings import Settings
from .publish import publisher_for

logger = logging.getLogger(__name__)

#: ``id(app)`` -> the settings whose topology (and the app's queues) the worker's bootstep
#: declared or verified in this process; a prefork child inherits it when the pool forks.
_declared: dict[int, Settings] = {}


def warm_up(app: Celery, destinations: Iterable[str] | None = None) -> None:
    """Open this process's confirmed publishing connection for ``app`` now, declare the topology
    (with ``dlx_auto_declare``) and bind ``destinations`` (default: every queue of the app), so
    the first delayed publish costs what any does.

    Raises what a publish would raise (:class:`~celery_dlx.errors.TopologyMismatch`,
    :class:`~celery_dlx.errors.RetryPublishError`) when the broker cannot be reached or the
    topology differs.
    """
    settings = Settings.from_conf(app.conf)
    names = list(app.amqp.queues) if destinations is None else list(destinations)
    publisher_for(app).open(names, declared=_declared.get(id(app)) == settings)


def declared_by_worker(app: Celery) -> None:
    """Record that the worker declared or verified the topology and every queue of ``app``, so
    this process's and its pool children's first connection need not declare it again."""
    _declared[id(app)] = Settings.from_conf(app.conf)


def warm_pool_processes(app: Celery) -> None:
    """Warm each prefork pool process of ``app`` as it starts (``worker_process_init``).

    The solo pool sends the signal too, in the worker process itself and before the bootstep
    has declared the topology; that process is the bootstep's to warm, so the signal is ignored
    in the process that installed this (a prefork child is a fork of it, with a pid of its own).
    """
    installer = os.getpid()

    def on_process_init(**_: Any) -> None:
        if os.getpid() == installer:
            return
        # A worker_process_init handler must return within 4 s or the pool takes the process for
        # dead and replaces it: a slow broker must not turn into restarting children.  The
        # publisher's lock makes a retry that comes meanwhile wait for this connection.
        threading.Thread(target=warm_worker_process, args=(app,), name="celery_dlx warm-up", daemon=True).start()

    worker_process_init.connect(on_process_init, weak=False, dispatch_uid=f"celery_dlx.warm.{id(app)}")


def warm_worker_process(app: Celery) -> None:
    """Warm a process that runs ``app``'s tasks, for the queues it consumes.  A failure is
    logged, not raised: the process still starts, and its first retry connects as before."""
    queues = app.amqp.queues
    try:
        warm_up(app, list(queues.consume_from or queues))
    except Exception as exc:
        logger.warning("celery_dlx: could not open the retry connection at process start (%r); the first retry will", exc)
