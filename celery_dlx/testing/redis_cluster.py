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
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType

import redis
from redis.backoff import NoBackoff
from redis.crc import key_slot
from redis.retry import Retry

#: Replicas per master.
REPLICAS = 1


class ServerStartError(RuntimeError):
    """Throwaway Redis servers did not come up (a port in use, a server exited, no quorum in time)."""


class LocalCluster:
    """``masters * (1 + REPLICAS)`` nodes on ``127.0.0.1:first_port…``, in ``directory``."""

    def __init__(
        self, first_port: int, directory: Path, *, masters: int = 3, node_timeout_ms: int = 1000, wait: float = 30.0
    ) -> None:
        self.ports = list(range(first_port, first_port + masters * (1 + REPLICAS)))
        self.directory = directory
        self.node_timeout_ms = node_timeout_ms
        self.wait = wait
        self.processes: dict[int, subprocess.Popen[bytes]] = {}

    @property
    def url(self) -> str:
        """The cluster URL celery_dlx opens: every node as a startup node."""
        return "redis+cluster://" + ",".join(f"127.0.0.1:{port}" for port in self.ports) + "/"

    def __enter__(self) -> LocalCluster:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()

    def start(self) -> None:
        for port in self.ports:
            refuse_busy(port)
            self.processes[port] = self._spawn(port)
        for port in self.ports:
            self._until(functools.partial(self._answers, port), f"node {port} answers PING")
        create = ["redis-cli", "--cluster", "create", *(f"127.0.0.1:{p}" for p in self.ports)]
        subprocess.run(
            [*create, "--cluster-replicas", str(REPLICAS), "--cluster-yes"], check=True, capture_output=True, timeout=60
        )
        self.wait_healthy()

    def wait_healthy(self) -> None:
        """Until every live node says ``cluster_state:ok`` and every live replica is in sync."""
        self._until(self._healthy, "cluster_state:ok on every node, replicas in sync")

    def stop(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                process.kill()
        for process in self.processes.values():
            process.wait(timeout=10)
        self.processes.clear()
        shutil.rmtree(self.directory, ignore_errors=True)

    def master_of(self, key: str) -> int:
        """The port of the master that serves ``key``'s slot now."""
        slot = key_slot(key.encode())
        for first, last, master, *_ in self._node(self._live()[0]).cluster("SLOTS"):
            if int(first) <= slot <= int(last):
                return int(master[1])
        raise LookupError(f"no master serves slot {slot}")

    def replica_of(self, port: int) -> int:
        """The port of the (first) replica of the master on ``port``."""
        return int(self._node(port).info("replication")["slave0"]["port"])

    def cut_off(self, replica: int, master: int) -> None:
        """Make ``replica`` fall behind ``master``: SIGSTOP it, then close the master's link to
        it, so nothing the master writes from now on reaches it (stopping it alone is not
        enough: what the master sends waits in the stopped replica's socket buffer).
        :meth:`resume` lets it run again."""
        self.processes[replica].send_signal(signal.SIGSTOP)
        self._node(master).client_kill_filter(_type="replica")

    def resume(self, port: int) -> None:
        self.processes[port].send_signal(signal.SIGCONT)

    def kill(self, port: int) -> None:
        """SIGKILL the node on ``port``: no goodbye to the cluster, as when a machine dies."""
        self.processes[port].send_signal(signal.SIGKILL)
        self.processes[port].wait(timeout=10)

    def _spawn(self, port: int) -> subprocess.Popen[bytes]:
        home = self.directory / str(port)
        home.mkdir(parents=True, exist_ok=True)
        command = [
            "redis-server", "--port", str(port), "--bind", "127.0.0.1", "--dir", str(home),
            "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
            "--cluster-node-timeout", str(self.node_timeout_ms), "--save", "", "--appendonly", "no",
            "--repl-diskless-sync-delay", "0",
            "--logfile", str(home / "redis.log"),
        ]  # fmt: skip
        return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def _node(self, port: int) -> redis.Redis:
        return redis.Redis(
            port=port, socket_timeout=2, socket_connect_timeout=2, retry=Retry(NoBackoff(), 0), decode_responses=True
        )

    def _answers(self, port: int) -> bool:
        return bool(self._node(port).ping())

    def _live(self) -> list[int]:
        return [port for port, process in self.processes.items() if process.poll() is None]

    def _healthy(self) -> bool:
        for port in self._live():
            node = self._node(port)
            if node.cluster("INFO")["cluster_state"] != "ok":
                return False
            replication = node.info("replication")
            if replication["role"] == "slave" and replication.get("master_link_status") != "up":
                return False
        return True

    def _until(self, check: Callable[[], object], what: str) -> None:
        deadline = time.monotonic() + self.wait
        last: Exception | None = None
        while time.monotonic() < deadline:
            try:
                if check():
                    return
            except (redis.RedisError, OSError) as exc:
                last = exc
            dead = [port for port, process in self.processes.items() if process.poll() is not None]
            if dead and what.startswith("node"):
                raise ServerStartError(f"redis-server exited on port(s) {dead}; see {self.directory}/<port>/redis.log")
            time.sleep(0.1)
        raise ServerStartError(f"no {what} after {self.wait} s (last error: {last!r})")


def refuse_busy(port: int) -> None:
    """Refuse to start on a port something listens on (a server left running by an earlier run)."""
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
    except OSError:
        return
    raise ServerStartError(f"port {port} is in use (a server left running?); stop it or pick other ports")
