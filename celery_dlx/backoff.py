"""Backoff policies are tenacity ``wait_*`` objects; this module asks them for a delay.

Pure policy: no Celery, no kombu.  A Celery retry is not a tenacity loop, so the state a wait
strategy looks at (the attempt number and the exception) is rebuilt from the task request.
Strategies that read the exception (a server's ``Retry-After``) see the real one.
"""

from __future__ import annotations

from collections.abc import Callable

from tenacity import RetryCallState

#: Anything tenacity accepts as ``wait=``: a ``wait_*`` object or a callable on the call state.
WaitStrategy = Callable[[RetryCallState], float]


def wait_seconds(wait: WaitStrategy, attempt: int, exc: BaseException | None = None) -> float:
    """Seconds ``wait`` asks for after failed attempt number ``attempt`` (1 = the first run).

    ``exc`` is the exception that attempt raised, if any, so exception-aware waits can use it.
    """
    if isinstance(attempt, bool) or not isinstance(attempt, int) or attempt < 1:
        raise ValueError(f"attempt must be a whole number >= 1, got {attempt!r}")
    state = RetryCallState(retry_object=None, fn=None, args=(), kwargs={})  # type: ignore[arg-type]
    state.attempt_number = attempt
    if exc is not None:
        state.set_exception((type(exc), exc, exc.__traceback__))
    return float(wait(state))
