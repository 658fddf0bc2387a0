"""The Celery app the dashboard's browser test serves: ``breaker_app``'s app (same
``DLX_TEST_*`` and ``DLX_BR_PREFIX`` environment) with a breaker policy that stays open for ten
minutes, so the overview and ``celery dlx status --json`` see the same state during the test."""

from __future__ import annotations

import os
from collections.abc import Mapping

from celery import Celery

from celery_dlx.breaker import Policy

from .breaker_app import make_app as make_breaker_app

POLICY = Policy(threshold=3, window=600, open_for=600, max_open_for=600, probes=1, close_after=1)


def make_app(env: Mapping[str, str]) -> Celery:
    app = make_breaker_app(env)
    app.conf.dlx_breaker_policies = {"facebook": POLICY}
    return app


app = make_app(os.environ) if "DLX_BR_PREFIX" in os.environ else None
