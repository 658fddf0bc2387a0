"""Scenario 5: security.  JSON only (a pickle task's retry is refused once, with a clear error);
no broker password and no access token in the headers of a retry message; with
celery_dlx.redact's filter on the worker's log handlers, no token in the worker's log."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from kombu import Connection

from celery_dlx.testing.rabbitnode import RabbitNode
from celery_dlx.testing.worker import wait_until

from .conftest import PASSWORD, RelEnv, url_of

pytestmark = pytest.mark.reliability

#: Looks like a Facebook user access token (EAA…) and is unique to the run.
TOKEN = "EAAGm0PX4ZCpsBA" + uuid.uuid4().hex.upper()


def _alive(rel: RelEnv) -> bool:
    return rel.worker is not None and rel.worker.process is not None and rel.worker.process.poll() is None


def test_pickle_task_retry_is_refused_once_with_a_clear_error(
    node: RabbitNode, make_rel: Callable[..., RelEnv], report: Callable[..., None]
) -> None:
    started = time.monotonic()
    rel = make_rel(url_of(node), acks_late=True)
    rel.start_worker()
    # The task is declared with serializer="pickle"; its first message is sent as JSON (the
    # worker accepts JSON only), its retry would be pickled: refused.
    rel.app.send_task("rel.pickled", (rel.run, 0), serializer="json")
    assert wait_until(lambda: rel.count("outcome") == 1, 30), rel.log()[-3000:]
    time.sleep(3)
    outcome = rel.store.hget(f"{rel.run}:outcome", 0).decode()
    assert outcome.startswith("ConfigurationError: celery_dlx publishes retries as JSON"), outcome
    assert "pickle" in outcome
    assert rel.hash_ints("runs") == {0: 1}, "refused retry delivered again (acks_late loop)"
    assert rel.pending() == 0
    assert _alive(rel)
    report("5. pickle-configured task retried", 1, 0, 0, time.monotonic() - started,
           "ConfigurationError once, nothing published, no redelivery")  # fmt: skip


def _retry_messages(rel: RelEnv, task_id: str, timeout: float) -> list[Any]:
    """Take the retry of ``task_id`` out of the delay queues (it waits there 60 s)."""
    found: list[Any] = []
    deadline = time.monotonic() + timeout
    with Connection(rel.first_url) as conn:
        rel.topology.declare(conn)  # idempotent; the worker may not have declared it yet
        channel = conn.channel()
        while not found and time.monotonic() < deadline:
            for name in rel.delay_queue_names:
                message = channel.basic_get(name, no_ack=True)
                if message is not None and (message.headers or {}).get("id") == task_id:
                    found.append(message)
                elif message is not None:
                    raise AssertionError(f"unexpected message in {name}: {message.headers}")
            time.sleep(0.05)
        channel.close()
    return found


def test_retry_message_carries_no_broker_password(
    node: RabbitNode, make_rel: Callable[..., RelEnv], report: Callable[..., None]
) -> None:
    """The broker URL has a password; no header and no part of the body of a retry has it, and
    no header but Celery's argument reprs has the token the task was called with (next test)."""
    started = time.monotonic()
    rel = make_rel(url_of(node), acks_late=True)
    rel.start_worker()
    task_id = str(uuid.uuid4())
    rel.app.send_task("rel.api_call", (rel.run, 0), {"access_token": TOKEN}, task_id=task_id)
    messages = _retry_messages(rel, task_id, timeout=30)
    assert len(messages) == 1
    headers, body = messages[0].headers, messages[0].body
    body_text = body.decode() if isinstance(body, bytes) else str(body)
    with_token = sorted(k for k, v in headers.items() if TOKEN in json.dumps(v, default=str))
    report("5. retry message scanned for the broker password", 1, 0, 0, time.monotonic() - started,
           f"password in headers/body: {PASSWORD in json.dumps(headers, default=str) or PASSWORD in body_text}; "
           f"headers with the argument token: {', '.join(with_token) or 'none'}")  # fmt: skip
    assert PASSWORD not in json.dumps(headers, default=str)
    assert PASSWORD not in body_text
    assert set(with_token) <= {"argsrepr", "kwargsrepr"}, with_token
    assert headers["retries"] == 1


@pytest.mark.parametrize("hidden", [True, False], ids=["caller_hid_reprs", "default_reprs"])
def test_retry_headers_carry_no_access_token(
    node: RabbitNode,
    make_rel: Callable[..., RelEnv],
    report: Callable[..., None],
    hidden: bool,
) -> None:
    started = time.monotonic()
    rel = make_rel(url_of(node), acks_late=True)
    rel.start_worker()
    task_id = str(uuid.uuid4())
    reprs = {"argsrepr": "(run, 0)", "kwargsrepr": "{'access_token': '…'}"} if hidden else {}
    rel.app.send_task("rel.api_call", (rel.run, 0), {"access_token": TOKEN}, task_id=task_id, **reprs)
    messages = _retry_messages(rel, task_id, timeout=30)
    assert len(messages) == 1
    headers = messages[0].headers
    leaked = sorted(k for k, v in headers.items() if TOKEN in json.dumps(v, default=str))
    label = "caller hid argsrepr/kwargsrepr" if hidden else "Celery's default argsrepr/kwargsrepr"
    report(f"5. retry headers scanned for an access token ({label})", 1, 0, 0,
           time.monotonic() - started, f"token in headers: {', '.join(leaked) or 'none'}")  # fmt: skip
    assert not leaked, f"token in the retry's {leaked} headers"


def test_worker_log_has_no_token_with_the_redacting_filter(
    node: RabbitNode, make_rel: Callable[..., RelEnv], report: Callable[..., None]
) -> None:
    started = time.monotonic()
    rel = make_rel(url_of(node), acks_late=True, DLX_REL_REDACT="1")
    rel.start_worker(level="DEBUG")
    rel.app.send_task("rel.api_call", (rel.run, 0), {"access_token": TOKEN, "countdown": 0.5})
    assert wait_until(lambda: rel.count("effects") == 1, 30), rel.log()[-3000:]
    time.sleep(1)
    log = rel.log()
    report("5. worker log (DEBUG) scanned for the token, RedactingFilter on", 1, 0, 0, time.monotonic() - started,
           f"token occurrences: {log.count(TOKEN)}; [REDACTED]: {log.count('[REDACTED]')}")  # fmt: skip
    assert "Retry in" in log, "the retry was not logged: the scan would prove nothing"
    assert TOKEN not in log
    assert PASSWORD not in log
    assert "access_token=[REDACTED]" in log
