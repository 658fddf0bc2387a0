"""The celery_dlx dashboard: the delay ladder, work queues, breakers and the parking lot in a
browser, with replay and delete (``celery -A proj dlx serve``).

A WSGI application (Flask, server-rendered Jinja2 templates, no JavaScript): mount
:func:`create_app` in your own web app, or let ``celery dlx serve`` run it on waitress.
Needs the ``celery_dlx[web]`` extra.
"""

from .app import create_app

__all__ = ["create_app"]
