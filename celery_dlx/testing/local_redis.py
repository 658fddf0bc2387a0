"""What the throwaway Redis groups for tests (:mod:`.redis_cluster`, :mod:`.redis_sentinel`)
share: loopback ``redis-server`` processes in directories of their own, persistence off,
killed and removed on leaving, also when starting failed halfway.

The shared part is here so the two groups start, wait for and clean up their servers the same
way; each subclass only says which servers it runs and when they are ready.
"""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import TypeVar

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

G = TypeVar("G", bound="LocalRedisGroup")


class ServerStartError(RuntimeError):
    """Throwaway Redis servers did not come up (a port in use, a server exited, no quorum in time)."""


class LocalRedisGroup(ABC):
    """Servers on loopback ports under ``directory``; ``wait`` bounds every wait for them.

    A context manager: entering runs :meth:`start` (the subclass's), leaving runs :meth:`stop`.
    """

    def __init__(self, directory: Path, *, wait: float = 30.0) -> None:
        self.directory = directory
        self.wait = wait
        self.processes: dict[int, subprocess.Popen[bytes]] = {}

    def __enter__(self: G) -> G:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()

    @abstractmethod
    def start(self) -> None:
        """Start the group's servers and wait until they are ready."""

    def stop(self) -> None:
        """Kill every server this group started and remove its directories."""
        for process in self.processes.values():
            if process.poll() is None:
                process.kill()
        for process in self.processes.values():
            process.wait(timeout=10)
        self.processes.clear()
        shutil.rmtree(self.directory, ignore_errors=True)

    def kill(self, port: int) -> None:
        """SIGKILL the server on ``port``: no goodbye to its peers, as when a machine dies."""
        self.processes[port].send_signal(signal.SIGKILL)
        self.processes[port].wait(timeout=10)

    def wait_for(self, check: Callable[[], object], what: str, *, exited_fails: bool = False) -> None:
        """Until ``check()`` is true (Redis errors count as not yet), at most :attr:`wait` s;
        with ``exited_fails`` a server that exited ends the wait at once (it will not come up)."""
        deadline = time.monotonic() + self.wait
        last: Exception | None = None
        while time.monotonic() < deadline:
            try:
                if check():
                    return
            except (redis.RedisError, OSError) as exc:
                last = exc
            dead = [port for port, process in self.processes.items() if process.poll() is not None]
            if dead and exited_fails:
                raise ServerStartError(f"redis-server exited on port(s) {dead}; see {self.directory}/<port>/redis.log")
            time.sleep(0.1)
        raise ServerStartError(f"no {what} after {self.wait} s (last error: {last!r}); see {self.directory}")

    def spawn(self, port: int, extra: list[str]) -> None:
        """Start a data server on ``port`` (persistence off, log in its directory) with ``extra`` options."""
        refuse_busy(port)
        home = self.home(port)
        command = [
            "redis-server", "--port", str(port), "--bind", "127.0.0.1", "--dir", str(home), "--save", "",
            "--appendonly", "no", "--repl-diskless-sync-delay", "0", "--logfile", str(home / "redis.log"), *extra,
        ]  # fmt: skip
        self.processes[port] = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def home(self, port: int) -> Path:
        """The directory of the server on ``port``, created on first use."""
        home = self.directory / str(port)
        home.mkdir(parents=True, exist_ok=True)
        return home

    def node(self, port: int) -> redis.Redis:
        """A client of the one server on ``port`` (short timeouts, no retry: a check, not a user)."""
        return redis.Redis(
            port=port, socket_timeout=2, socket_connect_timeout=2, retry=Retry(NoBackoff(), 0), decode_responses=True
        )


def refuse_busy(port: int) -> None:
    """Refuse to start on a port something listens on (a server left running by an earlier run)."""
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
    except OSError:
        return
    raise ServerStartError(f"port {port} is in use (a server left running?); stop it or pick other ports")
