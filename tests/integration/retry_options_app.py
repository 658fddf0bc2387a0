"""Tasks that retry once with one of Celery's ``retry(**options)``, for comparing DLXTask with
Celery's own Task on the same worker.

``it.options.celery`` (Celery's Task) and ``it.options.dlx`` (DLXTask) have the same body: on
the first delivery they call ``self.retry`` with the options of a case of :data:`CASES`; on the
second they return what the task's code sees of the retried message (:func:`observe`).  The
test compares the two outcomes case by case.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any

from celery import Celery, Task
from celery.utils.time import maybe_iso8601

from celery_dlx import DLXTask


def _other_queue(app: Celery) -> str:
    """The second work queue, which the worker of these tests does not consume."""
    return list(app.amqp.queues)[1]


#: case -> (countdown of the retry, its options built in the worker from the app).
CASES: dict[str, tuple[float | None, Callable[[Celery], dict[str, Any]]]] = {
    "no options": (0.2, lambda app: {}),
    "headers": (0.2, lambda app: {"headers": {"x-case": "replaced"}}),
    "expires in 60 s": (0.2, lambda app: {"expires": 60}),
    "expires as datetime": (0.2, lambda app: {"expires": datetime.now(timezone.utc) + timedelta(seconds=60)}),
    "expires=None": (0.2, lambda app: {"expires": None}),
    "expires before it is due": (1.0, lambda app: {"expires": 0.3}),
    "eta": (None, lambda app: {"eta": datetime.now(timezone.utc) + timedelta(seconds=0.2)}),
    "priority": (0.2, lambda app: {"priority": 7}),
    "time limits": (0.2, lambda app: {"time_limit": 30, "soft_time_limit": 20}),
    "shadow": (0.2, lambda app: {"shadow": "shadowed.name"}),
    "kwargs": (0.2, lambda app: {"kwargs": {"extra": "new"}}),
    "args": (0.2, lambda app: {"args": ("changed", app.current_worker_task.request.args[1])}),
    "link": (0.2, lambda app: {"link": app.signature("it.options.callback")}),
    "link_error": (0.2, lambda app: {"link_error": app.signature("it.options.callback")}),
    "delivery_mode transient": (0.2, lambda app: {"delivery_mode": 1}),
    "delivery_mode persistent": (0.2, lambda app: {"delivery_mode": "persistent"}),
    "mandatory=True": (0.2, lambda app: {"mandatory": True}),
    "serializer json": (0.2, lambda app: {"serializer": "json"}),
    "compression": (0.2, lambda app: {"compression": "zlib"}),
    "declare": (0.2, lambda app: {"declare": [app.amqp.queues[_other_queue(app)]]}),
    "confirm_timeout": (0.2, lambda app: {"confirm_timeout": 10}),
    "retry policy": (0.2, lambda app: {"retry": True, "retry_policy": {"max_retries": 2}}),
    "exchange_type": (0.2, lambda app: {"exchange_type": "direct"}),
    "ignore_result": (0.2, lambda app: {"ignore_result": True}),
    "throw=False": (0.2, lambda app: {"throw": False}),
    "max_retries exceeded": (0.2, lambda app: {"max_retries": 0}),
    "exc when exceeded": (0.2, lambda app: {"max_retries": 0, "exc": KeyError("gone for good")}),
    "queue": (0.2, lambda app: {"queue": _other_queue(app)}),
    "exchange and routing_key": (0.2, lambda app: {"exchange": list(app.amqp.queues.values())[1].exchange.name,
                                                    "routing_key": _other_queue(app)}),
    # Refused by DLXTask (they would bypass the confirmed, mandatory JSON publish):
    "mandatory=False": (0.2, lambda app: {"mandatory": False}),
    "serializer pickle": (0.2, lambda app: {"serializer": "pickle"}),
}
#: Cases DLXTask refuses with ConfigurationError where Celery's Task goes on.
REFUSED = {"mandatory=False", "serializer pickle"}
#: Cases where DLXTask does better than Celery, so the outcomes differ, and why.
DIFFERS = {
    "expires before it is due": (
        "Celery also gives the retry a per-message TTL: a retry that waits in the work queue past its "
        "expiry (here: behind the prefetch limit) is dropped by RabbitMQ and its state stays RETRY; "
        "DLXTask's arrives when due and is REVOKED"
    ),
}
#: Cases whose retry goes to the queue this test's worker does not consume.
ELSEWHERE = {"queue", "exchange and routing_key"}


def observe(task: Task, extra: Any) -> dict[str, Any]:
    """What the task's code sees of its retried delivery, in JSON (time as seconds from now)."""
    request = task.request
    expires = request.expires
    if expires is not None:
        expires = round((maybe_iso8601(expires) - datetime.now(timezone.utc)).total_seconds(), -1)
    return {
        "retries": request.retries,
        "args": list(request.args)[:1],  # the second is the test's key, unique per task
        "extra": extra,
        "headers": request.headers,
        "expires_in": expires,
        "priority": (request.delivery_info or {}).get("priority"),
        "timelimit": list(request.timelimit or ()),
        "shadow": request.shadow,
        "callbacks": [s["task"] for s in request.callbacks or ()],
        "errbacks": [s["task"] for s in request.errbacks or ()],
    }


def register(app: Celery, record: Callable[[Task, str], None]) -> None:
    """Add the two retrying tasks and the callback the ``link`` cases name; ``record`` counts
    each delivery under the Redis key the test gives."""

    def body(task: Task, case: str, key: str, extra: Any = None) -> Any:
        record(task, key)
        if task.request.retries:
            return observe(task, extra)
        countdown, build = CASES[case]
        options = build(task.app)
        throw = options.pop("throw", True)
        task.retry(countdown=countdown, max_retries=options.pop("max_retries", 1), throw=throw, **options)
        return "returned after retry(throw=False)"

    @app.task(shared=False, bind=True, name="it.options.celery")
    def celery_task(self: Task, case: str, key: str, extra: Any = None) -> Any:
        return body(self, case, key, extra)

    @app.task(shared=False, bind=True, base=DLXTask, name="it.options.dlx")
    def dlx_task(self: DLXTask, case: str, key: str, extra: Any = None) -> Any:
        return body(self, case, key, extra)

    @app.task(shared=False, name="it.options.callback")
    def callback(*args: Any) -> None:
        """Named by the link cases; its runs are not what is compared."""
