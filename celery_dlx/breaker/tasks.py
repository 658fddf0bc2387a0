"""Celery integration: ask the breaker before a call; while it is open, wait in the broker.

``guard(task, name)`` (the network Task base classes call it from ``before_start``) admits the
current run of ``task`` or re-publishes it with :func:`celery_dlx.delayed_retry`
(``count_attempt=False``: waiting out an outage is not a failed attempt and does not use up
``max_retries``) for the time the breaker names: a slot after its next probe time, spread at
the policy's ``recovery_rate`` (see :mod:`.spread`).  ``report(task, verdict)`` records how the
call went; ``finish(task)`` (from ``after_return``) frees a probe that reported nothing.

Configuration, per app (``app.conf``; all optional):

- ``dlx_breaker``: ``True`` (default: use one when Redis is configured), ``False`` (never), or
  a :class:`~.breaker.Breaker` instance to use as is (e.g. on a ``MemoryStorage``);
- ``dlx_breaker_url``: Redis URL of the state; default: the result backend when it is a
  ``redis://`` / ``rediss://`` URL, else no breaker at all (tasks work as before);
- ``dlx_breaker_prefix`` (``celery_dlx:breaker``), ``dlx_breaker_timeout`` (0.25 s socket
  timeouts), ``dlx_breaker_on_unavailable`` (``"allow"``, fail open);
- ``dlx_breaker_policy`` (a :class:`~.state.Policy`, the default for every network) and
  ``dlx_breaker_policies`` (``{"facebook": Policy(...), "facebook:insights": Policy(...)}``).

A task class can also set ``breaker_policy``, which wins over the app's.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from celery import Celery, Task

from ..classify import Verdict
from ..errors import ConfigurationError, Deferred
from ..redisio.client import configured_url
from ..retry import delayed_retry
from .breaker import DEFAULT_PREFIX, Breaker
from .redis_storage import DEFAULT_TIMEOUT, RedisStorage
from .state import Admission, Policy

_ATTRIBUTE = "_dlx_breaker"
_REQUEST_ATTRIBUTE = "dlx_breaker_ticket"
_lock = threading.Lock()


class BreakerOpen(Deferred):
    """The breaker deferred a task; this is the reason its retry shows.  Plain-value args."""

    def __init__(self, name: str, mode: str, wait: float) -> None:
        super().__init__(name, mode, wait)
        self.name, self.mode, self.wait = name, mode, wait

    deferred_by = "breaker"

    @property
    def deferred_name(self) -> str:
        return self.name

    def __str__(self) -> str:
        return f"circuit breaker {self.name} is {self.mode}: back in {self.wait:.3f} s"


@dataclass
class Ticket:
    """What the breaker said to one run of a task, and whether its outcome was reported."""

    breaker: Breaker
    name: str
    policy: Policy | None
    admission: Admission
    reported: bool = False


def breaker_for(app: Celery) -> Breaker | None:
    """The app's breaker (built once from ``app.conf``, see the module docstring), or None."""
    cached = app.__dict__.get(_ATTRIBUTE, _MISSING)
    if cached is not _MISSING:
        return cached  # type: ignore[no-any-return]
    with _lock:
        cached = app.__dict__.get(_ATTRIBUTE, _MISSING)
        if cached is _MISSING:
            cached = _build(app)
            app.__dict__[_ATTRIBUTE] = cached
    return cached  # type: ignore[no-any-return]


_MISSING = object()


def _build(app: Celery) -> Breaker | None:
    conf = app.conf
    setting = conf.get("dlx_breaker", True)
    if isinstance(setting, Breaker):
        return setting
    if setting is False or setting is None:
        return None
    if setting is not True:
        raise ConfigurationError(f"dlx_breaker must be True, False or a Breaker, got {setting!r}")
    url = configured_url(conf, "dlx_breaker_url")
    if not url:
        return None
    storage = RedisStorage.from_url(url, timeout=conf.get("dlx_breaker_timeout") or DEFAULT_TIMEOUT)
    return Breaker(
        storage,
        conf.get("dlx_breaker_policy"),
        policies=conf.get("dlx_breaker_policies"),
        prefix=conf.get("dlx_breaker_prefix") or DEFAULT_PREFIX,
        on_unavailable=conf.get("dlx_breaker_on_unavailable") or "allow",
    )


def guard(task: Task, name: str, policy: Policy | None = None, *, breaker: Breaker | None = None) -> Admission | None:
    """Admit this run of ``task`` under the breaker ``name``, or defer it through the broker.

    Returns the admission (None when there is no breaker or the task was called directly);
    when deferred, raises Celery's ``Retry`` after re-publishing the task with a countdown of
    the breaker's wait and :class:`BreakerOpen` as its reason.
    """
    request = task.request
    if request.called_directly:
        return None
    breaker = breaker or breaker_for(task.app)
    if breaker is None:
        return None
    admission = breaker.admit(name, policy)
    setattr(request, _REQUEST_ATTRIBUTE, Ticket(breaker, name, policy, admission))
    if admission.allowed:
        return admission
    raise delayed_retry(
        task, countdown=admission.wait, exc=BreakerOpen(name, admission.mode, admission.wait), count_attempt=False
    )


def report(task: Task, verdict: Verdict) -> None:
    """Record the verdict of this run's call with its breaker (once; later reports are ignored)."""
    ticket: Ticket | None = getattr(task.request, _REQUEST_ATTRIBUTE, None)
    if ticket is None or ticket.reported or not ticket.admission.allowed or ticket.admission.degraded:
        return
    ticket.reported = True
    ticket.breaker.record_verdict(ticket.name, verdict, probe=ticket.admission.probe, policy=ticket.policy)


def finish(task: Task) -> None:
    """End of a run: a probe that reported nothing gives its place back."""
    ticket: Ticket | None = getattr(task.request, _REQUEST_ATTRIBUTE, None)
    if ticket is None:
        return
    setattr(task.request, _REQUEST_ATTRIBUTE, None)
    if not ticket.reported and ticket.admission.probe:
        ticket.breaker.release(ticket.name, probe=True, policy=ticket.policy)
