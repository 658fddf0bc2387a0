"""The parking lot: where a task that will not succeed by retrying is kept instead of vanishing.

When a task runs out of retries (``max_retries``), or a network task's response is classified
as one that retrying cannot fix (a dead token, a missing permission, a bad request), Celery
would record the failure and drop the message.  With ``dlx_park`` on (the default) the message
is first published, confirmed, to the parking queue ``<dlx_prefix>.parking`` with the failure
in its headers; the task then fails exactly as it would have.  ``celery dlx parked`` lists the
lot, ``celery dlx replay`` sends messages back to work once the cause is fixed.

Headers of a parked message (besides Celery's own, e.g. ``task``, ``id``, ``retries``):

- ``dlx_parked_reason``: ``max_retries`` or the verdict kind (``auth_invalid``, …);
- ``dlx_error`` / ``dlx_error_message``: the exception's class and message, redacted;
- ``dlx_parked_at``: UNIX time of parking;
- ``dlx_queue``: the work queue it came from (where a replay sends it back).

A message that reached the lot through the alternate exchange (a delayed message whose work
queue had no binding, or a foreign message) has none of the ``dlx_parked_*`` headers; it is
listed with the reason ``unroutable``.

The lot keeps at most ``dlx_parking_max_messages`` messages, each at most
``dlx_parking_max_age`` seconds (queue arguments, see
:meth:`~celery_dlx.broker.topology.Topology.parking_arguments`).  RabbitMQ drops the oldest message of a
full lot without a word, so :func:`park` asks the lot's depth first (one passive declare:
parking is rare) and logs a WARNING when its publish pushes the oldest message out.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from celery import Task

from ..broker.destination import origin_queue
from ..broker.headers import REPLAYS_HEADER, TOKEN_REFRESHES_HEADER, uncounted, without_death
from ..broker.publish import RetryPublisher, publish_delayed, publisher_for
from ..broker.requeue import requeue_if_transient
from ..broker.topology import DESTINATION_HEADER
from ..errors import PublishFailed
from ..metrics import decisions
from ..redact import redact

logger = logging.getLogger(__name__)

REASON_HEADER = "dlx_parked_reason"
PARKED_AT_HEADER = "dlx_parked_at"
ERROR_HEADER = "dlx_error"
ERROR_MESSAGE_HEADER = "dlx_error_message"
#: Headers that describe one stay in the lot; a replay removes them.
PARKING_HEADERS = frozenset({REASON_HEADER, PARKED_AT_HEADER, ERROR_HEADER, ERROR_MESSAGE_HEADER})
#: Reason of a task that used up ``max_retries``.
MAX_RETRIES = "max_retries"
#: Reason listed for a message that came through the alternate exchange.
UNROUTABLE = "unroutable"
#: Longest error message kept in a header.
MESSAGE_LIMIT = 1000


def park(task: Task, exc: BaseException | None, reason: str) -> bool:
    """Publish the current delivery of ``task`` to the parking lot, with ``exc`` recorded.

    Returns True once the broker confirmed it; False when parking is off (``dlx_park=False``),
    the task is not running in a worker (called directly or eagerly), or the publish failed
    (logged).  A failed publish of an ``acks_late`` task requeues the delivery instead
    (``Reject(requeue=True)``), so the message is never lost; otherwise the task fails as it
    would have without parking.
    """
    request = task.request
    if request.called_directly or request.is_eager:
        return False
    publisher = publisher_for(task.app)
    if not publisher.settings.park:
        return False
    headers = failure_headers(exc, reason, time.time())
    destination = origin_queue(task)
    full = _full_lot(publisher, destination)
    try:
        with uncounted(request):
            publish_delayed(
                task.app, destination, 0, delivery=task, parking=True, dlx_headers=headers, exc=exc, max_retries=request.retries + 1
            )
    except Exception as error:
        _park_failed(task, error)
        return False
    decisions.parked(task, reason)
    logger.warning(
        "%s[%s] parked in %s (%s): %s",
        task.name,
        request.id,
        publisher.topology.parking_queue.name,
        reason,
        headers[ERROR_MESSAGE_HEADER],
        extra=decisions.park_fields(task, reason, destination, headers[ERROR_HEADER], headers[ERROR_MESSAGE_HEADER]),
    )
    if full is not None:
        logger.warning(
            "parking lot %s is full (%d messages, dlx_parking_max_messages=%d): RabbitMQ dropped its oldest "
            "message to keep %s[%s]; replay or purge the lot, or raise the limit",
            publisher.topology.parking_queue.name,
            full,
            publisher.settings.parking_max_messages,
            task.name,
            request.id,
        )
    return True


def _full_lot(publisher: RetryPublisher, destination: str) -> int | None:
    """The lot's depth when parking one more message drops its oldest (None: it does not, the
    lot has no length limit, or the depth could not be asked, which must not stop the park).

    Asked before the publish: afterwards a depth equal to the limit could mean "just filled"
    as well as "dropped one".  A consumer draining the lot meanwhile can make it a false alarm.
    """
    limit = publisher.settings.parking_max_messages
    if limit is None:
        return None
    try:
        depth = publisher.queue_depth(publisher.topology.parking_queue.name, destination)
    except Exception as error:
        logger.debug("could not ask the parking lot's depth: %r", error)
        return None
    return depth if depth >= limit else None


def _park_failed(task: Task, error: BaseException) -> None:
    cause = error.cause if isinstance(error, PublishFailed) else error
    requeue_if_transient(task, RuntimeError(f"{task.name}[{task.request.id}] could not be parked: {cause!r}"), cause)
    logger.error("%s[%s] could not be parked and fails without it: %r", task.name, task.request.id, cause)


def failure_headers(exc: BaseException | None, reason: str, now: float) -> dict[str, Any]:
    """The headers recording why a message was parked."""
    if exc is None:
        error, message = "", f"{reason}"
    else:
        kind = type(exc)
        error = f"{kind.__module__}.{kind.__qualname__}"
        message = redact(str(exc))[:MESSAGE_LIMIT]
    return {REASON_HEADER: reason, ERROR_HEADER: error, ERROR_MESSAGE_HEADER: message, PARKED_AT_HEADER: now}


@dataclass(frozen=True)
class ParkedMessage:
    """What ``celery dlx parked`` shows of one message in the lot."""

    task: str
    id: str
    retries: int | None
    reason: str
    error: str
    message: str
    parked_at: float | None
    queue: str | None
    replays: int

    @classmethod
    def from_headers(cls, headers: Mapping[str, Any] | None, correlation_id: str | None = None) -> ParkedMessage:
        """Read a parked message from its AMQP headers (any message: foreign ones too)."""
        h = dict(headers or {})
        parked_at = h.get(PARKED_AT_HEADER)
        return cls(
            task=header_text(h.get("task")) or "(not a Celery task)",
            id=header_text(h.get("id")) or header_text(correlation_id),
            retries=_count(h.get("retries")),
            reason=header_text(h.get(REASON_HEADER)) or UNROUTABLE,
            error=header_text(h.get(ERROR_HEADER)),
            message=redact(header_text(h.get(ERROR_MESSAGE_HEADER)))[:MESSAGE_LIMIT],
            parked_at=float(parked_at) if isinstance(parked_at, (int, float)) and not isinstance(parked_at, bool) else None,
            queue=header_text(h.get(DESTINATION_HEADER)) or None,
            replays=_count(h.get(REPLAYS_HEADER)) or 0,
        )

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class ParkedFilter:
    """Which parked messages an operation applies to: those whose task name, reason, origin
    work queue and id equal every field given (None: any).

    Read from the headers alone, without building a :class:`ParkedMessage` (no redaction),
    so a sweep over a large lot pays a few dictionary look-ups per message.
    """

    task: str | None = None
    reason: str | None = None
    queue: str | None = None
    task_id: str | None = None

    @property
    def everything(self) -> bool:
        return self.task is None and self.reason is None and self.queue is None and self.task_id is None

    def matches(self, headers: Mapping[str, Any] | None, correlation_id: str | None = None) -> bool:
        """Whether a message with these headers is selected."""
        h = headers or {}
        return (
            (self.task is None or header_text(h.get("task")) == self.task)
            and (self.reason is None or (header_text(h.get(REASON_HEADER)) or UNROUTABLE) == self.reason)
            and (self.queue is None or header_text(h.get(DESTINATION_HEADER)) == self.queue)
            and (self.task_id is None or (header_text(h.get("id")) or header_text(correlation_id)) == self.task_id)
        )


def header_text(value: Any) -> str:
    """A header value as text ('' for none): AMQP tables may carry strings as bytes."""
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return "" if value is None else str(value)


def _count(value: Any) -> int | None:
    """An integer header value, or None (a bool is not a count)."""
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def replayed_headers(headers: Mapping[str, Any] | None, *, reset_retries: bool) -> dict[str, Any]:
    """Headers of a parked message sent back to work: the stay in the lot and the dead-letter
    history removed, the replay counted, the token-refresh count dropped (a replay follows a
    fix, such as the user authorizing again), and the retry count reset to 0 if asked."""
    out = {
        k: v for k, v in without_death(headers).items() if k not in PARKING_HEADERS and k != TOKEN_REFRESHES_HEADER
    }
    out[REPLAYS_HEADER] = (_count(out.get(REPLAYS_HEADER)) or 0) + 1
    if reset_retries and "retries" in out:
        out["retries"] = 0
    return out
