"""Testing a TwitterTask with the celery_dlx pytest plugin (the example in README.md).

A fake Twitter answers the first call with 429 and an ``x-rate-limit-reset`` five minutes
ahead, then 200.  The task retries through the real broker after the reset (the retry asks
for >= 300 s) and succeeds; with ``dlx_time_scale = 0.001`` that takes about 0.3 s.
Run: ``pytest examples/testing`` with RabbitMQ on 127.0.0.1 and rabbitmqctl available.
"""

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests
from celery import Celery

from celery_dlx import TwitterTask

app = Celery("twitter_example", broker="amqp://guest:guest@127.0.0.1:5672//", backend="rpc://")


@app.task(bind=True, base=TwitterTask, shared=False)
def fetch_timeline(self, url):
    try:
        response = requests.get(url, timeout=5)
    except requests.RequestException as exc:
        self.handle_exception(exc)
    return self.check(response).json()["data"]


class FakeTwitter(BaseHTTPRequestHandler):
    calls = 0

    def do_GET(self):
        FakeTwitter.calls += 1
        if FakeTwitter.calls == 1:
            status, body = 429, {"title": "Too Many Requests", "status": 429}
            headers = {"x-rate-limit-remaining": "0", "x-rate-limit-reset": str(int(time.time()) + 300)}
        else:
            status, body, headers = 200, {"data": ["hello"]}, {}
        payload = json.dumps(body).encode()
        self.send_response(status)
        for name, value in {**headers, "content-type": "application/json"}.items():
            self.send_header(name, value)
        self.send_header("content-length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args):
        pass


@pytest.fixture
def twitter_url():
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeTwitter)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/2/users/1/tweets"
    server.shutdown()


@pytest.fixture
def dlx_app():
    return app


def test_rate_limit_is_waited_out_through_the_broker(dlx_worker, twitter_url):
    started = time.monotonic()
    result = fetch_timeline.delay(twitter_url)
    assert result.get(timeout=10) == ["hello"]
    assert time.monotonic() - started < 1.0
    (retry,) = dlx_worker.history(result.id)
    assert retry.verdict.kind == "RATE_LIMITED"
    assert retry.delay >= 299  # the reset, measured against the response's Date header (1 s resolution)
    assert FakeTwitter.calls == 2
