"""Lazy public names for a package (PEP 562): importing a package costs nothing until a name
is used, so ``import celery_dlx.broker.plan`` loads neither Celery nor kombu nor redis."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from importlib import import_module
from typing import Any


def lazy_names(package: str, modules: Mapping[str, str]) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``__getattr__`` and ``__dir__`` for ``package``, whose ``modules`` (relative names) map
    to the public names each defines (separated by spaces); a name is imported on first use
    and then cached."""
    names = {name: module for module, defined in modules.items() for name in defined.split()}

    def __getattr__(name: str) -> Any:
        module = names.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(import_module(module, package), name)
        setattr(import_module(package), name, value)
        return value

    def __dir__() -> list[str]:
        return sorted(set(names) | set(vars(import_module(package))))

    return __getattr__, __dir__
