"""Network tasks in a real worker against the real broker, calling a local HTTP server that
answers like Twitter: a rate limit is waited out through the delay topology, never before
the reset the response named; a dead token fails once, reports itself and leaks nowhere."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from celery import Celery
from kombu import Connection

from celery_dlx.networks.tasks import AuthInvalid, TwitterTask
from celery_dlx.parking.lot import ParkingLot
from celery_dlx.testing.worker import WorkerProcess, wait_until

from ..support import ROOT
from . import networks_app
from .conftest import DLXEnv
from .dlx_app import BROKER_URL

pytestmark = pytest.mark.integration

TOKEN = "Zk9vQmFyMTIzNDU2Nzg5MGFiY2RlZg"
#: What the server answers; each call may compute headers at request time (resets).
Reply = Callable[[], tuple[int, dict[str, str], Any]]


@dataclass
class TwitterLike:
    """A local HTTP server that plays back ``replies`` in order (the last one repeats)."""

    replies: list[Reply]
    hits: list[dict[str, Any]] = field(default_factory=list)
    server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self.server is not None
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}/2/users/1/tweets"

    def handler(self) -> type[BaseHTTPRequestHandler]:
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                status, headers, body = outer.replies[min(len(outer.hits), len(outer.replies) - 1)]()
                outer.hits.append({"t": time.time(), "path": self.path, "headers": headers})
                payload = json.dumps(body).encode()
                self.send_response(status)  # also sends the Date header the classifier measures from
                for name, value in {**headers, "content-type": "application/json"}.items():
                    self.send_header(name, value)
                self.send_header("content-length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        return Handler


@pytest.fixture
def twitter_like() -> Iterator[Callable[[list[Reply]], TwitterLike]]:
    servers: list[TwitterLike] = []

    def start(replies: list[Reply]) -> TwitterLike:
        fake = TwitterLike(replies)
        fake.server = ThreadingHTTPServer(("127.0.0.1", 0), fake.handler())
        threading.Thread(target=fake.server.serve_forever, daemon=True).start()
        servers.append(fake)
        return fake

    yield start
    for fake in servers:
        assert fake.server is not None
        fake.server.shutdown()
        fake.server.server_close()


def network_worker(make_env: Callable[..., DLXEnv], logfile: Path) -> tuple[DLXEnv, Celery]:
    """A celery_dlx deployment whose worker runs ``networks_app``, and that app for sending."""
    dlx = make_env(worker=False)
    dlx.worker = WorkerProcess(
        "tests.integration.networks_app:app", dlx.queues, BROKER_URL, env=dlx.env, cwd=ROOT, logfile=logfile
    ).start()
    return dlx, networks_app.make_app(dlx.env)


@pytest.mark.compat
def test_rate_limited_call_is_retried_through_the_broker_not_before_the_reset(
    make_env: Callable[..., DLXEnv], twitter_like: Callable[[list[Reply]], TwitterLike], tmp_path: Path
) -> None:
    resets: list[int] = []

    def rate_limited() -> tuple[int, dict[str, str], Any]:
        resets.append(int(time.time()) + 3)  # Twitter's reset: whole UNIX seconds
        headers = {"x-rate-limit-limit": "15", "x-rate-limit-remaining": "0", "x-rate-limit-reset": str(resets[-1])}
        return (
            429,
            headers,
            {"title": "Too Many Requests", "detail": "Too Many Requests", "type": "about:blank", "status": 429},
        )

    server = twitter_like([rate_limited, lambda: (200, {}, {"data": [{"id": "1", "text": "hello"}]})])
    logfile = tmp_path / "worker.log"
    dlx, app = network_worker(make_env, logfile)
    key = dlx.key()

    result = app.tasks["it.timeline"].apply_async(kwargs={"url": server.url, "key": key, "access_token": TOKEN})

    assert result.get(timeout=25) == {"data": [{"id": "1", "text": "hello"}]}
    first, second = dlx.arrivals(key, 2, timeout=5)
    assert [first["retries"], second["retries"]] == [0, 1]
    assert second["exchange"] == dlx.topology.deliver_exchange.name, "the retry did not come through the delay topology"
    assert len(server.hits) == 2
    assert server.hits[1]["t"] >= resets[0], f"called again {resets[0] - server.hits[1]['t']:.3f} s before the reset"
    assert server.hits[1]["t"] - resets[0] < 3, "waited far longer than the reset"
    assert f"access_token={TOKEN}" in server.hits[0]["path"]
    assert TOKEN not in first["kwargsrepr"] + second["kwargsrepr"], "the token reached the message headers"
    assert "RATE_LIMITED" in logfile.read_text() and TOKEN not in logfile.read_text()


def test_dead_token_fails_once_reports_itself_and_leaks_nowhere(
    make_env: Callable[..., DLXEnv], twitter_like: Callable[[list[Reply]], TwitterLike], tmp_path: Path
) -> None:
    server = twitter_like([lambda: (401, {}, {"errors": [{"code": 89, "message": "Invalid or expired token."}]})])
    logfile = tmp_path / "worker.log"
    dlx, app = network_worker(make_env, logfile)
    key = dlx.key()
    dlx.keys.append(f"{key}:auth")

    result = app.tasks["it.timeline"].apply_async(kwargs={"url": server.url, "key": key, "access_token": TOKEN})

    with pytest.raises(AuthInvalid) as failure:
        result.get(timeout=20)
    assert failure.value.args == ("AUTH_INVALID", "Invalid or expired token.", 89, None, 401, "twitter")
    assert [json.loads(v)["kind"] for v in dlx.store.lrange(f"{key}:auth", 0, -1)] == ["AUTH_INVALID"]
    time.sleep(0.5)
    assert [a["retries"] for a in dlx.arrivals(key, 1, timeout=1)] == [0], "a dead token must not be retried"
    assert len(server.hits) == 1
    # The HTTPError raised by raise_for_status() named the URL, token included; none of it is kept.
    stored = dlx.store.get(f"celery-task-meta-{result.id}") or b""
    assert b'"status": "FAILURE"' in stored
    assert TOKEN.encode() not in stored
    assert TOKEN not in (result.traceback or "")
    assert TOKEN not in logfile.read_text()


def test_a_dead_token_is_parked_with_its_verdict_and_no_token(
    make_env: Callable[..., DLXEnv], twitter_like: Callable[[list[Reply]], TwitterLike], tmp_path: Path
) -> None:
    server = twitter_like([lambda: (401, {}, {"errors": [{"code": 89, "message": "Invalid or expired token."}]})])
    dlx, app = network_worker(make_env, tmp_path / "worker.log")
    key = dlx.key()
    dlx.keys.append(f"{key}:auth")
    result = app.tasks["it.timeline"].apply_async(kwargs={"url": server.url, "key": key, "access_token": TOKEN})
    with pytest.raises(AuthInvalid):
        result.get(timeout=20)
    with Connection(BROKER_URL) as connection:
        lot = ParkingLot(connection, dlx.topology)
        assert wait_until(lambda: lot.count() == 1, 10)
        (parked,) = lot.browse(10)
        assert lot.count() == 1  # browsing leaves it parked
    assert parked.id == result.id and parked.task == "it.timeline" and parked.retries == 0
    assert parked.reason == "auth_invalid" and parked.error == "celery_dlx.networks.AuthInvalid"
    assert "Invalid or expired token" in parked.message and TOKEN not in repr(parked)


def test_an_expired_token_is_refreshed_and_retried_at_once_through_the_broker(
    make_env: Callable[..., DLXEnv], twitter_like: Callable[[list[Reply]], TwitterLike], tmp_path: Path
) -> None:
    expired = {"title": "Unauthorized", "detail": "The access token expired", "type": "about:blank", "status": 401}
    challenge = {"www-authenticate": 'Bearer realm="api", error="invalid_token", error_description="The access token expired"'}
    server = twitter_like([lambda: (401, challenge, expired), lambda: (200, {}, {"data": [{"id": "1"}]})])
    dlx, app = network_worker(make_env, tmp_path / "worker.log")
    key = dlx.key()
    dlx.keys += [f"{key}:refreshed", f"{key}:token", f"{key}:auth"]

    result = app.tasks["it.refreshing_timeline"].apply_async(kwargs={"url": server.url, "key": key})

    assert result.get(timeout=20) == {"data": [{"id": "1"}]}  # max_retries=0: a counted retry would have failed
    first, second = dlx.arrivals(key, 2, timeout=5)
    assert [first["retries"], second["retries"]] == [0, 0], "the refresh used up a retry"
    assert second["exchange"] == dlx.topology.deliver_exchange.name, "the retry did not come through the broker"
    assert second["t"] - first["t"] < 2, "the refreshed call was not retried at once"
    assert [json.loads(v)["refreshable"] for v in dlx.store.lrange(f"{key}:refreshed", 0, -1)] == [True]
    assert dlx.store.llen(f"{key}:auth") == 0, "a refreshed token was reported dead"
    assert "access_token=first-token" in server.hits[0]["path"]
    assert "access_token=refreshed-1" in server.hits[1]["path"]


def test_a_token_that_stays_expired_after_refreshes_goes_to_the_parking_lot(
    make_env: Callable[..., DLXEnv], twitter_like: Callable[[list[Reply]], TwitterLike], tmp_path: Path
) -> None:
    expired = {"errors": [{"code": 89, "message": "Invalid or expired token."}]}
    server = twitter_like([lambda: (401, {}, expired)])
    dlx, app = network_worker(make_env, tmp_path / "worker.log")
    key = dlx.key()
    dlx.keys += [f"{key}:refreshed", f"{key}:token", f"{key}:auth"]

    result = app.tasks["it.refreshing_timeline"].apply_async(kwargs={"url": server.url, "key": key})

    with pytest.raises(AuthInvalid):
        result.get(timeout=20)
    refreshes = TwitterTask.max_token_refreshes
    assert [a["retries"] for a in dlx.arrivals(key, refreshes + 1, timeout=5)] == [0] * (refreshes + 1)
    assert dlx.store.llen(f"{key}:refreshed") == refreshes
    assert dlx.store.llen(f"{key}:auth") == 1
    assert len(server.hits) == refreshes + 1
    with Connection(BROKER_URL) as connection:
        lot = ParkingLot(connection, dlx.topology)
        assert wait_until(lambda: lot.count() == 1, 10)
        (parked,) = lot.browse(10)
    assert parked.id == result.id and parked.reason == "auth_invalid"
