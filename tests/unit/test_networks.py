"""Network task base classes, run in-process: what each verdict makes a task do, with real
``requests`` and ``httpx`` responses and exceptions (no server: the objects are built here)."""

from __future__ import annotations

import json
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, ClassVar

import httpx
import pytest
import requests
from celery import Celery
from celery.exceptions import Retry
from tenacity import wait_fixed

from celery_dlx import DLXTask
from celery_dlx.classify import Verdict, VerdictKind, registry
from celery_dlx.networks.tasks import (
    AuthInvalid,
    CallDeferred,
    CallFailed,
    FacebookTask,
    GitHubTask,
    HTTPTask,
    InstagramTask,
    LinkedInTask,
    MastodonTask,
    RedditTask,
    TwitterTask,
    VerdictError,
    response_parts,
)
from celery_dlx.parking.park import replayed_headers

#: Celery-facing: runs on every supported Celery minor (nox -s compat).
pytestmark = pytest.mark.compat

DATE = "Tue, 14 Nov 2023 22:13:20 GMT"  # 1_700_000_000
TOKEN = "Zk9vQmFyMTIzNDU2Nzg5MGFiY2RlZg"
URL = f"https://graph.facebook.com/v19.0/me?fields=id&access_token={TOKEN}"


@pytest.fixture
def app() -> Celery:
    app = Celery("networks", set_as_current=False)
    app.conf.update(broker_url="memory://", result_backend="cache+memory://", result_serializer="json")
    return app


def httpx_response(status: int, headers: dict[str, str] | None = None, body: Any = None) -> httpx.Response:
    return httpx.Response(status, headers=headers, json=body, request=httpx.Request("GET", URL))


def requests_response(status: int, headers: dict[str, str] | None = None, body: Any = None) -> requests.Response:
    response = requests.Response()
    response.status_code = status
    response.headers.update(headers or {})
    response._content = json.dumps(body).encode() if body is not None else b""
    response.url = URL
    response.reason = "Error"
    return response


@contextmanager
def in_worker(task: Any, retries: int = 0) -> Iterator[None]:
    """A request as a worker would have it (not called directly), retries run eagerly."""
    task.push_request(id="task-1", retries=retries, args=(), kwargs={}, called_directly=False, is_eager=True)
    try:
        yield
    finally:
        task.pop_request()


def bound(app: Celery, base: type[HTTPTask], **attributes: Any) -> Any:
    """A task of class ``base`` (with ``attributes``) that checks the response it is given."""
    attributes.setdefault("max_retries", 3)

    @app.task(bind=True, base=base, shared=False, name=f"t.{base.__name__}.{len(app.tasks)}", **attributes)
    def call(self: HTTPTask, response: Any) -> int:
        return self.check(response).status_code

    return call


def retry_of(task: Any, response: Any, retries: int = 0) -> Retry:
    with in_worker(task, retries), pytest.raises(Retry) as raised:
        task.check(response)
    return raised.value


RATE_LIMITED = {"x-rate-limit-reset": "1700000900", "x-rate-limit-remaining": "0", "date": DATE}


@pytest.mark.parametrize("make", [httpx_response, requests_response], ids=["httpx", "requests"])
def test_a_success_is_returned_as_is(app: Celery, make: Any) -> None:
    task = bound(app, TwitterTask)
    response = make(200, {"date": DATE}, {"data": {"id": "1"}})
    with in_worker(task):
        assert task.check(response) is response


@pytest.mark.parametrize("make", [httpx_response, requests_response], ids=["httpx", "requests"])
def test_rate_limited_waits_for_the_reset_plus_jitter(app: Celery, make: Any) -> None:
    task = bound(app, TwitterTask)
    retry = retry_of(task, make(429, RATE_LIMITED, {"errors": [{"code": 88, "message": "Rate limit exceeded"}]}))
    assert 900 <= retry.when <= 902
    assert isinstance(retry.exc, CallDeferred) and retry.exc.verdict.code == 88


def test_a_verdict_the_caller_already_has_is_acted_on_without_classifying_again(
    app: Celery, monkeypatch: pytest.MonkeyPatch
) -> None:
    task = bound(app, TwitterTask)
    response = httpx_response(429, RATE_LIMITED, {"errors": [{"code": 88, "message": "Rate limit exceeded"}]})
    verdict = task.classify_response(response)
    monkeypatch.setattr(type(task), "classify_response", lambda self, r: pytest.fail("classified twice"))
    with in_worker(task), pytest.raises(Retry) as raised:
        task.check(response, verdict)
    assert 900 <= raised.value.when <= 902


