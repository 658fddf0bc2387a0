"""One broker connection per request, and a clear error page when RabbitMQ cannot be reached.

A dashboard is most needed when something is wrong, so a broker that is down must not take
the server down: the page says which broker did not answer (its URI without the password) and
the next request tries again.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from celery import Celery
from kombu import Connection

from ..errors import CeleryDLXError


class Unreachable(CeleryDLXError):
    """A service the page needs did not answer; ``what`` names it for the page."""

    def __init__(self, what: str, cause: BaseException) -> None:
        super().__init__(f"{what} did not answer: {cause!r}")
        self.what = what
        self.cause = cause


@contextmanager
def broker(app: Celery) -> Iterator[Connection]:
    """The app's broker connection, released afterwards; :class:`Unreachable` if it cannot be
    established or breaks while in use."""
    connection = app.connection_for_write()
    what = f"RabbitMQ at {connection.as_uri()}"  # as_uri() masks the password
    errors = (*connection.connection_errors, OSError)
    try:
        try:
            connection.ensure_connection(max_retries=1, interval_start=0.2, interval_step=0.2)
        except Exception as exc:
            raise Unreachable(what, exc) from exc
        try:
            yield connection
        except errors as exc:
            raise Unreachable(what, exc) from exc
    finally:
        connection.release()
