"""The structured log line of each retry decision, the reasons counted, and the counter buffer."""

from __future__ import annotations

import logging
from types import SimpleNamespace
from typing import Any

import pytest

from celery_dlx.breaker.tasks import BreakerOpen
from celery_dlx.classify import Verdict, VerdictKind
from celery_dlx.metrics import counters, decisions
from celery_dlx.networks import CallDeferred
from celery_dlx.ratelimit import Throttled


def task(conf: dict[str, Any] | None = None, retries: int = 2) -> Any:
    """What the decisions read of a task: its name, request and app configuration (no Redis)."""
    return SimpleNamespace(
        name="proj.sync", request=SimpleNamespace(id="abc-1", retries=retries), app=SimpleNamespace(conf=conf or {})
    )


def fields(record: logging.LogRecord) -> dict[str, Any]:
    return {k: v for k, v in vars(record).items() if k.startswith("dlx_")}


def test_a_retry_is_logged_at_info_with_its_fields_in_extra(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="celery_dlx.decisions"):
        decisions.retry_published(task(), ValueError("boom"), attempt=3, delay=1.25, planned=1.3, queue="social.fb")
    [record] = caplog.records
    assert record.levelno == logging.INFO
    assert fields(record) == {
        "dlx_event": "retry", "dlx_task": "proj.sync", "dlx_task_id": "abc-1", "dlx_attempt": 3, "dlx_delay": 1.25,
        "dlx_planned": 1.3, "dlx_reason": "ValueError", "dlx_queue": "social.fb",
    }  # fmt: skip
    assert record.getMessage() == "proj.sync[abc-1] retry (attempt 3, ValueError): back in 1.300 s (asked 1.250 s) in queue social.fb"


@pytest.mark.parametrize(
    ("exc", "event", "reason"),
    [
        (Throttled("twitter-token", 2.0), "deferral", "ratelimit:twitter-token"),
        (Throttled(None, 5.0), "deferral", "ratelimit:(storage unavailable)"),
        (BreakerOpen("facebook", "open", 3.0), "deferral", "breaker:facebook"),
        (CallDeferred.from_verdict(Verdict(VerdictKind.RATE_LIMITED, "429")), "retry", "rate_limited"),
        (None, "retry", "none"),
    ],
)
def test_deferrals_and_verdicts_are_told_apart(
    caplog: pytest.LogCaptureFixture, exc: BaseException | None, event: str, reason: str
) -> None:
    with caplog.at_level(logging.INFO, logger="celery_dlx.decisions"):
        decisions.retry_published(task(), exc, attempt=2, delay=2.0, planned=2.0, queue="q")
    [record] = caplog.records
    assert (fields(record)["dlx_event"], fields(record)["dlx_reason"]) == (event, reason)


def test_the_park_line_carries_the_same_fields_and_the_error() -> None:
    extra = decisions.park_fields(task(retries=5), "max_retries", "social.fb", "builtins.ValueError", "boom")
    assert extra == {
        "dlx_event": "park", "dlx_task": "proj.sync", "dlx_task_id": "abc-1", "dlx_attempt": 5,
        "dlx_reason": "max_retries", "dlx_queue": "social.fb", "dlx_error": "builtins.ValueError", "dlx_error_message": "boom",
    }  # fmt: skip


def test_nothing_is_recorded_without_redis_or_with_metrics_off() -> None:
    assert counters.recorder_for({}) is None
    assert counters.recorder_for({"result_backend": "rpc://"}) is None
    assert counters.recorder_for({"result_backend": "redis://h:6379/0", "dlx_metrics": False}) is None
    recorder = counters.recorder_for({"result_backend": "redis://h:6379/0", "dlx_prefix": "app1"})
    assert recorder is not None and (recorder.url, recorder.prefix) == ("redis://h:6379/0", "celery_dlx:metrics:app1")
    assert counters.recorder_for({"dlx_metrics_url": "redis://m/1", "dlx_metrics_prefix": "x"}).prefix == "x"  # type: ignore[union-attr]


@pytest.mark.parametrize(("seconds", "bucket"), [(0.05, "1.0"), (1.0, "1.0"), (1.001, "5.0"), (3600.0, "3600.0"), (1e9, "+Inf")])
def test_planned_delays_fall_in_the_bucket_of_their_upper_bound(seconds: float, bucket: str) -> None:
    assert counters.bucket_of(seconds) == bucket


def test_a_buffer_redis_did_not_take_is_kept_for_the_next_flush() -> None:
    recorder = counters.Recorder("redis://127.0.0.1:1/0", "t")  # nothing listens on port 1
    recorder.add(counters.RETRIES, ("proj.sync", "ValueError"), counters.RETRIES)
    recorder.observe_delay("retry", 2.5)
    assert recorder.flush() is False
    assert recorder.flush() is False  # still there after a second failed attempt
    with recorder._flushing:  # the background flusher tries too: not in the middle of one
        assert recorder._counts[counters.field(counters.RETRIES, "proj.sync", "ValueError")] == 1
        assert recorder._sums[counters.field(counters.DELAY_SUM, "retry")] == 2.5
        assert sum(recorder._minutes.values()) == 1