def test_jitter_only_ever_adds(app: Celery) -> None:
    exact = bound(app, TwitterTask, rate_limit_jitter=wait_fixed(0.25))
    assert retry_of(exact, httpx_response(429, RATE_LIMITED)).when == 900.25
    negative = bound(app, TwitterTask, rate_limit_jitter=wait_fixed(-100))
    assert retry_of(negative, httpx_response(429, RATE_LIMITED)).when == 900.0


def test_rate_limited_without_a_reset_backs_off(app: Celery) -> None:
    task = bound(app, FacebookTask, rate_limit_wait=wait_fixed(123))
    body = {"error": {"code": 4, "message": "(#4) Application request limit reached"}}
    assert retry_of(task, httpx_response(400, {}, body)).when == 123


def test_retry_soon_backs_off_but_never_before_retry_after(app: Celery) -> None:
    task = bound(app, HTTPTask, retry_wait=wait_fixed(7))
    assert retry_of(task, httpx_response(502)).when == 7
    assert retry_of(task, httpx_response(503, {"retry-after": "120"})).when == 120


def test_backoff_grows_with_the_attempt(app: Celery) -> None:
    task = bound(app, HTTPTask, max_retries=10)
    first, fifth = (retry_of(task, httpx_response(500), retries=n).when for n in (0, 4))
    assert 1 <= first <= 2
    assert 16 <= fifth <= 17


def test_over_capacity_backs_off_longer(app: Celery) -> None:
    task = bound(app, TwitterTask, over_capacity_wait=wait_fixed(600), retry_wait=wait_fixed(1))
    assert retry_of(task, httpx_response(503, {}, {"errors": [{"code": 130, "message": "Over capacity"}]})).when == 600


class Accounts(TwitterTask):
    abstract = True
    marked: ClassVar[list[Verdict]] = []

    def on_auth_invalid(self, verdict: Verdict) -> None:
        self.marked.append(verdict)


def test_auth_invalid_calls_the_hook_and_fails_without_retry(app: Celery) -> None:
    Accounts.marked = []
    task = bound(app, Accounts)
    result = task.apply((httpx_response(401, {}, {"errors": [{"code": 89, "message": "Invalid or expired token."}]}),))
    assert result.state == "FAILURE"
    assert isinstance(result.result, AuthInvalid)
    assert result.result.args == ("AUTH_INVALID", "Invalid or expired token.", 89, None, 401, "twitter")
    assert [v.kind for v in Accounts.marked] == [VerdictKind.AUTH_INVALID]


class Refreshing(TwitterTask):
    """Refreshes the token when asked (``can_refresh``), records every hook call."""

    abstract = True
    can_refresh: ClassVar[bool] = True
    expired: ClassVar[list[Verdict]] = []
    marked: ClassVar[list[Verdict]] = []

    def on_token_expired(self, verdict: Verdict) -> bool:
        self.expired.append(verdict)
        return self.can_refresh

    def on_auth_invalid(self, verdict: Verdict) -> None:
        self.marked.append(verdict)


EXPIRED = {"errors": [{"code": 89, "message": "Invalid or expired token."}]}
REVOKED = {"errors": [{"code": 326, "message": "To protect our users from spam, this account is temporarily locked."}]}


def test_an_expired_token_the_app_refreshes_is_retried_at_once(app: Celery) -> None:
    Refreshing.expired, Refreshing.marked = [], []
    task = bound(app, Refreshing)
    retry = retry_of(task, httpx_response(401, {}, EXPIRED), retries=2)
    assert retry.when == 0
    assert [v.refreshable for v in Refreshing.expired] == [True]
    assert Refreshing.marked == []


def test_a_refresh_the_app_cannot_do_goes_down_the_auth_invalid_path(app: Celery) -> None:
    Refreshing.expired, Refreshing.marked, Refreshing.can_refresh = [], [], False
    try:
        result = bound(app, Refreshing).apply((httpx_response(401, {}, EXPIRED),))
    finally:
        Refreshing.can_refresh = True
    assert isinstance(result.result, AuthInvalid)
    assert len(Refreshing.expired) == 1 and len(Refreshing.marked) == 1


