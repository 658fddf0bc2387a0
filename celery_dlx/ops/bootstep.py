"""A worker bootstep that declares or verifies the delay topology before the worker consumes,
and refuses to start when the broker's topology has drifted from what the app expects.

Without it, a drifted topology shows up only at the first retry, as failed retries.  With it,
a worker that would publish into a mismatched topology never starts::

    from celery_dlx.ops.bootstep import install
    install(app)                            # adds TopologyStep to the worker blueprint
    app.conf.dlx_worker_topology = "verify"  # or "declare" (the default), or "off"

- ``declare``: declare the topology and the app's work queues (idempotent); an entity the
  broker has with other arguments is drift, except a parking queue whose retention differs
  (a lot declared before ``dlx_parking_max_*`` existed): that is logged with its fix, since
  parking into it works and an upgrade must not stop every worker.
- ``verify``: read-only check (:mod:`celery_dlx.ops.verify`), for deployments where topology is
  declared at release time (``celery dlx declare``) and workers must not change the broker.
  The management API is ``$CELERY_DLX_MANAGEMENT_URL`` or the broker host's :15672; one that
  belongs to another broker stops the worker too (its listing would be phantom drift).

On drift the step logs the difference and the worker exits with status 1.

It runs while the worker is built, before the pool starts its processes, so prefork children
inherit that the topology is there; each pool process then opens its retry connection when it
starts instead of at its first retry (:mod:`celery_dlx.broker.warm`).
"""

from __future__ import annotations

import logging
from typing import Any

from celery import Celery, bootsteps
from celery.concurrency.prefork import TaskPool as PreforkPool

from ..broker.topology import Topology
from ..broker.warm import declared_by_worker, warm_pool_processes, warm_worker_process
from ..errors import ConfigurationError, TopologyMismatch
from ..settings import Settings
from .verify import ManagementMismatch, verify

logger = logging.getLogger(__name__)

MODES = ("declare", "verify", "off")


def mode_of(app: Celery) -> str:
    """The ``dlx_worker_topology`` setting, checked."""
    mode = app.conf.get("dlx_worker_topology", "declare") or "off"
    if mode not in MODES:
        raise ConfigurationError(f"dlx_worker_topology must be one of {MODES}, got {mode!r}")
    return str(mode)


class TopologyStep(bootsteps.Step):
    """Declares or verifies the topology when the worker is built (before its pool starts and
    before it consumes), then warms the worker process's retry connection unless the pool
    forks (prefork children warm themselves: :func:`~celery_dlx.broker.warm.warm_pool_processes`)."""

    label = "celery_dlx topology"

    def create(self, worker: Any) -> None:
        app = worker.app
        if mode_of(app) != "off":
            self._declare_or_verify(app)
            declared_by_worker(app)
        if not (isinstance(worker.pool_cls, type) and issubclass(worker.pool_cls, PreforkPool)):
            warm_worker_process(app)

    def _declare_or_verify(self, app: Celery) -> None:
        mode = mode_of(app)
        topology = Topology(Settings.from_conf(app.conf))
        queues = list(app.amqp.queues.values())
        with app.connection_for_write() as connection:
            connection.ensure_connection(max_retries=3)
            problems = _check(mode, connection, topology, queues)
        if problems:
            logger.critical(
                "celery_dlx: the broker's topology differs from what this app expects; the worker "
                "does not start (dlx_worker_topology=%s):\n%s\nFix it with `celery dlx declare` after "
                "removing the drifted entities, or change the app's dlx_* settings back.",
                mode,
                "\n".join(problems),
            )
            raise SystemExit(1)
        logger.info("celery_dlx: topology %s %s", topology.prefix, {"declare": "declared", "verify": "verified"}[mode])


def _check(mode: str, connection: Any, topology: Topology, queues: list[Any]) -> list[str]:
    """The drift found, as readable lines (none: all good)."""
    if mode == "declare":
        try:
            topology.declare(connection, queues, retention_drift="warn")
        except TopologyMismatch as mismatch:
            return [f"~ {entity}: {reason}" for entity, reason in mismatch.mismatches] + [
                f"! fix: {hint}" for hint in mismatch.hints
            ]
        return []
    try:
        report = verify(connection, topology, queues)
    except ManagementMismatch as exc:
        return [f"? {exc}"]
    return report.lines() if report.drift else []


def install(app: Celery) -> None:
    """Add :class:`TopologyStep` to ``app``'s worker blueprint, warm each prefork pool process as
    it starts, and start the clock that :func:`~celery_dlx.softlimit.remaining_soft_time` reads."""
    from ..softlimit.task import start_clock

    start_clock()
    app.steps["worker"].add(TopologyStep)
    warm_pool_processes(app)
