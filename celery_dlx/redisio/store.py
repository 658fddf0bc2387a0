"""Base of the Redis storages whose every operation is one packaged Lua script (the rate
limiter's and the circuit breaker's)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar, TypeVar

from .client import Client, client_from_url, guarded, require_timeouts
from .scripts import clock_argument, script_source

T = TypeVar("T")
S = TypeVar("S", bound="ScriptedStore")


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

    def __init__(self, client: Client, *, clock: Callable[[], float] | None = None) -> None:
        require_timeouts(client, self.purpose)
        self.client = client
        self._clock = clock
        package = type(self).__module__.rpartition(".")[0]
        self._scripts = {name: client.register_script(script_source(package, name)) for name in self.scripts}

    @classmethod
    def from_url(
        cls: type[S], url: str, *, timeout: float | None = None, clock: Callable[[], float] | None = None, **options: Any
    ) -> S:
        """A storage on a new client for ``url`` with ``timeout`` s socket timeouts (default
        :attr:`default_timeout`) and one retry.

        ``url`` is any URL :func:`~.client.client_from_url` opens (one server, a cluster, a
        Sentinel's master); ``options`` go to redis-py.
        """
        return cls(client_from_url(url, cls.default_timeout if timeout is None else timeout, **options), clock=clock)

    def _now(self) -> str | int:
        return clock_argument(self._clock)

    def _guard(self, call: Callable[..., T], *args: Any) -> T:
        return guarded(call, self.unavailable, *args)
