"""Section 5: a 45-minute retry on a throwaway broker with ``consumer_timeout`` lowered."""

from __future__ import annotations

import subprocess
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import redis

from celery_dlx.testing.rabbitnode import RabbitNode, _tool

from ..harness import (
    Cleanup,
    Deployment,
    Mode,
    free_port,
    list_queues,
)


class TickNode(RabbitNode):
    """A throwaway node whose channels check ``consumer_timeout`` every 5 s (``channel_tick_interval``,
    default 60 s, not settable in rabbitmq.conf), so a timeout shows within 5 s of expiring."""

    @property
    def env(self) -> dict[str, str]:
        return {**super().env, "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": "-rabbit channel_tick_interval 5000"}

    def ctl(self, *args: str, timeout: float = 120) -> str:
        """As :meth:`RabbitNode.ctl`, run outside the project: a failing escript writes erl_crash.dump to its cwd."""
        return subprocess.run(
            [_tool("rabbitmqctl"), "-n", self.nodename, *args], env=self.env, check=True,
            capture_output=True, text=True, timeout=timeout, cwd=tempfile.gettempdir(),
        ).stdout  # fmt: skip


def section_timeout(store: redis.Redis, cleanup: Cleanup, rawdir: Path, mode: Mode, stop: threading.Event) -> dict[str, Any]:
    """Section 5: a 45-minute retry on a broker with a short consumer_timeout (runs in a thread)."""
    port = free_port()
    node = TickNode(f"dlxbench{uuid.uuid4().hex[:6]}", port, config={"consumer_timeout": str(mode.timeout_ms)})
    cleanup.push("node", node.destroy)
    try:
        node.start()
        result: dict[str, Any] = {"consumer_timeout_ms": mode.timeout_ms, "observe_seconds": mode.timeout_observe}
        deps = {
            name: Deployment(name, store, cleanup, rawdir, broker_url=node.url, node=node, loglevel="INFO")
            for name in ("countdown", "dlx_classic")
        }
        for dep in deps.values():
            cleanup.push(dep.prefix, dep._teardown)
            dep.start()
        keys = {}
        for name, dep in deps.items():
            keys[name] = dep.key()
            dep.send_retry_tasks(keys[name], [2700.0] * mode.timeout_tasks)
        samples: dict[str, list[tuple[float, int, int, int]]] = {name: [] for name in deps}
        exits = dict.fromkeys(deps, 0)
        t0 = time.monotonic()
        while time.monotonic() - t0 < mode.timeout_observe and not stop.is_set():
            for name, dep in deps.items():
                # Celery 5 exits on the channel error ("Unrecoverable error"); restart it as a
                # process supervisor (systemd Restart=always, Kubernetes) would.
                if dep.worker.process is not None and dep.worker.process.poll() is not None:
                    exits[name] += 1
                    dep.worker.start(timeout=60)
            rows = list_queues(None, "messages_ready", "messages_unacknowledged", "consumers", node=node)
            for name, dep in deps.items():
                ready, unack, consumers = rows.get(dep.work, [0, 0, 0])
                samples[name].append((round(time.monotonic() - t0, 1), ready, unack, consumers))
            time.sleep(2)
        node_log = "\n".join(p.read_text(errors="replace") for p in (node.base / "log").glob("*.log"))
        for name, dep in deps.items():
            log = dep.logfile.read_text(errors="replace")
            result[name] = {
                "tasks": mode.timeout_tasks,
                "runs": dep.runs(keys[name]),
                "worker_log_precondition_failed": sum(
                    1 for line in log.splitlines() if "CRITICAL" in line and "PRECONDITION_FAILED" in line
                ),
                "worker_log_connection_lost": log.count("Connection to broker lost"),
                # Each delivery of a task is logged "received": 1 for the task, 1 for its retry
                # (countdown only: celery_dlx's retry is not delivered within the observation);
                # anything above that is a redelivery.
                "deliveries": log.count("] received"),
                "redeliveries": max(0, log.count("] received") - mode.timeout_tasks * (2 if name == "countdown" else 1)),
                "max_unacked": max(s[2] for s in samples[name]),
                "final_unacked": samples[name][-1][2],
                "broker_pending": dep.broker_pending(),
                "worker_exits_restarted": exits[name],
                "samples": samples[name],
            }
        for dep in deps.values():
            cleanup.pop(dep.prefix)
        result["node_log_ack_timeouts"] = sum(1 for line in node_log.splitlines() if "acknowledgement" in line)
        result["node_log_lines"] = [line for line in node_log.splitlines() if "acknowledgement" in line][:3]
        return result
    finally:
        cleanup.pop("node")
