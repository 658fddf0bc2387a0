"""A ``requests`` session whose timeouts never outlast the running task's soft time limit.

Use one per process, as with any session (it pools connections); each request reads the
task that is running when it is made (``celery.current_task``)::

    http = TimedSession(connect=3.05, read=30)

    @app.task(bind=True, base=SoftLimitTask, soft_time_limit=60, time_limit=70)
    def fetch_profile(self, account_id):
        return http.get(f"https://api.example.com/users/{account_id}").json()

Each connect and read waits at most its cap and at most the time left before the soft limit
less ``margin``.  When that bound is what cut a wait short, or no time is left to start a
request, :class:`~celery_dlx.softlimit.task.SoftLimitReached` is raised — a
``SoftTimeLimitExceeded``, so :class:`~celery_dlx.softlimit.task.SoftLimitRetry` retries the task
through the broker, in pools where the soft limit's signal cannot interrupt a socket (threads,
gevent, eventlet) as in prefork.  A timeout within the caps stays ``requests.Timeout``.

The read timeout bounds each wait for data, not the whole body: a server that trickles bytes
is still stopped by the soft limit itself (prefork), not by this session.

Needs ``requests`` (not a dependency of celery_dlx itself).
"""

from __future__ import annotations

from typing import Any, Literal
from urllib.parse import urlsplit

import requests
from celery import current_task

from .http_timeouts import http_timeouts
from .task import SoftLimitReached, remaining_soft_time, start_clock


class TimedSession(requests.Session):
    """``requests.Session`` with connect/read caps bounded by the current task's soft limit.

    A request's own ``timeout=`` (seconds or ``(connect, read)``) replaces the caps for that
    request; it is still bounded by the soft limit.
    """

    def __init__(self, connect: float = 3.05, read: float = 30.0, margin: float = 1.0) -> None:
        http_timeouts(connect, read, None, margin)  # validates the values
        start_clock()
        super().__init__()
        self.connect_timeout = connect
        self.read_timeout = read
        self.margin = margin

    def request(self, method: str, url: str, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        connect, read = self._caps(kwargs.pop("timeout", None))
        task = current_task._get_current_object()
        limits = http_timeouts(connect, read, remaining_soft_time(task) if task else None, self.margin)
        where = f"{method} {urlsplit(url).netloc}"  # no path or query: they may hold tokens
        if limits is None:
            raise SoftLimitReached(f"no time left before the soft time limit to start {where}")
        try:
            return super().request(method, url, timeout=limits.as_tuple(), **kwargs)
        except requests.Timeout as exc:
            phase: Literal["connect", "read"] = "connect" if isinstance(exc, requests.ConnectTimeout) else "read"
            if limits.set_by_limit(phase):
                raise SoftLimitReached(
                    f"{where}: {phase} timed out after {limits.budget:.2f} s, the time left before the soft time limit"
                ) from exc
            raise

    def _caps(self, timeout: float | tuple[float, float] | None) -> tuple[float, float]:
        if timeout is None:
            return (self.connect_timeout, self.read_timeout)
        if isinstance(timeout, tuple):
            return timeout
        return (timeout, timeout)
