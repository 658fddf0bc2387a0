"""Helpers shared by the integration and reliability suites: where the project is, whether
this is CI, the broker's own view (rabbitmqctl), and what to do when a service is missing."""

from __future__ import annotations

import os
import shlex
import socket
import subprocess
from pathlib import Path
from urllib.parse import urlsplit

import pytest

ROOT = Path(__file__).resolve().parents[1]
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
# The broker under test (the system's 3.10.8 node by default; scripts/rabbitmq4.sh env prints
# the variables for the RabbitMQ 4.0.5 node).  DLX_RABBITMQCTL must run that broker's rabbitmqctl.
BROKER_URL = os.environ.get("DLX_TEST_BROKER_URL", "amqp://guest:guest@127.0.0.1:5672//")
MANAGEMENT_URL = os.environ.get("DLX_TEST_MANAGEMENT_URL", "http://127.0.0.1:15672")


def address(url: str, default_port: int) -> tuple[str, int]:
    """(host, port) of a broker or management URL, for :func:`reachable`."""
    parts = urlsplit(url)
    return parts.hostname or "127.0.0.1", parts.port or default_port


def rabbitmqctl(*args: str) -> str:
    """Run rabbitmqctl, the broker's own view, independent of celery_dlx and kombu.

    With RabbitMQ in Docker set DLX_RABBITMQCTL, e.g.
    ``docker compose -f docker/compose.yaml exec -T rabbitmq rabbitmqctl``.
    """
    command = shlex.split(os.environ.get("DLX_RABBITMQCTL", "rabbitmqctl"))
    return subprocess.run([*command, "-q", *args], check=True, capture_output=True, text=True).stdout


def reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=2):
            return True
    except OSError:
        return False


def missing(message: str, suite: str) -> None:
    """Skip outside CI; under CI=true fail, so CI can never go green by skipping ``suite``."""
    if IN_CI:
        pytest.fail(f"{message} (CI=true: {suite} must run)")
    pytest.skip(message)
