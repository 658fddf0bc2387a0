"""What the parking-lot pages show: a filtered, paginated window on the lot, and one message's
arguments, redacted.

AMQP 0-9-1 cannot peek or seek: a listing receives the first ``browse_limit`` messages, reads
them and gives them all back (:meth:`~..parking.lot.ParkingLot.browse_messages`), then filters
and pages in memory with the same :class:`~..parking.park.ParkedFilter` a replay or delete
uses.  The page says when the lot holds more than the window.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from amqp import Message
from kombu.exceptions import ContentDisallowed, DecodeError
from kombu.serialization import loads

from ..parking.lot import parked_message
from ..parking.park import ParkedFilter, ParkedMessage
from ..redact import redact_value

#: Only JSON bodies are decoded for display: a dashboard must never unpickle what it reads.
ACCEPT = {"application/json"}


@dataclass
class LotPage:
    """One page of the lot as filtered: ``rows`` of ``matching`` messages, of ``looked_at``
    browsed, of ``total`` parked; ``choices`` lists each filter field's values seen."""

    total: int
    looked_at: int
    matching: list[ParkedMessage]
    page: int
    page_size: int
    choices: dict[str, list[str]] = field(default_factory=dict)

    @property
    def pages(self) -> int:
        return max(1, -(-len(self.matching) // self.page_size))

    @property
    def rows(self) -> list[ParkedMessage]:
        start = (self.page - 1) * self.page_size
        return self.matching[start : start + self.page_size]

    @property
    def partial(self) -> bool:
        """Whether the lot holds messages the window did not look at."""
        return self.total > self.looked_at


def lot_page(total: int, messages: list[Message], where: ParkedFilter, page: int, page_size: int) -> LotPage:
    """The page ``page`` (from 1) of ``messages`` that ``where`` selects."""
    parked = [parked_message(m) for m in messages if selected(m, where)]
    everything = [parked_message(m) for m in messages]
    choices = {
        "task": sorted({p.task for p in everything}),
        "reason": sorted({p.reason for p in everything}),
        "queue": sorted({p.queue for p in everything if p.queue}),
    }
    shown = LotPage(total, len(messages), parked, 1, page_size, choices)
    shown.page = min(max(page, 1), shown.pages)
    return shown


def selected(message: Message, where: ParkedFilter) -> bool:
    properties = message.properties
    return where.matches(properties.get("application_headers"), properties.get("correlation_id"))


def arguments(message: Message) -> str:
    """The task's positional and keyword arguments as indented JSON, credentials redacted.

    Celery's message protocol 2 body is ``[args, kwargs, embed]``; protocol 1's is a dict with
    ``args`` and ``kwargs``.  Bodies in another serializer are not decoded.
    """
    properties = message.properties
    try:
        body = loads(message.body, properties.get("content_type"), properties.get("content_encoding"), accept=ACCEPT)
    except ContentDisallowed:
        return f"(not shown: the body is {properties.get('content_type')}, only JSON is decoded)"
    except DecodeError as exc:
        return f"(not shown: the body does not decode: {exc})"
    if isinstance(body, list) and len(body) >= 2:
        shown = {"args": body[0], "kwargs": body[1]}
    elif isinstance(body, dict):
        shown = {"args": body.get("args"), "kwargs": body.get("kwargs")}
    else:
        shown = {"body": body}
    return json.dumps(redact_value(shown), indent=2, sort_keys=True, default=str)