def test_a_revoked_token_is_never_offered_for_refresh(app: Celery) -> None:
    Refreshing.expired, Refreshing.marked = [], []
    result = bound(app, Refreshing).apply((httpx_response(403, {}, REVOKED),))
    assert isinstance(result.result, AuthInvalid)
    assert Refreshing.expired == [] and [v.refreshable for v in Refreshing.marked] == [False]


def test_refreshes_stop_after_max_token_refreshes(app: Celery) -> None:
    Refreshing.expired, Refreshing.marked = [], []
    task = bound(app, Refreshing, max_token_refreshes=2)
    task.push_request(id="t", retries=0, args=(), kwargs={}, called_directly=False, is_eager=True, dlx_token_refreshes=2)
    try:
        with pytest.raises(AuthInvalid):
            task.check(httpx_response(401, {}, EXPIRED))
    finally:
        task.pop_request()
    assert Refreshing.expired == [] and len(Refreshing.marked) == 1


@pytest.mark.parametrize(
    "base, status, body, kind",
    [
        (FacebookTask, 403, {"error": {"code": 10, "message": "(#10) Permission denied"}}, "PERMISSION"),
        (GitHubTask, 404, {"message": "Not Found"}, "NOT_FOUND"),
        (RedditTask, 200, {"json": {"errors": [["NO_TEXT", "we need something here", "title"]]}}, "BAD_REQUEST"),
    ],
)
def test_permanent_failures_fail_once_with_the_verdict(
    app: Celery, base: type[HTTPTask], status: int, body: Any, kind: str
) -> None:
    attempts: list[int] = []

    @app.task(bind=True, base=base, shared=False, max_retries=5)
    def call(self: HTTPTask) -> None:
        attempts.append(self.request.retries)
        self.check(httpx_response(status, {}, body))

    result = call.apply()
    assert result.state == "FAILURE"
    assert type(result.result) is CallFailed
    assert result.result.args[0] == kind
    assert attempts == [0]


def test_called_directly_a_retryable_verdict_raises_it(app: Celery) -> None:
    task = bound(app, TwitterTask)
    with pytest.raises(CallDeferred) as raised:
        task(httpx_response(429, RATE_LIMITED, {"errors": [{"code": 88, "message": "Rate limit exceeded"}]}))
    assert raised.value.verdict.code == 88


def test_retries_through_to_success_and_gives_up_with_the_verdict(app: Celery) -> None:
    responses = iter([httpx_response(429, RATE_LIMITED), httpx_response(200, {}, {"data": []})])
    task = bound(app, TwitterTask)

    @app.task(bind=True, base=TwitterTask, shared=False, max_retries=3)
    def flaky(self: TwitterTask) -> int:
        return self.check(next(responses)).status_code

    assert flaky.apply().get() == 200
    exhausted = task.apply((httpx_response(429, RATE_LIMITED),), retries=3)
    assert exhausted.state == "FAILURE"
    assert isinstance(exhausted.result, CallDeferred)
    assert exhausted.result.args[:3] == ("RATE_LIMITED", "HTTP 429 Too Many Requests", None)


@pytest.mark.parametrize(
    "exc",
    [
        requests.exceptions.ConnectTimeout(f"Max retries exceeded with url: {URL}"),
        requests.exceptions.ReadTimeout("read timed out"),
        requests.exceptions.ConnectionError(f"HTTPSConnectionPool: Max retries exceeded with url: {URL}"),
        requests.exceptions.ChunkedEncodingError("connection broken"),
        httpx.ConnectError(f"connect failed for {URL}"),
        httpx.ReadTimeout("timed out"),
        httpx.RemoteProtocolError("peer closed connection"),
        TimeoutError("timed out"),
        ConnectionResetError("reset by peer"),
    ],
    ids=lambda e: type(e).__name__,
)
def test_transport_errors_retry_soon(app: Celery, exc: BaseException) -> None:
    task = bound(app, FacebookTask, retry_wait=wait_fixed(3))
    with in_worker(task), pytest.raises(Retry) as raised:
        try:
            raise exc
        except (OSError, httpx.HTTPError) as caught:
            task.handle_exception(caught)
    assert raised.value.when == 3
    assert raised.value.exc.args[0] == "RETRY_SOON"
    assert TOKEN not in repr(raised.value.exc)


