"""The dashboard in a real browser: headless Chromium (Debian's ``chromium`` and
``chromium-driver``, installed by scripts/ensure-browser.sh) driven by selenium against a
``celery dlx serve`` process on the real RabbitMQ and Redis, with retries pending, parked
messages and an open circuit breaker.  pika and ``celery dlx status --json`` are the
independent observers.

``DLX_SCREENSHOTS=docs`` saves the overview and parking-lot screenshots the README shows.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pika
import pytest
import redis
import requests

from celery_dlx.breaker import FAILURE
from celery_dlx.breaker.tasks import breaker_for
from celery_dlx.broker.publish import TaskMessage, publish_delayed
from celery_dlx.metrics import per_minute
from celery_dlx.metrics.counters import PARKED, RETRIES, Recorder, metrics_prefix, metrics_url
from celery_dlx.metrics.ratelimits import limiters_of, usage

from ..support import ROOT, missing, reachable
from .conftest import DLXEnv
from .dashboard_app import make_app
from .test_cli import drain_ids

pytestmark = pytest.mark.integration

APP = "tests.integration.dashboard_app:app"
CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
#: Delays of the retries left pending: hours, so none comes due during the test.
DELAYS = (1800, 1800, 3600, 7200, 7200, 7200, 20000)
SECRET = "EAAsecretSECRETsecret1234567890"
#: Counted retries and parks recorded for the last-hour charts, and rate-limited calls per account.
RETRIES_COUNTED, PARKS_COUNTED = 5, 2
CALLS = {"acct-1": 3, "acct-2": 1}


@dataclass
class Deployment:
    env: DLXEnv
    environ: dict[str, str]
    parked: dict[str, list[str]]

    @property
    def lot(self) -> str:
        return self.env.topology.parking_queue.name

    def celery(self, *args: str, extra: dict[str, str] | None = None, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "celery", "-A", APP, "dlx", *args],
            env={**self.environ, **(extra or {})},
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=timeout,
        )


def park(observer: pika.BlockingConnection, env: DLXEnv, count: int, task: str, reason: str, error: str) -> list[str]:
    """Put ``count`` Celery-shaped messages into the lot, as ``park()`` records them."""
    channel = observer.channel()
    channel.confirm_delivery()
    ids = []
    for i in range(count):
        task_id = str(uuid.uuid4())
        headers: dict[str, Any] = {
            "task": task, "id": task_id, "retries": 5, "dlx_parked_reason": reason, "dlx_error": error,
            "dlx_error_message": f"{reason} on account {i}", "dlx_parked_at": int(time.time()), "dlx_queue": env.queues[0],
        }  # fmt: skip
        body = json.dumps([[f"account-{i}"], {"access_token": SECRET, "since": "2026-12-01"}, {}])
        properties = pika.BasicProperties(headers=headers, correlation_id=task_id, content_type="application/json", delivery_mode=2)
        channel.basic_publish("", env.topology.parking_queue.name, body, properties)
        ids.append(task_id)
    channel.close()
    return ids


@pytest.fixture
def deployment(make_env: Callable[..., DLXEnv], observer: pika.BlockingConnection, store: redis.Redis) -> Deployment:
    env = make_env(worker=False, extra_queues=1)  # a second work queue to replay to
    env.env["DLX_BR_PREFIX"] = f"{env.prefix}:breaker"
    environ = {k: v for k, v in os.environ.items() if not k.startswith("DLX_WEB_")}
    deployment = Deployment(env, {**environ, **env.env}, {})
    declared = deployment.celery("declare")
    assert declared.returncode == 0, declared.stderr
    app = make_app(env.env)
    for delay in DELAYS:
        publish_delayed(app, env.queues[0], delay, message=TaskMessage("it.flaky", [env.key(), 9, 0.1], {}))
    deployment.parked["fb.fetch_posts"] = park(observer, env, 6, "fb.fetch_posts", "auth_invalid", "celery_dlx.errors.AuthInvalid")
    deployment.parked["it.flaky"] = park(observer, env, 4, "it.flaky", "max_retries", "builtins.RuntimeError")
    breaker = breaker_for(app)
    assert breaker is not None
    for _ in range(3):  # the policy opens after 3 failures and stays open for 10 minutes
        breaker.record("facebook", FAILURE)
    (limiter,) = limiters_of(app.conf)
    for account, calls in CALLS.items():
        for _ in range(calls):
            assert limiter.acquire(account=account).allowed
    url, prefix = metrics_url(app.conf), metrics_prefix(app.conf)
    assert url is not None
    recorder = Recorder(url, prefix)  # what workers' retry and park paths record
    for _ in range(RETRIES_COUNTED):
        recorder.add(RETRIES, ("it.flaky", "builtins.RuntimeError"), per_minute=RETRIES)
    for _ in range(PARKS_COUNTED):
        recorder.add(PARKED, ("fb.fetch_posts", "auth_invalid"), per_minute=PARKED)
    assert recorder.flush()
    patterns = (f"{env.prefix}:breaker*", f"{prefix}*", "{" + f"{prefix}*", "{" + f"{env.prefix}*")  # {…}: tagged
    env.keys += [key.decode() for pattern in patterns for key in store.scan_iter(pattern)]
    return deployment


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@contextmanager
def serving(deployment: Deployment, logdir: Path, *args: str, extra: dict[str, str] | None = None) -> Iterator[str]:
    """``celery dlx serve`` running for ``deployment`` (its output in ``logdir``); yields its base URL."""
    port = free_port()
    log = open(logdir / f"serve-{port}.log", "w+")  # noqa: SIM115
    command = [sys.executable, "-m", "celery", "-A", APP, "dlx", "serve", "--port", str(port), *args]
    process = subprocess.Popen(command, env={**deployment.environ, **(extra or {})}, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while not reachable("127.0.0.1", port):
            assert process.poll() is None and time.monotonic() < deadline, Path(log.name).read_text()
            time.sleep(0.1)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(timeout=10)
        log.close()


@pytest.fixture
def browser() -> Iterator[Any]:
    """Headless Chromium under chromedriver, both from Debian (nothing is downloaded)."""
    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        missing("chromium and chromium-driver are not installed (scripts/ensure-browser.sh)", "the browser test")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,1100"):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    driver.implicitly_wait(5)
    yield driver
    driver.quit()


def shown(driver: Any) -> dict[str, str]:
    """Every number the page marks with ``data-key``, as displayed."""
    from selenium.webdriver.common.by import By

    return {element.get_attribute("data-key"): element.text for element in driver.find_elements(By.CSS_SELECTOR, "[data-key]")}


def rows(driver: Any) -> list[tuple[str, str]]:
    """(task id, task name) of each row of the parking-lot table."""
    from selenium.webdriver.common.by import By

    found = driver.find_elements(By.CSS_SELECTOR, "tr.parked-row")
    return [(row.get_attribute("data-id"), row.find_elements(By.TAG_NAME, "td")[1].text) for row in found]


def follow(driver: Any, selector: tuple[str, str]) -> None:
    """Click the element ``selector`` finds and wait for the page it leads to (reading the
    old page meanwhile would find stale elements)."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.expected_conditions import staleness_of
    from selenium.webdriver.support.ui import WebDriverWait

    page = driver.find_element(By.TAG_NAME, "html")
    driver.find_element(*selector).click()
    WebDriverWait(driver, 10).until(staleness_of(page))


