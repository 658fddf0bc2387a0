"""Pagination by fan-out: pure page plans and guards (:mod:`.plans`), the page ledger, the
page Task class and canvas builders (:mod:`.tasks`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import lazy_names

if TYPE_CHECKING:
    from .plans import Guards, Halt, Observation, Page, next_step
    from .tasks import PageLedger, PageTask, PaginationError, cursor_pages, offset_pages, window_pages

_NAMES = {
    "Guards": ".plans",
    "Halt": ".plans",
    "Observation": ".plans",
    "Page": ".plans",
    "next_step": ".plans",
    "PageLedger": ".tasks",
    "PageTask": ".tasks",
    "PaginationError": ".tasks",
    "cursor_pages": ".tasks",
    "offset_pages": ".tasks",
    "window_pages": ".tasks",
}

__getattr__, __dir__ = lazy_names(__name__, _NAMES)

__all__ = [
    "cursor_pages",
    "Guards",
    "Halt",
    "next_step",
    "Observation",
    "offset_pages",
    "Page",
    "PageLedger",
    "PageTask",
    "PaginationError",
    "window_pages",
]