@pytest.mark.parametrize("make", [httpx_response, requests_response], ids=["httpx", "requests"])
def test_status_errors_are_classified_by_their_response(app: Celery, make: Any) -> None:
    task = bound(app, FacebookTask)
    response = make(
        400, {"date": DATE}, {"error": {"code": 190, "error_subcode": 463, "message": "Session has expired"}}
    )
    with in_worker(task), pytest.raises(AuthInvalid) as raised:
        try:
            response.raise_for_status()
        except (requests.HTTPError, httpx.HTTPStatusError) as exc:
            assert TOKEN in str(exc)  # the library's message holds the URL...
            task.handle_exception(exc)
    failure = raised.value
    assert failure.args[2:4] == (190, 463)
    # ...but nothing of it reaches what Celery records: not chained, not in the traceback.
    assert failure.__cause__ is None and failure.__suppress_context__
    assert TOKEN not in "".join(traceback.format_exception(failure))


def test_other_exceptions_are_re_raised_unchanged(app: Celery) -> None:
    task = bound(app, HTTPTask)
    original = ValueError("not an HTTP problem")
    with in_worker(task), pytest.raises(ValueError) as raised:
        task.handle_exception(original)
    assert raised.value is original


def test_the_retry_celery_records_carries_no_token(app: Celery) -> None:
    task = bound(app, HTTPTask)
    with in_worker(task), pytest.raises(Retry) as raised:
        try:
            raise requests.exceptions.ConnectionError(f"Max retries exceeded with url: {URL}")
        except requests.exceptions.ConnectionError as exc:
            task.handle_exception(exc)
    recorded = "".join(traceback.format_exception(raised.value)) + repr(raised.value) + str(raised.value)
    assert "access_token=[REDACTED]" in recorded
    assert TOKEN not in recorded


@pytest.mark.parametrize("cls", [CallFailed, AuthInvalid, CallDeferred])
def test_failures_survive_a_json_result_backend(app: Celery, cls: type[VerdictError]) -> None:
    failure = cls.from_verdict(Verdict(VerdictKind.NOT_FOUND, f"gone: {URL}", None, 100, 33, 400, "facebook"))
    stored = json.loads(json.dumps(app.backend.prepare_exception(failure, "json")))
    rebuilt = app.backend.exception_to_python(stored)
    assert type(rebuilt) is cls
    assert rebuilt.args == failure.args
    assert rebuilt.verdict.code == 100 and rebuilt.verdict.kind is VerdictKind.NOT_FOUND
    assert TOKEN not in json.dumps(stored)
    assert str(rebuilt) == "facebook NOT_FOUND: gone: " + URL.replace(TOKEN, "[REDACTED]") + " (code 100/33, HTTP 400)"


def test_message_headers_never_carry_tokens(app: Celery) -> None:
    @app.task(bind=True, base=FacebookTask, shared=False)
    def post(self: FacebookTask, page: str, access_token: str, fallback: str) -> None: ...

    post.apply_async(("page-1",), {"access_token": TOKEN, "fallback": f"Bearer {TOKEN}"}, queue="networks-test")
    with app.connection_for_read() as connection:
        message = connection.SimpleQueue("networks-test").get(timeout=5)
        headers = message.headers
        message.ack()
    assert "page-1" in headers["argsrepr"]
    assert "'access_token': '[REDACTED]'" in headers["kwargsrepr"]
    assert TOKEN not in headers["argsrepr"] + headers["kwargsrepr"]


def test_act_refuses_a_success(app: Celery) -> None:
    task = bound(app, HTTPTask)
    with in_worker(task), pytest.raises(ValueError, match="OK"):
        task.act(Verdict(VerdictKind.OK))


def test_unread_stream_bodies_are_classified_by_status() -> None:
    streamed = httpx.Response(503, stream=httpx.ByteStream(b'{"error": "x"}'))
    assert response_parts(streamed)[0] == 503
    assert response_parts(streamed)[2] is None


def test_every_network_has_a_task_class_bound_to_a_registered_classifier() -> None:
    classes = [HTTPTask, FacebookTask, InstagramTask, TwitterTask, LinkedInTask, RedditTask, MastodonTask, GitHubTask]
    assert sorted(cls.network for cls in classes) == sorted(registry.names)
    assert all(issubclass(cls, DLXTask) for cls in classes)


def test_a_replay_gives_a_message_its_token_refreshes_back() -> None:
    parked = {"dlx_token_refreshes": 3, "dlx_replays": 1, "retries": 4, "x-death": [{"count": 1}]}
    assert replayed_headers(parked, reset_retries=False) == {"dlx_replays": 2, "retries": 4}
