"""``python -m celery_dlx.metrics -A proj.celery:app --port 9808``: serve ``/metrics`` for an app.

A small stand-alone exporter (``prometheus_client``'s HTTP server), for deployments that do
not run the dashboard (``celery dlx serve``, which serves ``/metrics`` too).  Binds to
127.0.0.1 unless ``--bind`` says otherwise: the metrics name tasks and queues.
"""

from __future__ import annotations

import argparse
import signal
import threading

from celery.utils.imports import symbol_by_name
from prometheus_client import start_http_server

from .collector import build_registry


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m celery_dlx.metrics", description=__doc__.splitlines()[0])
    parser.add_argument("-A", "--app", required=True, help="the Celery app, as module:attribute (as `celery -A`)")
    parser.add_argument("--bind", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")
    parser.add_argument("--port", type=int, default=9808, help="port to listen on (default: 9808)")
    args = parser.parse_args(argv)
    app = symbol_by_name(args.app)
    server, thread = start_http_server(args.port, addr=args.bind, registry=build_registry(app))
    print(f"celery_dlx metrics of {app.main} on http://{args.bind}:{server.server_port}/metrics", flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        stop.wait()
    except KeyboardInterrupt:
        pass
    server.shutdown()
    thread.join()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
