"""Exceptions raised by celery_dlx.

Kept in a leaf module so every other module (pure or broker-facing) can raise them
without import cycles.
"""

from __future__ import annotations

from collections.abc import Sequence


class CeleryDLXError(Exception):
    """Base class of every error celery_dlx raises on purpose."""


class Deferred(CeleryDLXError):
    """Base of the reasons a task waits without using up a retry (a rate limit's or a circuit
    breaker's "not yet"): metrics and the retry log count these as deferrals, not retries.

    ``deferred_by`` says which mechanism (``ratelimit``, ``breaker``), :attr:`deferred_name`
    which limit or breaker.
    """

    deferred_by = "other"

    @property
    def deferred_name(self) -> str:
        """The limit or breaker that said "not yet"."""
        return ""


class ConfigurationError(CeleryDLXError, ValueError):
    """A celery_dlx setting has a value the library cannot work with."""


class TopologyMismatch(CeleryDLXError):
    """The broker already has an entity declared with other arguments than celery_dlx expects.

    RabbitMQ answers such a declare with PRECONDITION_FAILED and closes the channel; a worker
    that keeps retrying would loop on that stack trace.  This error names every entity that
    differs, once, so an operator can fix it (delete the entity, or align the settings).
    """

    def __init__(self, mismatches: Sequence[tuple[str, str]], hints: Sequence[str] | None = None) -> None:
        self.mismatches = list(mismatches)
        #: Fixes specific to some of the mismatches (the parking lot's retention), shown first.
        self.hints = list(hints or [])
        lines = [f"  - {entity}: {detail}" for entity, detail in self.mismatches]
        fixes = "".join(f"\nFix: {hint}" for hint in self.hints)
        super().__init__(
            "the broker's topology differs from what celery_dlx expects:\n"
            + "\n".join(lines)
            + fixes
            + "\nDelete the listed entities (they are re-created on the next declare) or change the "
            "celery_dlx settings back to the values they were declared with."
            + (" The parking queue is the exception: see the fix above." if self.hints else "")
        )


class RetryPublishError(CeleryDLXError):
    """A delayed retry could not be confirmed by the broker.

    Raised instead of letting the retry vanish: the task fails loudly (acks_late off) or its
    delivery is requeued (acks_late on).
    """


class PublishFailed(RetryPublishError):
    """:func:`~celery_dlx.broker.publish.publish_delayed` could not get the broker to confirm a
    message; ``cause`` is why (unreachable broker, a return as unroutable, no confirm, the error
    Celery wrapped in ``Reject``)."""

    def __init__(self, message: str, cause: BaseException | None) -> None:
        super().__init__(message)
        self.cause = cause
