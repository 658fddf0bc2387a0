"""A throwaway Redis Cluster on loopback ports, for tests: 3 masters and 3 replicas of the
machine's ``redis-server``.

Each node runs in a directory of its own with persistence off (``--save "" --appendonly
no``) and a short ``cluster-node-timeout``, so a killed master is replaced by its replica
within seconds.  :class:`LocalCluster` is a context manager: leaving it kills every node it
started and removes the directories, also when starting failed halfway::

    with LocalCluster(7100, tmp_path) as cluster:
        client = client_from_url(cluster.url, 1.0)
"""

from __future__ import annotations

import functools
import signal
import subprocess
from pathlib import Path

from redis.crc import key_slot

from .local_redis import LocalRedisGroup

#: Replicas per master.
REPLICAS = 1


class LocalCluster(LocalRedisGroup):
    """``masters * (1 + REPLICAS)`` nodes on ``127.0.0.1:first_port…``, in ``directory``."""

    def __init__(
        self, first_port: int, directory: Path, *, masters: int = 3, node_timeout_ms: int = 1000, wait: float = 30.0
    ) -> None:
        super().__init__(directory, wait=wait)
        self.ports = list(range(first_port, first_port + masters * (1 + REPLICAS)))
        self.node_timeout_ms = node_timeout_ms

    @property
    def url(self) -> str:
        """The cluster URL celery_dlx opens: every node as a startup node."""
        return "redis+cluster://" + ",".join(f"127.0.0.1:{port}" for port in self.ports) + "/"

    def start(self) -> None:
        for port in self.ports:
            self.spawn(port, self._cluster_options())
        for port in self.ports:
            self.wait_for(functools.partial(self._answers, port), f"node {port} answers PING", exited_fails=True)
        create = ["redis-cli", "--cluster", "create", *(f"127.0.0.1:{p}" for p in self.ports)]
        subprocess.run(
            [*create, "--cluster-replicas", str(REPLICAS), "--cluster-yes"], check=True, capture_output=True, timeout=60
        )
        self.wait_healthy()

    def wait_healthy(self) -> None:
        """Until every live node says ``cluster_state:ok`` and every live replica is in sync."""
        self.wait_for(self._healthy, "cluster_state:ok on every node, replicas in sync")

    def master_of(self, key: str) -> int:
        """The port of the master that serves ``key``'s slot now."""
        slot = key_slot(key.encode())
        for first, last, master, *_ in self.node(self._live()[0]).cluster("SLOTS"):
            if int(first) <= slot <= int(last):
                return int(master[1])
        raise LookupError(f"no master serves slot {slot}")

    def replica_of(self, port: int) -> int:
        """The port of the (first) replica of the master on ``port``."""
        return int(self.node(port).info("replication")["slave0"]["port"])

    def cut_off(self, replica: int, master: int) -> None:
        """Make ``replica`` fall behind ``master``: SIGSTOP it, then close the master's link to
        it, so nothing the master writes from now on reaches it (stopping it alone is not
        enough: what the master sends waits in the stopped replica's socket buffer).
        :meth:`resume` lets it run again."""
        self.processes[replica].send_signal(signal.SIGSTOP)
        self.node(master).client_kill_filter(_type="replica")

    def resume(self, port: int) -> None:
        self.processes[port].send_signal(signal.SIGCONT)

    def _cluster_options(self) -> list[str]:
        return [
            "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
            "--cluster-node-timeout", str(self.node_timeout_ms),
        ]  # fmt: skip

    def _answers(self, port: int) -> bool:
        return bool(self.node(port).ping())

    def _live(self) -> list[int]:
        return [port for port, process in self.processes.items() if process.poll() is None]

    def _healthy(self) -> bool:
        for port in self._live():
            node = self.node(port)
            if node.cluster("INFO")["cluster_state"] != "ok":
                return False
            replication = node.info("replication")
            if replication["role"] == "slave" and replication.get("master_link_status") != "up":
                return False
        return True