def screenshot(driver: Any, name: str) -> None:
    folder = os.environ.get("DLX_SCREENSHOTS")
    if folder:
        driver.set_window_size(1280, driver.execute_script("return document.documentElement.scrollHeight") + 160)  # + window chrome
        driver.save_screenshot(str(ROOT / folder / name))
        driver.set_window_size(1280, 1100)


def test_the_dashboard_shows_what_status_shows_filters_the_lot_replays_one_task_and_deletes_by_filter(
    deployment: Deployment, browser: Any, observer: pika.BlockingConnection, tmp_path: Path
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    env = deployment.env
    with serving(deployment, tmp_path) as base:
        browser.get(base + "/")
        on_page = shown(browser)
        status = deployment.celery("status", "--json")
        assert status.returncode == 0, status.stderr
        report = json.loads(status.stdout)
        expected = {"pending": report["pending"], "parking.messages": report["parking"]["messages"]}
        expected |= {f"level.{lv['level']}": lv["queue"]["messages"] for lv in report["levels"] if lv["queue"]["messages"]}
        for queue in report["work_queues"]:
            expected |= {f"queue.{queue['name']}.messages": queue["messages"], f"queue.{queue['name']}.consumers": queue["consumers"]}
        for snap in report["breakers"]:
            expected |= {f"breaker.{snap['name']}.mode": snap["mode"], f"breaker.{snap['name']}.waiting": snap["waiting"]}
        app = make_app(env.env)
        expected |= {f"activity.{name}": sum(n for _, n in points) for name, points in per_minute(app).items()}
        (limiter,) = limiters_of(app.conf)
        used = {u.slot: u.used for u in usage(limiter)[0]}
        expected |= {f"ratelimit.fb-calls.{slot}.used": n for slot, n in used.items()}
        assert on_page == {key: str(value) for key, value in expected.items()}
        # …and both are what the test put there.
        assert report["pending"] == len(DELAYS) and report["parking"]["messages"] == 10
        assert [(b["name"], b["mode"]) for b in report["breakers"]] == [("facebook", "open")]
        assert (expected["activity.retries"], expected["activity.parked"]) == (RETRIES_COUNTED, PARKS_COUNTED)
        assert used == CALLS
        metrics = requests.get(base + "/metrics", timeout=30).text
        assert 'celery_dlx_up{source="broker"} 1.0' in metrics and "celery_dlx_parked_messages 10.0" in metrics
        assert f'celery_dlx_retries_total{{reason="builtins.RuntimeError",task="it.flaky"}} {RETRIES_COUNTED}.0' in metrics
        screenshot(browser, "dashboard-overview.png")

        browser.get(base + "/parked")
        assert sorted(rows(browser)) == sorted((i, t) for t, ids in deployment.parked.items() for i in ids)
        screenshot(browser, "dashboard-parking-lot.png")
        Select(browser.find_element(By.ID, "filter-task")).select_by_value("fb.fetch_posts")
        follow(browser, (By.ID, "apply-filter"))
        assert sorted(rows(browser)) == sorted((i, "fb.fetch_posts") for i in deployment.parked["fb.fetch_posts"])
        Select(browser.find_element(By.ID, "filter-reason")).select_by_value("max_retries")
        follow(browser, (By.ID, "apply-filter"))
        assert rows(browser) == []  # no fb.fetch_posts message was parked for max_retries

        target = deployment.parked["fb.fetch_posts"][2]
        browser.get(f"{base}/parked/message/{target}")
        arguments = browser.find_element(By.ID, "arguments").text
        assert "[REDACTED]" in arguments and "2026-12-01" in arguments
        assert SECRET not in browser.page_source

        browser.get(base + "/parked?task=fb.fetch_posts")
        follow(browser, (By.CSS_SELECTOR, f'tr[data-id="{target}"] a.replay'))
        browser.find_element(By.NAME, "reset_retries").click()
        Select(browser.find_element(By.NAME, "to")).select_by_value(env.queues[1])
        follow(browser, (By.ID, "confirm"))
        assert "replayed 1 of" in browser.find_element(By.ID, "flash").text
        assert target not in dict(rows(browser))
        assert _drain(observer, env.queues[0]) == []  # not where it came from: where it was sent
        (replayed,) = observed = _drain(observer, env.queues[1])
        assert replayed["id"] == target and replayed["dlx_replays"] == 1 and "dlx_parked_reason" not in replayed, observed
        assert replayed["retries"] == 0  # parked after 5 retries; "reset the retry count" was ticked

        # Bulk: delete everything the filter matches (the 4 it.flaky messages).
        browser.get(base + "/parked?reason=max_retries")
        follow(browser, (By.ID, "bulk-delete"))
        assert "reason = max_retries" in browser.find_element(By.TAG_NAME, "h1").text
        follow(browser, (By.ID, "confirm"))
        assert "deleted 4 of" in browser.find_element(By.ID, "flash").text
        assert sorted(rows(browser)) == sorted((i, "fb.fetch_posts") for i in deployment.parked["fb.fetch_posts"] if i != target)

    assert _drain(observer, env.queues[0]) == _drain(observer, env.queues[1]) == []  # the delete sent nothing to work
    (log,) = tmp_path.glob("serve-*.log")
    actions = [line for line in log.read_text().splitlines() if "celery_dlx.web.parking: dashboard " in line]
    assert len(actions) == 2, actions
    assert f"dashboard replay by anonymous@127.0.0.1 where task_id={target}: 1 moved of " in actions[0]
    assert "dashboard delete by anonymous@127.0.0.1 where reason=max_retries: 4 moved of 9 examined" in actions[1]
    still_parked = drain_ids(observer, deployment.lot)
    assert sorted(still_parked) == sorted(i for i in deployment.parked["fb.fetch_posts"] if i != target)


def _drain(observer: pika.BlockingConnection, queue: str) -> list[dict[str, Any]]:
    """Remove every message of ``queue`` and return their headers."""
    channel = observer.channel()
    found = []
    while True:
        method, properties, _ = channel.basic_get(queue, auto_ack=True)
        if method is None:
            break
        found.append(dict(properties.headers or {}))
    channel.close()
    return found


def test_a_post_without_the_csrf_token_is_refused_and_changes_nothing(deployment: Deployment, tmp_path: Path) -> None:
    with serving(deployment, tmp_path) as base, requests.Session() as session:
        confirm = session.get(f"{base}/parked/confirm", params={"action": "delete"})  # the session gets its token
        assert confirm.status_code == 200 and 'name="csrf_token"' in confirm.text
        refused = session.post(f"{base}/parked/action", data={"action": "delete", "confirmed": "yes"})
        assert refused.status_code == 403 and "CSRF" in refused.text
        forged = session.post(f"{base}/parked/action", data={"action": "delete", "confirmed": "yes", "csrf_token": "guess"})
        assert forged.status_code == 403
    assert sorted(parked_ids(deployment)) == sorted(i for ids in deployment.parked.values() for i in ids)


def parked_ids(deployment: Deployment) -> list[str]:
    """The lot's task ids, as ``celery dlx parked --json`` lists them (the messages stay)."""
    listing = deployment.celery("parked", "--json", "--limit", "100")
    assert listing.returncode == 0, listing.stderr
    return [m["id"] for m in json.loads(listing.stdout)["messages"]]


def test_a_non_loopback_bind_needs_credentials_and_the_token_never_shows(deployment: Deployment, tmp_path: Path) -> None:
    refused = deployment.celery("serve", "--bind", "0.0.0.0", "--port", str(free_port()), timeout=30)
    assert refused.returncode == 2 and "refusing to serve on 0.0.0.0 without credentials" in refused.stderr

    token = uuid.uuid4().hex
    with serving(deployment, tmp_path, "--bind", "0.0.0.0", extra={"DLX_WEB_TOKEN": token}) as base:
        assert requests.get(base + "/", timeout=10).status_code == 401
        wrong = requests.get(base + "/", headers={"Authorization": "Bearer nope"}, timeout=10)
        assert wrong.status_code == 401
        for page in ("/", "/parked", f"/parked/message/{deployment.parked['it.flaky'][0]}", "/parked/confirm?action=replay"):
            answer = requests.get(base + page, headers={"Authorization": f"Bearer {token}"}, timeout=10)
            assert answer.status_code == 200, page
            assert token not in answer.text and SECRET not in answer.text


def test_with_redis_down_the_overview_says_so_and_still_shows_the_broker(deployment: Deployment) -> None:
    from celery_dlx.web import create_app

    app = make_app(deployment.env.env)
    app.conf.dlx_breaker_url = "redis://127.0.0.1:1/0"  # nothing listens there
    page = create_app(app).test_client().get("/")
    text = page.get_data(as_text=True)
    assert page.status_code == 200 and "circuit breakers unknown: Redis did not answer" in text
    assert 'data-key="parking.messages">10<' in text and f'data-key="pending">{len(DELAYS)}<' in text


def test_read_only_shows_the_lot_without_any_action(deployment: Deployment) -> None:
    from celery_dlx.web import create_app

    web = create_app(make_app(deployment.env.env), read_only=True).test_client()
    page = web.get("/parked").get_data(as_text=True)
    assert 'data-key="matching">10<' in page and deployment.parked["it.flaky"][0] in page
    assert "/parked/confirm" not in page and "csrf_token" not in page and "bulk-replay" not in page
    detail = web.get(f"/parked/message/{deployment.parked['it.flaky'][0]}").get_data(as_text=True)
    assert "[REDACTED]" in detail and "/parked/confirm" not in detail
