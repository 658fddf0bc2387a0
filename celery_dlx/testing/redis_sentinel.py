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
import subprocess
from pathlib import Path
from typing import Any

from .local_redis import LocalRedisGroup, refuse_busy

#: The service name the sentinels watch.
SERVICE = "dlxmaster"
SENTINELS = 3


class LocalSentinel(LocalRedisGroup):
    """Data nodes on ``data_port`` (master) and ``data_port + 1`` (replica); sentinels on
    ``sentinel_port…``; everything under ``directory``."""

    def __init__(self, data_port: int, sentinel_port: int, directory: Path, *, down_after_ms: int = 1000) -> None:
        super().__init__(directory)
        self.data_ports = [data_port, data_port + 1]
        self.sentinel_ports = list(range(sentinel_port, sentinel_port + SENTINELS))
        self.down_after_ms = down_after_ms

    @property
    def url(self) -> str:
        """The URL celery_dlx opens: every sentinel, the service, database 0."""
        return "redis+sentinel://" + ",".join(f"127.0.0.1:{p}" for p in self.sentinel_ports) + f"/{SERVICE}/0"

    def start(self) -> None:
        master, replica = self.data_ports
        self.spawn(master, [])
        self.spawn(replica, ["--replicaof", "127.0.0.1", str(master)])
        for port in self.sentinel_ports:
            self._spawn_sentinel(port)
        self.wait_for(functools.partial(self._ready, master), "a replica in sync and every sentinel watching")

    def master(self) -> int:
        """The port of the master the sentinels name now."""
        address: Any = self.node(self.sentinel_ports[0]).sentinel_get_master_addr_by_name(SERVICE)
        return int(address[1])

    def _ready(self, master: int) -> bool:
        replication = self.node(master).info("replication")
        if int(replication["connected_slaves"]) < 1 or replication["slave0"]["state"] != "online":
            return False
        for port in self.sentinel_ports:
            state: Any = self.node(port).sentinel_master(SERVICE)
            if int(state["num-other-sentinels"]) < SENTINELS - 1 or int(state["num-slaves"]) < 1:
                return False
        return True

    def _spawn_sentinel(self, port: int) -> None:
        refuse_busy(port)
        home = self.home(port)
        config = home / "sentinel.conf"  # the sentinel rewrites it with what it learns
        config.write_text(
            f"port {port}\nbind 127.0.0.1\ndir {home}\nlogfile {home / 'sentinel.log'}\n"
            f"sentinel monitor {SERVICE} 127.0.0.1 {self.data_ports[0]} 2\n"
            f"sentinel down-after-milliseconds {SERVICE} {self.down_after_ms}\n"
            f"sentinel failover-timeout {SERVICE} {4 * self.down_after_ms}\n"
        )
        command = ["redis-server", str(config), "--sentinel"]
        self.processes[port] = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
