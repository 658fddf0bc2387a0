"""Celery's ``retry(**options)`` / ``apply_async`` options, checked for a retry held by the broker.

Pure: takes the task's options as a mapping, imports neither Celery nor kombu.  Most options
mean the same through the delay topology as in Celery and are passed on untouched (``headers``,
``expires``, ``priority``, ``time_limit``, ``link``, ``declare``, ``delivery_mode``, …).  A few
would take away what makes a broker-held retry safe — the confirmed, mandatory publish on
celery_dlx's own connection, the JSON body every tool of celery_dlx reads — and are refused
with an error that names the option, before anything is published.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from .errors import ConfigurationError

#: Options that would publish the retry outside celery_dlx's confirmed connection.
_OWN_CONNECTION = (
    "celery_dlx publishes every retry on its own confirming connection, so that the broker's confirm "
    "(and its return of an unroutable message) is checked; a {option} of yours would bypass that. "
    "Remove {option}= from the retry"
)
REFUSED_OPTIONS: Mapping[str, str] = {
    "producer": _OWN_CONNECTION,
    "publisher": _OWN_CONNECTION,
    "connection": _OWN_CONNECTION,
}
DELIVERY_MODES = (1, 2, "transient", "persistent")


def check_retry_options(task_name: str, options: Mapping[str, Any], task_serializer: str) -> None:
    """Raise :class:`ConfigurationError` for an option a broker-held retry cannot honour.

    ``task_serializer`` is the serializer the task publishes with when the retry names none
    (the task's own, else the app's ``task_serializer``).
    """
    for option, reason in REFUSED_OPTIONS.items():
        if options.get(option) is not None:
            raise ConfigurationError(f"{task_name}: retry({option}=…) is not supported: " + reason.format(option=option))
    if options.get("mandatory", True) is not True:
        raise ConfigurationError(
            f"{task_name}: retry(mandatory={options['mandatory']!r}) is not supported: celery_dlx publishes every "
            "retry mandatory, so one that the broker cannot route is reported instead of dropped"
        )
    serializer = options.get("serializer") or task_serializer
    if serializer != "json":
        raise ConfigurationError(
            f"celery_dlx publishes retries as JSON, but task {task_name} uses the {serializer!r} serializer; "
            "set task_serializer='json'"
        )
    mode = options.get("delivery_mode")
    if mode is not None and mode not in DELIVERY_MODES:
        raise ConfigurationError(f"{task_name}: retry(delivery_mode={mode!r}) must be one of {DELIVERY_MODES}")
    timeout = options.get("confirm_timeout")
    if timeout is not None and (
        isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not math.isfinite(timeout) or timeout <= 0
    ):
        raise ConfigurationError(f"{task_name}: retry(confirm_timeout={timeout!r}) must be a positive number of seconds")
