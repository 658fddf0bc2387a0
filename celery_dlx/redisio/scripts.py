"""Lua scripts shipped in the package, for every Redis user of celery_dlx.

Each user keeps its scripts in its package's ``lua/`` folder.  The rate limiter's and the
breaker's decisions (:func:`script_source`) are ``lua/clock.lua`` here, then the package's
``lua/lib.lua``, then the script itself; plain scripts (the idempotency records, the page
ledger) are one file each (:func:`lua_source`).
"""

from __future__ import annotations

from collections.abc import Callable
from importlib.resources import files


def script_source(package: str, name: str) -> str:
    """Source of script ``name`` of ``package``: the shared clock, the package's lib, the script."""
    own = files(package) / "lua"
    parts = [files(__package__) / "lua" / "clock.lua", own / "lib.lua", own / f"{name}.lua"]
    return "\n".join(part.read_text() for part in parts)


def lua_source(package: str, name: str) -> str:
    """Source of the plain script ``lua/<name>.lua`` of ``package``."""
    return (files(package) / "lua" / f"{name}.lua").read_text()


def clock_argument(clock: Callable[[], float] | None) -> str | int:
    """The scripts' clock argument: ``''`` for Redis's own clock, else the injected time in µs."""
    return "" if clock is None else round(clock() * 1_000_000)
