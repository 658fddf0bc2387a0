"""Throwaway RabbitMQ nodes on loopback ports, for tests and benchmarks that restart, kill,
cluster or reconfigure a broker.

Each node has its own node name, ports, data and log directories and Erlang cookie under one
base directory, so the machine's shared broker is never touched; :meth:`RabbitNode.destroy`
removes everything.  Needs the RabbitMQ server installed (``rabbitmq-server`` in
``/usr/lib/rabbitmq/bin`` or on PATH); nodes run as the current user.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType

RABBITMQ_BIN = Path(os.environ.get("DLX_RABBITMQ_BIN", "/usr/lib/rabbitmq/bin"))


def _tool(name: str) -> str:
    path = RABBITMQ_BIN / name
    if path.exists():
        return str(path)
    found = shutil.which(name)
    if found is None:
        raise FileNotFoundError(f"{name} not found in {RABBITMQ_BIN} or on PATH; install rabbitmq-server")
    return found


class RabbitNode:
    """One RabbitMQ node: ``name@localhost`` listening on 127.0.0.1:``amqp_port``.

    ``config`` adds lines to its rabbitmq.conf (for example ``{"consumer_timeout": "60000"}``).
    Nodes meant to form a cluster must share ``cookie``.  ``management_port`` enables the
    management plugin there.  ``DLX_RABBITMQ_BIN`` picks the RabbitMQ installation (e.g. the
    4.0.5 wrappers of ``scripts/rabbitmq4.sh``).
    """

    def __init__(
        self,
        name: str,
        amqp_port: int,
        *,
        dist_port: int | None = None,
        base_dir: str | os.PathLike[str] | None = None,
        config: Mapping[str, str] | None = None,
        cookie: str = "celerydlxtestcookie",
        management_port: int | None = None,
    ) -> None:
        self.name = name
        self.amqp_port = amqp_port
        self.dist_port = dist_port if dist_port is not None else amqp_port + 20000
        self.base = Path(base_dir) if base_dir else Path(tempfile.mkdtemp(prefix=f"rabbitnode-{name}-"))
        self.config = dict(config or {})
        self.cookie = cookie
        self.management_port = management_port

    @property
    def nodename(self) -> str:
        return f"{self.name}@localhost"

    @property
    def url(self) -> str:
        """kombu/Celery broker URL of this node (default vhost, guest)."""
        return f"amqp://guest:guest@127.0.0.1:{self.amqp_port}//"

    @property
    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "HOME": str(self.base),  # the Erlang cookie is read from $HOME
            "RABBITMQ_NODENAME": self.nodename,
            "RABBITMQ_NODE_PORT": str(self.amqp_port),
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "RABBITMQ_MNESIA_BASE": str(self.base / "mnesia"),
            "RABBITMQ_LOG_BASE": str(self.base / "log"),
            "RABBITMQ_CONFIG_FILE": str(self.base / "rabbitmq.conf"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(self.base / "enabled_plugins"),
            "RABBITMQ_PID_FILE": str(self.base / "pid"),
        }

    def _prepare(self) -> None:
        for sub in ("mnesia", "log"):
            (self.base / sub).mkdir(parents=True, exist_ok=True)
        cookie = self.base / ".erlang.cookie"
        if not cookie.exists():
            cookie.write_text(self.cookie)
            cookie.chmod(0o400)
        lines = {"listeners.tcp.local": f"127.0.0.1:{self.amqp_port}", "loopback_users": "none", **self.config}
        if self.management_port is not None:
            lines.update({"management.tcp.ip": "127.0.0.1", "management.tcp.port": str(self.management_port)})
        (self.base / "rabbitmq.conf").write_text("".join(f"{k} = {v}\n" for k, v in lines.items()))
        plugins = "rabbitmq_management" if self.management_port is not None else ""
        (self.base / "enabled_plugins").write_text(f"[{plugins}].\n")

    def ctl(self, *args: str, timeout: float = 120) -> str:
        """Run ``rabbitmqctl -n <this node> args`` and return its output."""
        return subprocess.run(
            [_tool("rabbitmqctl"), "-n", self.nodename, *args],
            env=self.env, check=True, capture_output=True, text=True, timeout=timeout,
        ).stdout  # fmt: skip

    def start(self, timeout: float = 120) -> RabbitNode:
        """Start the node (data kept from an earlier run) and wait until it serves AMQP.

        ``rabbitmq-server -detached`` returns before the node has registered with epmd, and
        ``await_startup`` gives up at once (exit 69) on a node that has not registered yet; on
        a busy machine that takes more than a second, so it is asked again until ``timeout``.
        """
        self._prepare()
        subprocess.run([_tool("rabbitmq-server"), "-detached"], env=self.env, check=True, cwd=self.base)
        deadline = time.monotonic() + timeout
        while True:
            left = max(1, int(deadline - time.monotonic()))
            try:
                self.ctl("await_startup", "--timeout", str(left), timeout=left + 10)
                return self
            except subprocess.CalledProcessError:
                if time.monotonic() >= deadline:
                    raise
                time.sleep(0.5)

    def stop(self) -> None:
        """Graceful stop; messages in durable queues survive until the next :meth:`start`."""
        self.ctl("stop")

    def kill(self) -> None:
        """SIGKILL the node's Erlang VM: a crash, not a shutdown."""
        pid = self.pid
        if pid is not None:
            os.kill(pid, signal.SIGKILL)
            deadline = time.monotonic() + 30
            while _alive(pid) and time.monotonic() < deadline:
                time.sleep(0.1)

    @property
    def pid(self) -> int | None:
        try:
            return int((self.base / "pid").read_text().strip())
        except (OSError, ValueError):
            return None

    def join(self, other: RabbitNode) -> None:
        """Make this node a cluster member of ``other`` (both must share the cookie)."""
        self.ctl("stop_app")
        self.ctl("reset")
        self.ctl("join_cluster", other.nodename)
        self.ctl("start_app")

    def destroy(self) -> None:
        """Kill the node if it runs and delete its directory: nothing is left behind."""
        pid = self.pid
        if pid is not None and _alive(pid):
            try:
                self.stop()
            except (subprocess.SubprocessError, OSError):
                self.kill()
        shutil.rmtree(self.base, ignore_errors=True)

    def __enter__(self) -> RabbitNode:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.destroy()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True
