"""Pagination by fan-out: pure page plans and guards (:mod:`.plans`), the page ledger, the
page Task class and canvas builders (:mod:`.tasks`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import lazy_names

if TYPE_CHECKING:  # the names for type checkers, one line a module (isort would wrap them)
    # isort: off
    from .plans import Guards, Halt, Observation, Page, next_step
    from .tasks import PageLedger, PageTask, PaginationError, cursor_pages, offset_pages, window_pages
    # isort: on

#: Module (relative) -> the public names it defines, loaded on first use.
_MODULES = {
    ".plans": "Guards Halt Observation Page next_step",
    ".tasks": "PageLedger PageTask PaginationError cursor_pages offset_pages window_pages",
}

__getattr__, __dir__ = lazy_names(__name__, _MODULES)

__all__ = [
    "cursor_pages", "Guards", "Halt", "next_step", "Observation", "offset_pages", "Page", "PageLedger", "PageTask",
    "PaginationError", "window_pages",
]
