"""The Celery app the reliability tests run in a real worker, configured by environment variables
so the test process and the worker subprocess build the same app:

DLX_REL_BROKER      broker URL(s); several separated by ";" for failover (kombu alternates)
DLX_REL_REDIS       Redis URL for the arrival/effect records and the idempotency keys
DLX_REL_PREFIX      dlx_prefix (one topology per test)
DLX_REL_QUEUE       the work queue
DLX_REL_QUEUE_TYPE  classic | quorum delay queues;  DLX_REL_WORK_QUEUE_TYPE the same for the work queue
DLX_REL_ACKS_LATE   1 | 0;  DLX_REL_PREFETCH worker_prefetch_multiplier
DLX_REL_IDEMPOTENT  1: the side effect goes through celery_dlx.idempotency
DLX_REL_LEASE       idempotency lease in seconds
DLX_REL_REDACT      1: attach celery_dlx.redact.RedactingFilter to the worker's log handlers

Records (Redis, all under the test's run key ``run``): ``run:first`` (first attempt time per
task, HSETNX), ``run:arrived`` (first time the retry arrived, HSETNX), ``run:early`` (arrivals
before the ``dlx_due`` header), ``run:runs`` (executions per task), ``run:effects`` (side
effects per task: > 1 is a duplicate), ``run:outcome`` (the error a bad-input task failed with).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Mapping
from typing import Any

import redis
from celery import Celery, Task, signals
from celery.exceptions import Retry
from kombu import Queue

from celery_dlx import DLXTask
from celery_dlx.idempotency import Idempotency, InProgress

REDIS_URL = os.environ.get("DLX_REL_REDIS", "redis://127.0.0.1:6379/0")


class _Unserializable:
    def __repr__(self) -> str:
        return "<_Unserializable>"


def unserializable(kind: str) -> Any:
    """Values the JSON serializer cannot encode."""
    if kind == "object":
        return _Unserializable()
    if kind == "set":
        return {1, 2, 3}
    if kind == "complex":
        return 1 + 2j
    if kind == "function":
        return unserializable
    if kind == "recursive":
        loop: list[Any] = []
        loop.append(loop)
        return loop
    if kind == "exception":
        return RuntimeError("not JSON")
    raise ValueError(kind)


def decode_delay(spec: Mapping[str, Any]) -> Any:
    """A delay as the test meant it: JSON cannot carry NaN/inf or a str-vs-number distinction
    reliably, so the test sends ``{"type": ..., "value": ...}``."""
    kind, value = spec["type"], spec["value"]
    if kind == "float":
        return float(value)
    if kind == "int":
        return int(value)
    if kind == "none":
        return None
    return value  # str, list, dict: passed through as given


def make_app(env: Mapping[str, str]) -> Celery:
    queue = env["DLX_REL_QUEUE"]
    work_args = {"x-queue-type": "quorum"} if env.get("DLX_REL_WORK_QUEUE_TYPE") == "quorum" else None
    app = Celery("dlx_rel", broker=env["DLX_REL_BROKER"], set_as_current=False)
    app.conf.update(
        dlx_prefix=env["DLX_REL_PREFIX"],
        dlx_queue_type=env.get("DLX_REL_QUEUE_TYPE", "classic"),
        dlx_confirm_timeout=float(env.get("DLX_REL_CONFIRM_TIMEOUT", "15")),
        task_queues=[Queue(queue, routing_key=queue, queue_arguments=work_args)],
        task_default_queue=queue,
        task_acks_late=env.get("DLX_REL_ACKS_LATE", "1") == "1",
        # A pool child killed by SIGKILL: requeue its delivery instead of acking it as failed
        # (with acks_late, Celery's default False would lose the task).
        task_reject_on_worker_lost=True,
        task_ignore_result=True,
        task_serializer="json",
        accept_content=["json"],
        worker_prefetch_multiplier=int(env.get("DLX_REL_PREFETCH", "4")),
        worker_hijack_root_logger=True,
        broker_connection_retry=True,
        broker_connection_retry_on_startup=True,
        broker_connection_max_retries=None,
        broker_failover_strategy="round-robin",
        broker_transport_options={"max_retries": 10, "interval_start": 0.5, "interval_step": 1, "interval_max": 3},
    )
    store = redis.Redis.from_url(env.get("DLX_REL_REDIS", REDIS_URL))
    idempotent = env.get("DLX_REL_IDEMPOTENT") == "1"
    once = Idempotency(store, prefix="dlxrel:once", ttl=3600, lease=float(env.get("DLX_REL_LEASE", "5")))
    work = float(env.get("DLX_REL_WORK_MS", "0")) / 1000

    @app.task(shared=False, bind=True, base=DLXTask, name="rel.flow", max_retries=100)
    def flow(self: DLXTask, run: str, i: int, countdown: float) -> None:
        """Fails once, retried after ``countdown`` s through the delay queues; then does its
        side effect (once per task id, ideally)."""
        now = time.time()
        store.hincrby(f"{run}:runs", i, 1)
        if self.request.retries == 0:
            store.hsetnx(f"{run}:first", i, now)
            raise self.retry(countdown=countdown)
        due = self.request.get("dlx_due")
        pipe = store.pipeline(transaction=False)
        pipe.hsetnx(f"{run}:arrived", i, now)
        if isinstance(due, (int, float)) and now < due:
            pipe.hincrby(f"{run}:early", i, 1)
        pipe.execute()
        if work:
            time.sleep(work)
        if idempotent:
            try:
                with once.claim(f"{run}:{i}") as claim:
                    if claim:
                        claim.call("HINCRBY", f"{run}:effects", i, 1)
            except InProgress as exc:
                raise self.retry(countdown=exc.retry_after + 0.2, exc=exc) from exc
        else:
            store.hincrby(f"{run}:effects", i, 1)
        if work:
            time.sleep(work)

    def failing(self: Task, run: str, i: int, error: BaseException) -> None:
        store.hset(f"{run}:outcome", i, f"{type(error).__name__}: {error}")

    @app.task(shared=False, bind=True, base=DLXTask, name="rel.bad_delay")
    def bad_delay(self: DLXTask, run: str, i: int, spec: dict[str, Any]) -> None:
        """Retries with a delay that may be invalid; records the error it fails with."""
        store.hincrby(f"{run}:runs", i, 1)
        if self.request.retries > 0:
            store.hincrby(f"{run}:effects", i, 1)
            return
        try:
            raise self.retry(countdown=decode_delay(spec))
        except Retry:
            raise
        except Exception as error:  # recorded for the test, then re-raised
            failing(self, run, i, error)
            raise

    @app.task(shared=False, bind=True, base=DLXTask, name="rel.bad_args")
    def bad_args(self: DLXTask, run: str, i: int, kind: str) -> None:
        """Retries with an argument JSON cannot encode; records the error it fails with."""
        store.hincrby(f"{run}:runs", i, 1)
        try:
            raise self.retry(args=(run, i, unserializable(kind)), countdown=0.1)
        except Retry:
            raise
        except Exception as error:  # recorded for the test, then re-raised
            failing(self, run, i, error)
            raise

    @app.task(shared=False, bind=True, base=DLXTask, name="rel.pickled", serializer="pickle")
    def pickled(self: DLXTask, run: str, i: int) -> None:
        """A task configured for pickle: its retry must be refused, once, with a clear error."""
        store.hincrby(f"{run}:runs", i, 1)
        try:
            raise self.retry(countdown=0.1)
        except Retry:
            raise
        except Exception as error:  # recorded for the test, then re-raised
            failing(self, run, i, error)
            raise

    @app.task(shared=False, bind=True, base=DLXTask, name="rel.api_call")
    def api_call(self: DLXTask, run: str, i: int, access_token: str, countdown: float = 60.0) -> None:
        """Calls an API with a token in its arguments and fails with the URL in the error, as
        HTTP libraries do; retried after ``countdown``."""
        store.hincrby(f"{run}:runs", i, 1)
        if self.request.retries == 0:
            url = f"https://graph.facebook.com/v19.0/me/feed?access_token={access_token}"
            raise self.retry(exc=RuntimeError(f"503 Server Error for url: {url}"), countdown=countdown)
        store.hincrby(f"{run}:effects", i, 1)

    @app.task(shared=False, bind=True, name="rel.echo")
    def echo(self: Task, run: str, i: int) -> None:
        """Records that the worker is alive and consuming."""
        store.hincrby(f"{run}:runs", i, 1)
        store.hincrby(f"{run}:effects", i, 1)

    if env.get("DLX_REL_REDACT") == "1":
        from celery_dlx.redact import RedactingFilter

        def redact_handlers(logger: logging.Logger, **_: Any) -> None:
            for handler in logging.getLogger().handlers + logger.handlers:
                if not any(isinstance(f, RedactingFilter) for f in handler.filters):
                    handler.addFilter(RedactingFilter())

        signals.after_setup_logger.connect(redact_handlers, weak=False)
        signals.after_setup_task_logger.connect(redact_handlers, weak=False)

    return app


app = make_app(os.environ) if "DLX_REL_PREFIX" in os.environ else None
