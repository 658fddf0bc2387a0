"""A fake paginated social-network API on 127.0.0.1 (ephemeral port) for the integration tests.

Standard library only; it serves from a thread of the test process, so a test adds datasets
and reads what was served directly, while the worker subprocess only sees URLs.  JSON answers:

- ``GET /offset/<name>?offset=&limit=``  → ``{"items": [...], "total": N}`` (known size)
- ``GET /cursor/<name>?cursor=&limit=``  → ``{"items": [...], "next": "<cursor>" or null}``
- ``GET /unknown/<name>?offset=&limit=`` → ``{"items": [...]}`` (no total; blank past the end)
- ``GET /hang/<key>``: the first request for a key never answers (until the API stops), the
  following ones answer ``{"ok": true}``.

Items are ``{"id": "<name>-<i>"}``.  A :class:`Dataset` adds the quirks social APIs have.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

#: How long a hanging request waits at most (the API's stop ends it sooner).
HANG_SECONDS = 60.0


@dataclass(frozen=True)
class Dataset:
    """``total`` items; each request takes ``delay`` s; a page starting at an offset in
    ``fail_once`` answers 503 the first time, one in ``broken`` always answers 500; with ``short_every`` = n, cursor pages at every
    n-th page position hold half a page but the list goes on; ``endless_tail`` is LinkedIn's
    off-by-one: past the end, every page is a 1-item page with the last item, and a cursor
    page always has a next cursor."""

    total: int
    delay: float = 0.0
    fail_once: frozenset[int] = frozenset()
    broken: frozenset[int] = frozenset()
    short_every: int = 0
    endless_tail: bool = False


@dataclass
class Stats:
    """What the API served for one dataset: offsets of the pages answered 200, requests, and
    the most requests it was answering at the same time."""

    served: list[int] = field(default_factory=list)
    requests: int = 0
    in_flight: int = 0
    max_in_flight: int = 0


class FakeAPI:
    """The server; :meth:`add` a dataset, point the worker at :attr:`url`, read :meth:`stats`."""

    def __init__(self) -> None:
        self._datasets: dict[str, Dataset] = {}
        self._stats: dict[str, Stats] = {}
        self._hung: Counter[str] = Counter()
        self._failed: set[tuple[str, int]] = set()
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._server.daemon_threads = True
        self._server.block_on_close = False
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> FakeAPI:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        self._server.shutdown()
        self._server.server_close()

    def add(self, dataset: Dataset) -> str:
        """Serve ``dataset`` under a new name and return the name."""
        name = uuid.uuid4().hex[:8]
        with self._lock:
            self._datasets[name] = dataset
            self._stats[name] = Stats()
        return name

    def stats(self, name: str) -> Stats:
        with self._lock:
            stats = self._stats[name]
            return Stats(list(stats.served), stats.requests, stats.in_flight, stats.max_in_flight)

    def items(self, name: str) -> list[str]:
        return [f"{name}-{i}" for i in range(self._datasets[name].total)]

    def answer(self, kind: str, name: str, query: dict[str, str]) -> tuple[int, Any]:
        """Status and JSON body for a page request (called by the handler thread)."""
        dataset = self._datasets[name]
        limit = int(query["limit"])
        offset = int(query.get("cursor", "c0")[1:]) if kind == "cursor" else int(query["offset"])
        with self._lock:
            stats = self._stats[name]
            stats.requests += 1
            stats.in_flight += 1
            stats.max_in_flight = max(stats.max_in_flight, stats.in_flight)
        try:
            self._stopping.wait(dataset.delay)
            with self._lock:
                if offset in dataset.fail_once and (name, offset) not in self._failed:
                    self._failed.add((name, offset))
                    return 503, {"error": "temporarily unavailable"}
                if offset in dataset.broken:
                    return 500, {"error": "internal error"}
                stats.served.append(offset)
            return 200, _page(kind, name, dataset, offset, limit)
        finally:
            with self._lock:
                stats.in_flight -= 1

    def hang(self, key: str) -> None:
        """Block the first request for ``key`` (until the API stops); let later ones through."""
        with self._lock:
            self._hung[key] += 1
            first = self._hung[key] == 1
        if first:
            self._stopping.wait(HANG_SECONDS)


def _page(kind: str, name: str, dataset: Dataset, offset: int, limit: int) -> dict[str, Any]:
    size = limit
    if kind == "cursor" and dataset.short_every and (offset // limit) % dataset.short_every == dataset.short_every - 1:
        size = max(1, limit // 2)
    end = min(offset + size, dataset.total)
    ids = list(range(offset, end))
    if not ids and dataset.endless_tail and dataset.total:
        ids, end = [dataset.total - 1], offset + 1  # the off-by-one: the last item again, forever
    body: dict[str, Any] = {"items": [{"id": f"{name}-{i}"} for i in ids]}
    if kind == "offset":
        body["total"] = dataset.total
    if kind == "cursor":
        body["next"] = f"c{end}" if end < dataset.total or (dataset.endless_tail and ids) else None
    return body


def _handler(api: FakeAPI) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            url = urlsplit(self.path)
            kind, _, name = url.path.strip("/").partition("/")
            query = {k: v[0] for k, v in parse_qs(url.query).items()}
            if kind == "hang":
                api.hang(name)
                self._send(200, {"ok": True})
            else:
                self._send(*api.answer(kind, name, query))

        def _send(self, status: int, body: Any) -> None:
            data = json.dumps(body).encode()
            try:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
            except OSError:
                pass  # the client gave up (a hanging request interrupted by its soft limit)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler
