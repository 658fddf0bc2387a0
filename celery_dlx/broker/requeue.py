"""What becomes of a delivery whose retry or park could not be published: requeued when the
failure may pass and the task is ``acks_late`` (nothing lost), else left to the caller to fail.

Shared by :mod:`celery_dlx.retry` and :mod:`celery_dlx.parking.park`.
"""

from __future__ import annotations

import logging
import time

from amqp.exceptions import AMQPError, MessageNacked
from celery import Task
from celery.exceptions import Reject
from kombu.exceptions import OperationalError

from ..errors import RetryPublishError

logger = logging.getLogger(__name__)


#: Publish failures that may pass (broker down, refused or unconfirmed message, topology being
#: re-created): worth requeueing the delivery for.  Anything else (a message that cannot be
#: serialized, a bad option) would fail again on every redelivery.
TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    OperationalError,
    AMQPError,
    MessageNacked,
    OSError,
    RetryPublishError,
)

#: Pause before requeueing a delivery whose message could not be published, so a broker that
#: keeps refusing does not turn into a hot redelivery loop.
REQUEUE_PAUSE = 1.0


def requeue_if_transient(task: Task, error: BaseException, cause: BaseException | None) -> None:
    """For an ``acks_late`` task whose publish failed for a reason that may pass, give the
    delivery back to the broker (``Reject(requeue=True)`` after :data:`REQUEUE_PAUSE`) so
    nothing is lost; otherwise return and let the caller fail."""
    if task.acks_late and isinstance(cause, TRANSIENT_ERRORS):
        logger.error("%s; the delivery is requeued", error)
        time.sleep(REQUEUE_PAUSE)
        raise Reject(error, requeue=True) from cause
