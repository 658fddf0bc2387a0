"""Celery integration: a task asks the limiter first and, when denied, waits in the broker.

``acquire_or_retry(self, limiter, network="twitter", token=token_id)`` at the top of a bound
task either returns the :class:`~.limiter.Decision` (go ahead; give it back to
:meth:`~.limiter.Limiter.feedback` when the response is known) or re-publishes the task through
:func:`celery_dlx.delayed_retry` to come back when the limiter says.  The worker holds nothing
while the task waits.

In a worker a denied task reserves its own slot (:meth:`~.limiter.Limiter.reserve`) and comes
back exactly at it: the message carries the reservation in its ``dlx_reservation`` header, is
planned exactly (not with ``dlx_precision``'s slack), and on arrival presents it, so it runs
without being denied again.  Tasks denied together thus come back one slot apart, not as a
herd.  Without a reservation (the storage was unavailable) the wait gets a small jitter, which
only ever adds: a deferred task is never early.  Called directly or eagerly there is no message
to carry a reservation, and the plain :meth:`~.limiter.Limiter.acquire` decides.

Every call gets the factor ``queue``, the work queue the delivery came from (unless the caller
gives one), so a limit ``by=("queue",)`` or ``where={"queue": "social.trickle"}`` makes a
trickle queue: its tasks run at that rate however many workers consume it.

A deferral is not a failed attempt: the re-published task keeps its ``retries`` count, so
``max_retries`` and backoff policies see only real failures.
"""

from __future__ import annotations

import random
from typing import Any

from celery import Task

from ..broker.destination import origin_queue
from ..broker.headers import RESERVATION_HEADER
from ..errors import Deferred
from ..retry import delayed_retry
from .limiter import Decision, Limiter
from .storage import Reservation

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
    raises celery's ``Retry`` after re-publishing the task to come back at its reserved slot
    (or after :func:`deferral` ``(decision.wait, jitter)`` without one).  Outside a worker
    (called directly or eagerly) Celery's own retry rules apply and :class:`Throttled` is the
    reported error.
    """
    factors.setdefault("queue", origin_queue(task))
    request = task.request
    if request.called_directly or request.is_eager:
        decision = limiter.acquire(cost=cost, **factors)
    else:
        decision = limiter.reserve(cost=cost, claim=presented(request), **factors)
    if decision.allowed:
        return decision
    reservation = decision.reservation
    countdown = deferral(decision.wait, jitter) if reservation is None else decision.wait
    carried = None if reservation is None else f"{reservation.slot_us}:{reservation.made_us}"
    setattr(request, RESERVATION_HEADER, carried)  # into the deferral's headers
    try:
        raise delayed_retry(task, countdown=countdown, exc=Throttled(decision.limit, decision.wait), count_attempt=False)
    finally:
        setattr(request, RESERVATION_HEADER, None)


def presented(request: Any) -> Reservation | None:
    """The reservation the delivery carries, taken off the request so no later retry of this
    run carries it too; None without one (or with one that is not ours)."""
    carried = request.get(RESERVATION_HEADER)
    setattr(request, RESERVATION_HEADER, None)
    try:
        slot_us, made_us = (int(part) for part in str(carried).split(":"))
    except ValueError:
        return None
    return Reservation(slot_us, made_us)


def deferral(wait: float, jitter: float = DEFAULT_JITTER) -> float:
    """``wait`` plus a random extra of at most ``jitter * wait`` and :data:`MAX_JITTER` seconds.

    For deferrals without a reservation (the storage was unavailable): the extra spreads tasks
    told the same wait so they do not all come back in the same instant; it is never negative,
    so no task is early.
    """
    if not 0 <= jitter < float("inf"):
        raise ValueError(f"jitter must be a fraction >= 0, got {jitter!r}")
    return wait + random.uniform(0.0, min(jitter * wait, MAX_JITTER))
