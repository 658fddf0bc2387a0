"""Base of the Redis storages whose every operation is one packaged Lua script (the rate
limiter's and the circuit breaker's).

A storage made by :meth:`ScriptedStore.from_url` for a Redis Cluster that cannot be reached yet
(a worker starting while the cluster is down) is still made: its client is built on first use,
and until then every operation raises :attr:`ScriptedStore.unavailable`, which the limiter's and
the breaker's ``on_unavailable`` policies handle.  So a storage built at import time never
turns a cluster outage into a worker that cannot start.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from typing import Any, ClassVar, TypeVar

from .client import UNAVAILABLE, Client, client_from_url, guarded, require_timeouts
from .scripts import clock_argument, script_source

T = TypeVar("T")
S = TypeVar("S", bound="ScriptedStore")
#: Makes the client of a storage whose cluster could not be reached when it was made.
Connect = Callable[[], Client]


class ScriptedStore:
    """A client with socket timeouts (refused without), the package's scripts registered, an
    injectable clock passed to them, and Redis being unreachable raised as :attr:`unavailable`."""

    #: What the storage is for, named when a client without timeouts is refused.
    purpose: ClassVar[str]
    #: The storage's "Redis did not answer" error.
    unavailable: ClassVar[type[Exception]]
    #: Socket timeouts of :meth:`from_url`, in seconds.
    default_timeout: ClassVar[float]
    #: The scripts (``lua/<name>.lua`` of the subclass's package), registered as ``_scripts[name]``.
    scripts: ClassVar[tuple[str, ...]]

    def __init__(
        self, client: Client | None = None, *, clock: Callable[[], float] | None = None, connect: Connect | None = None
    ) -> None:
        """A storage on ``client``, or on the client ``connect()`` makes when first needed."""
        if client is None and connect is None:
            raise TypeError("a storage needs a client (or a way to connect)")
        self._client: Client | None = None
        self._registered: dict[str, Any] = {}
        self._connect = connect
        self._connecting = threading.Lock()
        self._clock = clock
        if client is not None:
            self._use(client)

    @property
    def client(self) -> Client:
        """The client; raises :attr:`unavailable` while a deferred cluster cannot be reached."""
        if self._client is None:
            with self._connecting:
                if self._client is None and self._connect is not None:
                    self._use(guarded(self._connect, self.unavailable))
        if self._client is None:
            raise self.unavailable("no Redis client")
        return self._client

    @property
    def _scripts(self) -> dict[str, Any]:
        """The registered scripts by name (connecting first when the client was deferred)."""
        if self._client is None:
            _ = self.client  # connects, or raises unavailable
        return self._registered

    def _use(self, client: Client) -> None:
        require_timeouts(client, self.purpose)
        package = type(self).__module__.rpartition(".")[0]
        self._registered = {name: client.register_script(script_source(package, name)) for name in self.scripts}
        self._client = client

    @classmethod
    def from_url(
        cls: type[S], url: str, *, timeout: float | None = None, clock: Callable[[], float] | None = None, **options: Any
    ) -> S:
        """A storage on a new client for ``url`` with ``timeout`` s socket timeouts (default
        :attr:`default_timeout`) and one retry.

        ``url`` is any URL :func:`~.client.client_from_url` opens (one server, a cluster, a
        Sentinel's master); ``options`` go to redis-py.
        """
        connect = functools.partial(client_from_url, url, cls.default_timeout if timeout is None else timeout, **options)
        try:
            return cls(connect(), clock=clock)
        except UNAVAILABLE:  # a cluster whose nodes do not answer yet: connect on first use
            return cls(clock=clock, connect=connect)

    def _now(self) -> str | int:
        return clock_argument(self._clock)

    def _guard(self, call: Callable[..., T], *args: Any) -> T:
        return guarded(call, self.unavailable, *args)
