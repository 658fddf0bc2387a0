"""The dashboard's safety rules and pure parts, without a broker: credentials, the bind check,
read-only mode, CSRF, the confirmation step, the unreachable-broker page, message decoding and
the chart geometry.  The browser test (tests/integration/test_dashboard_browser.py) covers the
pages against the real services."""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path

import pytest
from amqp import Message
from celery import Celery
from flask.testing import FlaskClient

from celery_dlx.parking.park import ParkedFilter
from celery_dlx.web import create_app
from celery_dlx.web.auth import Credentials, CredentialsError, check_bind, is_loopback
from celery_dlx.web.charts import bars
from celery_dlx.web.lot_page import arguments, lot_page

#: Nothing listens on port 1: every broker call fails fast.
DOWN = "amqp://guest:s3cret@127.0.0.1:1//"


def client(**options: object) -> FlaskClient:
    app = Celery("web", broker=DOWN, set_as_current=False)
    app.conf.update(broker_connection_timeout=1, dlx_management_url="http://127.0.0.1:1")
    return create_app(app, **options).test_client()


def token_of(page: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert match, page
    return match.group(1)


@pytest.mark.parametrize(("host", "loopback"), [("127.0.0.1", True), ("127.3.2.1", True), ("::1", True), ("[::1]", True),
                                               ("localhost", True), ("0.0.0.0", False), ("::", False), ("10.0.0.5", False),
                                               ("example.com", False)])  # fmt: skip
def test_only_loopback_addresses_are_served_without_credentials(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback
    if loopback:
        check_bind(host, None)
    else:
        with pytest.raises(CredentialsError, match="without credentials"):
            check_bind(host, None)
    check_bind(host, Credentials(token="t"))


def test_credentials_come_from_the_environment_or_files_and_never_show_in_repr(tmp_path: Path) -> None:
    assert Credentials.from_env({}) is None
    secret = tmp_path / "token"
    secret.write_text("from-a-file\n")
    credentials = Credentials.from_env({"DLX_WEB_TOKEN_FILE": str(secret), "DLX_WEB_USER": "ops", "DLX_WEB_PASSWORD": "pw"})
    assert credentials == Credentials(token="from-a-file", user="ops", password="pw")
    assert "from-a-file" not in repr(credentials) and "pw" not in repr(credentials)
    with pytest.raises(CredentialsError, match="both"):
        Credentials.from_env({"DLX_WEB_USER": "ops"})
    with pytest.raises(CredentialsError, match="cannot read"):
        Credentials.from_env({"DLX_WEB_TOKEN_FILE": str(tmp_path / "missing")})


def test_authorization_headers_identify_the_user_or_nobody() -> None:
    credentials = Credentials(token="tok", user="ops", password="pw")
    basic = "Basic " + base64.b64encode(b"ops:pw").decode()
    assert credentials.identify("Bearer tok") == "bearer-token"
    assert credentials.identify(basic) == "ops"
    wrong = ["Bearer tok2", "Bearer", "Basic " + base64.b64encode(b"ops:no").decode(), "Basic !!", None, ""]
    assert [credentials.identify(header) for header in wrong] == [None] * len(wrong)


def test_every_page_needs_credentials_when_they_are_configured() -> None:
    web = client(credentials=Credentials(token="tok"))
    assert web.get("/").status_code == 401
    assert web.get("/parked").status_code == 401
    assert web.get("/", headers={"Authorization": "Bearer tok"}).status_code == 503  # past the check: the broker is down


def test_an_unreachable_broker_is_named_on_the_page_without_its_password() -> None:
    page = client().get("/")
    assert page.status_code == 503
    text = page.get_data(as_text=True)
    assert "RabbitMQ at amqp://guest:**@127.0.0.1:1// is unreachable" in text and "s3cret" not in text


def test_metrics_answer_with_the_broker_down_and_say_so() -> None:
    web = client(credentials=Credentials(token="tok"))
    assert web.get("/metrics").status_code == 401
    scrape = web.get("/metrics", headers={"Authorization": "Bearer tok"})
    assert scrape.status_code == 200
    assert 'celery_dlx_up{source="broker"} 0.0' in scrape.get_data(as_text=True)


def test_read_only_refuses_the_confirmation_page_and_the_action() -> None:
    web = client(read_only=True)
    assert web.get("/parked/confirm?action=replay").status_code == 403
    assert web.post("/parked/action", data={"action": "replay", "confirmed": "yes"}).status_code == 403


def test_an_action_needs_this_sessions_csrf_token_and_the_confirmation() -> None:
    web = client()
    assert web.post("/parked/action", data={"action": "delete", "confirmed": "yes"}).status_code == 403
    confirm = web.get("/parked/confirm?action=delete&task=it.flaky")
    assert confirm.status_code == 200
    page = confirm.get_data(as_text=True)
    token = token_of(page)
    assert 'name="task" value="it.flaky"' in page
    assert web.post("/parked/action", data={"action": "delete", "confirmed": "yes", "csrf_token": token + "x"}).status_code == 403
    assert web.post("/parked/action", data={"action": "delete", "csrf_token": token}).status_code == 400  # not confirmed
    assert client().post("/parked/action", data={"action": "delete", "confirmed": "yes", "csrf_token": token}).status_code == 403
    # With the token and the confirmation the action is tried: here the broker is down.
    assert web.post("/parked/action", data={"action": "delete", "confirmed": "yes", "csrf_token": token}).status_code == 503


def test_a_filter_selects_by_every_field_given() -> None:
    headers = {"task": b"fb.fetch", "id": "abc", "dlx_parked_reason": "auth_invalid", "dlx_queue": "work"}
    assert ParkedFilter().everything and ParkedFilter().matches(headers)
    assert ParkedFilter(task="fb.fetch", reason="auth_invalid", queue="work", task_id="abc").matches(headers)
    assert not ParkedFilter(task="fb.fetch", reason="max_retries").matches(headers)
    assert ParkedFilter(reason="unroutable", task_id="corr").matches({}, "corr")


def test_arguments_are_decoded_from_json_only_and_redacted() -> None:
    body = json.dumps([["acct"], {"access_token": "EAAsecret", "url": "https://x/?token=abc&page=2"}, {}])
    shown = arguments(Message(body, content_type="application/json", content_encoding="utf-8"))
    assert json.loads(shown) == {"args": ["acct"], "kwargs": {"access_token": "[REDACTED]", "url": "https://x/?token=[REDACTED]&page=2"}}
    refused = arguments(Message(b"\x80\x04K\x01.", content_type="application/x-python-serialize", content_encoding="binary"))
    assert refused.startswith("(not shown")


def test_bars_scale_to_the_largest_value_and_never_hide_a_non_zero_one() -> None:
    drawn = bars([("a", 0), ("b", 1), ("c", 1000)], width=300, height=100)
    assert [bar.height for bar in drawn] == [0.0, 1.0, 100.0]
    assert [bar.y for bar in drawn] == [100.0, 99.0, 0.0]
    assert drawn[1].x == pytest.approx(101.0) and bars([], 10, 10) == []


def test_a_lot_page_filters_then_pages_and_lists_the_choices_seen() -> None:
    def parked(i: int) -> Message:
        task = "fb.fetch" if i % 3 else "it.flaky"
        return Message(b"[]", application_headers={"task": task, "id": f"id{i}", "dlx_parked_reason": "max_retries", "dlx_queue": "w"})

    messages = [parked(i) for i in range(30)]
    page = lot_page(1000, messages, ParkedFilter(task="fb.fetch"), page=2, page_size=8)
    assert len(page.matching) == 20 and page.pages == 3 and page.partial
    assert [m.id for m in page.rows] == [f"id{i}" for i in range(30) if i % 3][8:16]
    assert page.choices == {"task": ["fb.fetch", "it.flaky"], "reason": ["max_retries"], "queue": ["w"]}
    assert lot_page(30, messages, ParkedFilter(), page=99, page_size=8).page == 4  # clamped to the last page
    assert not lot_page(30, messages, ParkedFilter(), page=1, page_size=8).partial
