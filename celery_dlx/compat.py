"""Every difference between the Celery minors celery_dlx supports (5.4 to 5.7), in one place.

celery_dlx builds its retries with Celery's own ``Task.retry`` and runs inside Celery's worker,
so it meets the Celery release it is installed with.  Where that release changes something
celery_dlx relies on, the difference is handled here, named with the version that changed it,
and nowhere else; ``tests/unit/test_compat.py`` checks each entry on whichever Celery is
installed, and the ``compat`` nox sessions run the integration subset on every minor.

Differences that need no code, because celery_dlx does the work itself on every version:

- Celery 5.6 strips RabbitMQ's ``x-death`` headers from a retry (celery#9867); 5.4 and 5.5 pass
  them on.  :func:`celery_dlx.broker.headers.without_death` strips them on every version.
- Celery 5.5 adds native delayed delivery (``celery_delayed_*`` exchanges) for countdowns to
  quorum queues.  celery_dlx publishes its retries with ``countdown=0`` to its own exchanges,
  so native delayed delivery never takes them, whatever the work queue's type.
- Celery 5.6 adds ``worker_eta_task_limit``, a cap on the ETA tasks a worker holds.  A
  celery_dlx retry carries no ETA, so the cap neither applies to it nor is needed for it.
- Celery 5.6 gives an eager call its parent and root ids; Celery 5.7 keeps the caller's
  ``ignore_result`` and the time limits on a retry or an eager call, and merges explicit
  ``args``/``kwargs`` of ``retry`` with the inherited ones (celery#6494).  celery_dlx passes
  ``retry``'s arguments to Celery unchanged, so a retry behaves as a Celery retry of the
  installed version does.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import celery
from celery.app.task import Context
from celery.utils.saferepr import saferepr

if TYPE_CHECKING:
    from celery import Celery

__all__ = ["CELERY_VERSION", "QUORUM_WORK_QUEUES", "RequestKeptOnCall", "repr_maxlevels", "repr_of_arguments"]


def _release(version: str) -> tuple[int, int]:
    """``(major, minor)`` of a Celery version string such as ``5.6.3`` or ``5.7.0rc1``."""
    major, minor = version.split(".")[:2]
    return int(major), int("".join(ch for ch in minor if ch.isdigit()) or 0)


#: ``(major, minor)`` of the installed Celery.
CELERY_VERSION: tuple[int, int] = _release(celery.__version__)

#: Whether a worker of the installed Celery can consume a quorum work queue.  Celery < 5.5 asks
#: RabbitMQ for a global QoS (prefetch) on the consuming channel, which quorum queues refuse
#: (``NOT_IMPLEMENTED - queue … does not support global qos``), so the worker restarts its
#: consumer until it gives up.  Celery 5.5 detects quorum queues and asks for a per-consumer
#: QoS.  celery_dlx's own quorum queues (``dlx_queue_type="quorum"`` delay and parking queues)
#: are not consumed by the worker and work with every supported Celery.
QUORUM_WORK_QUEUES: bool = CELERY_VERSION >= (5, 5)

#: Celery < 5.7 has no ``task_repr_maxlevels`` setting; its ``saferepr`` nests this deep.
DEFAULT_REPR_MAXLEVELS = 3


def repr_maxlevels(app: Celery) -> int:
    """How deep ``argsrepr``/``kwargsrepr`` show nested arguments, as the app's Celery does.

    Celery 5.7 added the ``task_repr_maxlevels`` setting (default 3) and reads it when it builds
    the headers; before 5.7 the setting does not exist (reading it raises ``AttributeError``, which
    made every retry fail on 5.4-5.6) and ``saferepr``'s own default of 3 levels applies.
    """
    value = app.conf.get("task_repr_maxlevels")
    return DEFAULT_REPR_MAXLEVELS if value is None else int(value)


def repr_of_arguments(app: Celery, value: Any, maxsize: int) -> str:
    """``saferepr`` of task arguments with the app's nesting depth (see :func:`repr_maxlevels`)."""
    return str(saferepr(value, maxsize, maxlevels=repr_maxlevels(app)))


if CELERY_VERSION < (5, 5):

    class RequestKeptOnCall:
        """Mixin for a ``Task`` class whose ``__call__`` calls ``super().__call__``: the body
        sees the request the worker pushed (id, retries, delivery info), not a blank one.

        Celery < 5.5: ``Task.__call__`` pushes ``Context(args=…, kwargs=…)`` on top of the
        request the tracer pushed, so in a task class with its own ``__call__`` the body sees
        no id, ``retries == 0`` and ``called_directly`` - a retry from it re-raised the
        exception instead of retrying.  Celery 5.5 made ``push_request`` start from the current
        request; this is that method, for the classes of celery_dlx that define ``__call__``
        (:class:`~celery_dlx.softlimit.SoftLimitRetry`, :class:`~celery_dlx.pagination.Paginated`).
        """

        def push_request(self, *args: Any, **kwargs: Any) -> None:
            current = self.request  # type: ignore[attr-defined]
            self.request_stack.push(Context(*args, **{**current.__dict__, **kwargs}))  # type: ignore[attr-defined]

else:

    class RequestKeptOnCall:  # type: ignore[no-redef]
        """Nothing to do from Celery 5.5 on: ``Task.push_request`` keeps the current request
        (see the Celery < 5.5 branch of this module)."""
