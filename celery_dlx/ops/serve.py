"""``celery -A proj dlx serve``: the dashboard (:mod:`celery_dlx.web`) on waitress.

Waitress is a production WSGI server in pure Python (no compiler, runs wherever Celery does),
multi-threaded so a slow broker call on one page does not block the others.  The web stack
is imported only when the command runs, so ``celery dlx`` works without the ``web`` extra.
"""

from __future__ import annotations

import logging
from typing import Any

import click
from celery.bin.base import CeleryCommand

DEFAULT_PORT = 5580
THREADS = 4


@click.command(cls=CeleryCommand)
@click.option("--bind", default="127.0.0.1", show_default=True, help="Address to listen on; a non-loopback one needs credentials.")
@click.option("--port", default=DEFAULT_PORT, show_default=True, type=click.IntRange(0, 65535), help="TCP port.")
@click.option("--read-only", is_flag=True, help="Show, never change: no replay or delete.")
@click.pass_context
def serve(ctx: click.Context, bind: str, port: int, read_only: bool) -> None:
    """Serve the dashboard: delay levels, work queues, breakers, and the parking lot with
    replay and delete.

    Binds to 127.0.0.1 unless --bind says otherwise; any other address needs credentials from
    the environment: DLX_WEB_TOKEN or DLX_WEB_TOKEN_FILE (bearer token), or DLX_WEB_USER with
    DLX_WEB_PASSWORD or DLX_WEB_PASSWORD_FILE (HTTP basic).
    """
    try:
        import waitress  # here, not at the top: the web extra is optional

        from ..web import create_app
        from ..web.auth import Credentials, CredentialsError, check_bind
    except ImportError as exc:
        raise click.UsageError(f"the dashboard needs the web extra: pip install 'celery_dlx[web]' ({exc})") from exc
    try:
        credentials = Credentials.from_env()
        check_bind(bind, credentials)
    except CredentialsError as exc:
        raise click.UsageError(str(exc)) from exc
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    web: Any = create_app(ctx.obj.app, read_only=read_only, credentials=credentials)
    access = "credentials required" if credentials else "no credentials, loopback only"
    click.echo(f"celery_dlx dashboard on http://{bind}:{port}/ ({'read-only, ' if read_only else ''}{access})")
    waitress.serve(web, host=bind, port=port, threads=THREADS, ident="celery_dlx")
