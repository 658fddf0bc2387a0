"""Celery integration: a task asks the limiter first and, when denied, waits in the broker.

``acquire_or_retry(self, limiter, network="twitter", token=token_id)`` at the top of a bound
task either returns the :class:`~.limiter.Decision` (go ahead; give it back to
:meth:`~.limiter.Limiter.feedback` when the response is known) or re-publishes the task through
:func:`celery_dlx.delayed_retry` for exactly the wait the limiter named plus a small jitter.
The worker holds nothing while the task waits, and the jitter only ever adds: a deferred task
is never early.

Every call gets the factor ``queue``, the work queue the delivery came from (unless the caller
gives one), so a limit ``by=("queue",)`` or ``where={"queue": "social.trickle"}`` makes a
trickle queue: its tasks run at that rate however many workers consume it.

A deferral is not a failed attempt: the re-published task keeps its ``retries`` count, so
``max_retries`` and backoff policies see only real failures.
"""

from __future__ import annotations

import random

from celery import Task

from ..broker.destination import origin_queue
from ..errors import Deferred
from ..retry import delayed_retry
from .limiter import Decision, Limiter

#: Default jitter: up to this fraction of the wait is added ...
DEFAULT_JITTER = 0.1
#: ... but never more than this many seconds.
MAX_JITTER = 1.0


class Throttled(Deferred):
    """The limiter deferred a task; this is the reason its retry shows.

    Holds plain values (``args`` are what pickling rebuilds it from), so Celery can store and
    send it like any task exception.
    """

    def __init__(self, limit: str | None, wait: float) -> None:
        super().__init__(limit, wait)
        #: The limit that denied the call (None: the storage was unavailable).
        self.limit = limit
        #: Seconds the limiter said to wait.
        self.wait = wait

    deferred_by = "ratelimit"

    @property
    def deferred_name(self) -> str:
        return self.limit or "(storage unavailable)"

    def __str__(self) -> str:
        return f"rate limit {self.limit or '(storage unavailable)'}: wait {self.wait:.3f} s"


def acquire_or_retry(
    task: Task, limiter: Limiter, *, cost: int = 1, jitter: float = DEFAULT_JITTER, **factors: object
) -> Decision:
    """Admit the current run of ``task`` under ``limiter``, or defer it through the broker.

    ``factors`` describe the call (``queue`` is added, see the module docstring).  When denied,
    raises celery's ``Retry`` after re-publishing the task with a countdown of
    :func:`deferral` ``(decision.wait, jitter)``.  Outside a worker (called directly or
    eagerly) Celery's own retry rules apply and :class:`Throttled` is the reported error.
    """
    factors.setdefault("queue", origin_queue(task))
    decision = limiter.acquire(cost=cost, **factors)
    if decision.allowed:
        return decision
    raise delayed_retry(
        task,
        countdown=deferral(decision.wait, jitter),
        exc=Throttled(decision.limit, decision.wait),
        count_attempt=False,
    )


def deferral(wait: float, jitter: float = DEFAULT_JITTER) -> float:
    """``wait`` plus a random extra of at most ``jitter * wait`` and :data:`MAX_JITTER` seconds.

    The extra spreads tasks told the same wait (a batch denied together) so they do not all
    come back in the same instant; it is never negative, so no task is early.
    """
    if not 0 <= jitter < float("inf"):
        raise ValueError(f"jitter must be a fraction >= 0, got {jitter!r}")
    return wait + random.uniform(0.0, min(jitter * wait, MAX_JITTER))
