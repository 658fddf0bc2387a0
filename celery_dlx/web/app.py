"""The dashboard's WSGI application factory: authentication, read-only mode and error pages
around the overview and parking-lot views, and ``/metrics`` for Prometheus.

``create_app(celery_app)`` returns a Flask application; mount it under a prefix of your own
web app (e.g. with werkzeug's ``DispatcherMiddleware``) or run it with ``celery dlx serve``.
"""

from __future__ import annotations

import secrets
from datetime import datetime, timezone
from typing import Any

from celery import Celery
from flask import Flask, Response, g, render_template, request
from prometheus_client import make_wsgi_app
from werkzeug.exceptions import HTTPException
from werkzeug.wrappers import Response as WSGIResponse

from ..metrics import build_registry
from . import csrf
from .auth import Credentials
from .broker import Unreachable
from .overview import overview
from .parking import parking

#: Parked messages one listing looks at (AMQP cannot page through a queue: each listing
#: receives the first messages and gives them back).
BROWSE_LIMIT = 500
PAGE_SIZE = 25


def create_app(
    celery_app: Celery,
    *,
    read_only: bool = False,
    credentials: Credentials | None = None,
    browse_limit: int = BROWSE_LIMIT,
    page_size: int = PAGE_SIZE,
) -> Flask:
    """The dashboard for ``celery_app``'s broker and Redis.

    ``read_only`` hides every action and refuses their requests; ``credentials`` (see
    :class:`~.auth.Credentials`) are then required on every request.  Without credentials,
    protect the mount point yourself, or serve on a loopback address only.
    """
    web = Flask(__name__)
    web.config.update(
        SECRET_KEY=secrets.token_bytes(32),  # signs the session cookie holding the CSRF token
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Strict",
        DLX_CELERY_APP=celery_app,
        DLX_READ_ONLY=read_only,
        DLX_BROWSE_LIMIT=browse_limit,
        DLX_PAGE_SIZE=page_size,
    )
    web.add_template_filter(utc)
    web.register_blueprint(overview)
    web.register_blueprint(parking)

    @web.before_request
    def authenticate() -> Response | None:
        if credentials is None:
            g.who = f"anonymous@{request.remote_addr}"
            return None
        who = credentials.identify(request.headers.get("Authorization"))
        if who is None:
            return Response("credentials required\n", 401, {"WWW-Authenticate": 'Basic realm="celery_dlx"'})
        g.who = f"{who}@{request.remote_addr}"
        return None

    metrics = make_wsgi_app(build_registry(celery_app))

    @web.get("/metrics")
    def prometheus() -> WSGIResponse:
        """The Prometheus exposition of :mod:`celery_dlx.metrics`, behind the same credentials."""
        return WSGIResponse.from_app(metrics, request.environ)

    @web.context_processor
    def page_context() -> dict[str, Any]:
        return {"read_only": read_only, "csrf_field": csrf.FIELD, "csrf_token": csrf.token}

    @web.errorhandler(Unreachable)
    def unreachable(error: Unreachable) -> tuple[str, int]:
        return render_template("unreachable.html", what=error.what, cause=repr(error.cause)), 503

    @web.errorhandler(HTTPException)
    def http_error(error: HTTPException) -> tuple[str, int]:
        return render_template("error.html", error=error), error.code or 500

    return web


def utc(timestamp: float) -> str:
    """A UNIX time as the pages show it: ``2026-12-06 07:35:11``, in UTC."""
    return datetime.fromtimestamp(timestamp, tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%S")
