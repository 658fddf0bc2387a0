"""Every ``retry(**options)`` of Celery behaves with DLXTask as with Celery's own Task.

One real worker runs both tasks of :mod:`.retry_options_app` for every case; each case is
then compared: the final state and result, what the task's code saw of the retried message
(headers, expiry, priority, limits, links, …), how many times it ran, and for the cases that
send the retry to another queue, where the broker holds it (read with pika, independently of
Celery and celery_dlx).  The options DLXTask refuses fail with an error naming the option.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import pika
import pytest
from celery.result import AsyncResult

from .conftest import DLXEnv
from .retry_options_app import CASES, DIFFERS, ELSEWHERE, REFUSED

pytestmark = [pytest.mark.integration, pytest.mark.compat]
KINDS = {"celery": "it.options.celery", "dlx": "it.options.dlx"}
#: A case's outcome is read once nothing changed for this long.
SETTLE = 2.5
SENT_HEADERS = {"x-sent": "by-the-test"}


def _snapshot(dlx: DLXEnv, result: AsyncResult, key: str) -> dict[str, Any]:
    state = result.state
    value = result.result
    if isinstance(value, BaseException):
        shown: Any = {"error": type(value).__name__}
        if isinstance(value, KeyError) or type(value).__name__ == "ConfigurationError":
            shown["message"] = str(value)
    else:
        shown = value
    runs = [json.loads(raw)["retries"] for raw in dlx.store.lrange(key, 0, -1)]
    return {"state": state, "result": shown, "runs": runs}


def _drain(observer: pika.BlockingConnection, queue: str) -> dict[str, int]:
    """Task id -> ``retries`` of every message waiting in ``queue`` (taken off it)."""
    channel = observer.channel()
    found = {}
    try:
        while True:
            method, properties, _ = channel.basic_get(queue, auto_ack=True)
            if method is None:
                return found
            headers = properties.headers or {}
            found[str(headers.get("id"))] = int(headers.get("retries", -1))
    finally:
        channel.close()


@pytest.fixture(scope="module")
def outcomes(make_module_env: Callable[..., DLXEnv], observer: pika.BlockingConnection) -> dict[str, dict[str, Any]]:
    """``"<kind>:<case>"`` -> outcome, for every case run by both tasks on one worker."""
    dlx = make_module_env(extra_queues=1, consume=["main"])
    sent = {}
    for case in CASES:
        for kind, name in KINDS.items():
            key = dlx.key()
            result = dlx.app.tasks[name].apply_async((case, key), headers=SENT_HEADERS)
            sent[f"{kind}:{case}"] = (result, key)
    deadline, last, stable_since = time.monotonic() + 60, None, time.monotonic()
    while time.monotonic() < deadline:
        now = {label: _snapshot(dlx, result, key) for label, (result, key) in sent.items()}
        if now != last:
            last, stable_since = now, time.monotonic()
        elif time.monotonic() - stable_since >= SETTLE:
            break
        time.sleep(0.25)
    assert last is not None
    waiting = _drain(observer, dlx.queues[1])
    for label, (result, _) in sent.items():
        last[label]["waiting_in_other_queue"] = waiting.get(result.id)
    return last


@pytest.mark.parametrize("case", [c for c in CASES if c not in REFUSED and c not in DIFFERS])
def test_retry_option_behaves_as_with_celery(outcomes: dict[str, dict[str, Any]], case: str) -> None:
    celery, dlx = outcomes[f"celery:{case}"], outcomes[f"dlx:{case}"]
    assert dlx == celery
    if case in ELSEWHERE:
        assert dlx["waiting_in_other_queue"] == 1, "the retry must wait in the queue the options named"


def test_retried_request_shows_the_callers_headers_only(outcomes: dict[str, dict[str, Any]]) -> None:
    """No x-death, x-first-death-*, dlx_queue or dlx_due in request.headers, as with Celery."""
    assert outcomes["dlx:no options"]["result"]["headers"] == SENT_HEADERS
    assert outcomes["dlx:headers"]["result"]["headers"] == outcomes["celery:headers"]["result"]["headers"]


def test_a_retry_whose_expiry_passes_while_it_waits_is_revoked_not_run(outcomes: dict[str, dict[str, Any]]) -> None:
    outcome = outcomes["dlx:expires before it is due"]
    assert outcome["state"] == "REVOKED"
    assert outcome["runs"] == [0]


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_refused_options_fail_with_an_error_naming_the_option(outcomes: dict[str, dict[str, Any]], case: str) -> None:
    outcome = outcomes[f"dlx:{case}"]
    assert outcome["state"] == "FAILURE"
    assert outcome["result"]["error"] == "ConfigurationError"
    option = case.split("=")[0].split()[0]
    assert option in outcome["result"]["message"]
    assert outcome["runs"] == [0]
