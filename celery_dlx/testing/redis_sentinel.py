"""A throwaway Sentinel-watched Redis on loopback ports, for tests: a master, a replica and
three sentinels (quorum 2) of the machine's ``redis-server``.

Persistence is off, the sentinels call the master down after ``down_after_ms`` (1 s), so a
killed master is replaced within seconds.  :class:`LocalSentinel` is a context manager that
kills every process it started and removes the directories, also when starting failed::

    with LocalSentinel(7150, 26379, tmp_path) as sentinel:
        client = client_from_url(sentinel.url, 1.0)
"""

from __future__ import annotations

import functools
import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from .redis_cluster import ServerStartError, refuse_busy

#: The service name the sentinels watch.
SERVICE = "dlxmaster"
SENTINELS = 3


class LocalSentinel:
    """Data nodes on ``data_port`` (master) and ``data_port + 1`` (replica); sentinels on
    ``sentinel_port…``; everything under ``directory``."""

    def __init__(self, data_port: int, sentinel_port: int, directory: Path, *, down_after_ms: int = 1000) -> None:
        self.data_ports = [data_port, data_port + 1]
        self.sentinel_ports = list(range(sentinel_port, sentinel_port + SENTINELS))
        self.directory = directory
        self.down_after_ms = down_after_ms
        self.processes: dict[int, subprocess.Popen[bytes]] = {}

    @property
    def url(self) -> str:
        """The URL celery_dlx opens: every sentinel, the service, database 0."""
        return "redis+sentinel://" + ",".join(f"127.0.0.1:{p}" for p in self.sentinel_ports) + f"/{SERVICE}/0"

    def __enter__(self) -> LocalSentinel:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()

    def start(self) -> None:
        master, replica = self.data_ports
        for port in [*self.data_ports, *self.sentinel_ports]:
            refuse_busy(port)
        self._spawn(master, [])
        self._spawn(replica, ["--replicaof", "127.0.0.1", str(master)])
        for port in self.sentinel_ports:
            self._spawn_sentinel(port)
        self.wait_for(functools.partial(self._ready, master), "a replica in sync and every sentinel watching")

    def stop(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                process.kill()
        for process in self.processes.values():
            process.wait(timeout=10)
        self.processes.clear()
        shutil.rmtree(self.directory, ignore_errors=True)

    def master(self) -> int:
        """The port of the master the sentinels name now."""
        address: Any = self._node(self.sentinel_ports[0]).sentinel_get_master_addr_by_name(SERVICE)
        return int(address[1])

    def kill(self, port: int) -> None:
        """SIGKILL the node on ``port``."""
        self.processes[port].send_signal(signal.SIGKILL)
        self.processes[port].wait(timeout=10)

    def wait_for(self, check: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        last: Exception | None = None
        while time.monotonic() < deadline:
            try:
                if check():
                    return
            except (redis.RedisError, OSError) as exc:
                last = exc
            time.sleep(0.1)
        raise ServerStartError(f"no {what} after {timeout} s (last error: {last!r}); see {self.directory}")

    def _ready(self, master: int) -> bool:
        replication = self._node(master).info("replication")
        if int(replication["connected_slaves"]) < 1 or replication["slave0"]["state"] != "online":
            return False
        for port in self.sentinel_ports:
            state: Any = self._node(port).sentinel_master(SERVICE)
            if int(state["num-other-sentinels"]) < SENTINELS - 1 or int(state["num-slaves"]) < 1:
                return False
        return True

    def _spawn(self, port: int, extra: list[str]) -> None:
        home = self._home(port)
        command = [
            "redis-server", "--port", str(port), "--bind", "127.0.0.1", "--dir", str(home), "--save", "",
            "--appendonly", "no", "--repl-diskless-sync-delay", "0", "--logfile", str(home / "redis.log"), *extra,
        ]  # fmt: skip
        self.processes[port] = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def _spawn_sentinel(self, port: int) -> None:
        home = self._home(port)
        config = home / "sentinel.conf"  # the sentinel rewrites it with what it learns
        config.write_text(
            f"port {port}\nbind 127.0.0.1\ndir {home}\nlogfile {home / 'sentinel.log'}\n"
            f"sentinel monitor {SERVICE} 127.0.0.1 {self.data_ports[0]} 2\n"
            f"sentinel down-after-milliseconds {SERVICE} {self.down_after_ms}\n"
            f"sentinel failover-timeout {SERVICE} {4 * self.down_after_ms}\n"
        )
        command = ["redis-server", str(config), "--sentinel"]
        self.processes[port] = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def _home(self, port: int) -> Path:
        home = self.directory / str(port)
        home.mkdir(parents=True, exist_ok=True)
        return home

    def _node(self, port: int) -> redis.Redis:
        return redis.Redis(
            port=port, socket_timeout=2, socket_connect_timeout=2, retry=Retry(NoBackoff(), 0), decode_responses=True
        )
