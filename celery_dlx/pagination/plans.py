"""Page planning and the guards against endless pagination.

Pure: no Celery, no kombu, no Redis.  One request ("sync this account's 2 million followers")
becomes many small page tasks, one API call each.  This module decides *which* pages exist:

- **offset** (known set size, limit/offset): every page is planned up front and launched at once;
- **cursor** (cursor-only APIs): each page plans the next as soon as it has the cursor;
- **window** (unknown size, limit/offset): ``K`` pages start; a blank page ends its chain,
  any other page plans the page ``K`` pages further on, so at most ``K`` are in flight.

A :class:`Page` is the whole message state of a page task: primitives only (ids, offsets,
cursors, counts), never API data.  Social APIs paginate badly — LinkedIn's occasional
off-by-one returns an endless list of 1-user pages, and a short page does not always mean the
end — so :func:`next_step` stops a chain, with a :class:`Halt` reason, on a repeated cursor, a
repeated page, too many pages, or too many pages in a row that bring (almost) nothing new.
What a page brought is measured by the caller (see ``pagination.PageLedger``) and handed in as
an :class:`Observation`, so every rule here is a plain function of its inputs.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from enum import Enum
from typing import Any


def _require_int(name: str, value: object, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be a whole number >= {minimum}, got {value!r}")


class Mode(str, Enum):
    """How the next pages are found (see the module docstring)."""

    OFFSET = "offset"
    CURSOR = "cursor"
    WINDOW = "window"


class Halt(str, Enum):
    """Why a guard ended a chain of pages before the API said it was over."""

    MAX_PAGES = "max_pages"
    REPEATED_CURSOR = "repeated_cursor"
    REPEATED_PAGE = "repeated_page"
    NO_PROGRESS = "no_progress"


@dataclass(frozen=True)
class Guards:
    """Limits that keep a buggy API from paginating forever.

    - ``max_pages``: no page number reaches this; also refuses plans that would need more.
    - ``min_new_items`` / ``max_thin_pages``: a page that brings fewer than ``min_new_items``
      items not seen before in the run (capped at the page size, so 1-item pages work) is
      *thin*; ``max_thin_pages`` thin pages in a row end the chain.  One short page never ends
      anything, because short pages do not always mean the end; an endless run of 1-item
      pages does.
    """

    max_pages: int = 100_000
    min_new_items: int = 2
    max_thin_pages: int = 3

    def __post_init__(self) -> None:
        _require_int("max_pages", self.max_pages, 1)
        _require_int("min_new_items", self.min_new_items, 0)
        _require_int("max_thin_pages", self.max_thin_pages, 1)


@dataclass(frozen=True)
class Page:
    """One page task's request, small enough to travel in every message.

    ``number`` counts from 0 within the run; ``window`` is the number of chains in window mode
    (1 otherwise); ``thin`` is how many thin pages in a row led to this one.
    """

    run: str
    number: int
    size: int
    mode: Mode
    offset: int | None = None
    cursor: str | None = None
    window: int = 1
    thin: int = 0

    @property
    def task_id(self) -> str:
        """The page's Celery task id, derived from the run so that sending the same page again
        (after a retry of its parent) reuses the id instead of starting a second copy."""
        return self.run if self.number == 0 else f"{self.run}.{self.number}"

    def to_message(self) -> dict[str, Any]:
        """The JSON-ready form passed as the task's ``page`` keyword argument."""
        return {**asdict(self), "mode": self.mode.value}

    @classmethod
    def from_message(cls, message: Mapping[str, Any] | Page) -> Page:
        """Rebuild a page from :meth:`to_message` output (a :class:`Page` passes through: an
        eager re-run hands the already converted argument back)."""
        if isinstance(message, Page):
            return message
        return cls(**{**message, "mode": Mode(message["mode"])})

    def following(self, *, step: int = 1, cursor: str | None = None, thin: int = 0) -> Page:
        """The page ``step`` numbers further on (``step * size`` items further in offset terms)."""
        offset = None if self.offset is None else self.offset + step * self.size
        return Page(self.run, self.number + step, self.size, self.mode, offset, cursor, self.window, thin)


@dataclass(frozen=True)
class Observation:
    """What one page brought, as recorded for the run.

    ``cursor_page`` / ``content_page`` are the numbers of the first pages of the run that
    returned this page's next cursor / exactly this page's item ids (``None`` when there was
    no cursor / no item).  A page that is the first to see them gets its own number back, also
    when it runs again after a retry.
    """

    items: int
    new_items: int
    cursor: str | None = None
    cursor_page: int | None = None
    content_page: int | None = None


@dataclass(frozen=True)
class Step:
    """The pages to launch next, and why the chain stopped early if a guard ended it."""

    pages: tuple[Page, ...] = ()
    halt: Halt | None = None


def offset_plan(run: str, total: int, size: int, guards: Guards = Guards()) -> list[Page]:
    """Every page of a set of known size ``total``; an empty set still gets one page (it
    checks, and its task tells the tree the work is done)."""
    _require_int("total", total, 0)
    _require_int("page_size", size, 1)
    count = max(1, math.ceil(total / size))
    if count > guards.max_pages:
        raise ValueError(f"{total} items in pages of {size} need {count} pages, more than max_pages={guards.max_pages}")
    return [Page(run, n, size, Mode.OFFSET, offset=n * size) for n in range(count)]


def cursor_plan(run: str, size: int, cursor: str | None = None) -> list[Page]:
    """The first page of a cursor chain (``cursor`` resumes from a known position)."""
    _require_int("page_size", size, 1)
    return [Page(run, 0, size, Mode.CURSOR, cursor=cursor)]


def window_plan(run: str, size: int, in_flight: int, guards: Guards = Guards()) -> list[Page]:
    """The first ``in_flight`` pages of a set of unknown size."""
    _require_int("page_size", size, 1)
    _require_int("max_in_flight", in_flight, 1)
    if in_flight > guards.max_pages:
        raise ValueError(f"max_in_flight={in_flight} is more than max_pages={guards.max_pages}")
    return [Page(run, n, size, Mode.WINDOW, offset=n * size, window=in_flight) for n in range(in_flight)]


def next_step(page: Page, seen: Observation, guards: Guards) -> Step:
    """The pages ``page`` launches after bringing ``seen``, or the guard that stops its chain.

    Offset pages launch nothing (all were launched at once).  A cursor chain ends when the API
    gives no cursor; a window chain ends on a blank page (an empty cursor page is only thin:
    some APIs return empty pages mid-stream).
    """
    if page.mode is Mode.OFFSET:
        return Step()
    if page.mode is Mode.CURSOR and not seen.cursor:
        return Step()
    if page.mode is Mode.WINDOW and seen.items == 0:
        return Step()
    if page.mode is Mode.CURSOR and seen.cursor_page not in (None, page.number):
        return Step(halt=Halt.REPEATED_CURSOR)
    if seen.content_page not in (None, page.number):
        return Step(halt=Halt.REPEATED_PAGE)
    thin = page.thin + 1 if seen.new_items < min(guards.min_new_items, page.size) else 0
    if thin >= guards.max_thin_pages:
        return Step(halt=Halt.NO_PROGRESS)
    step = page.window if page.mode is Mode.WINDOW else 1
    if page.number + step >= guards.max_pages:
        return Step(halt=Halt.MAX_PAGES)
    return Step((page.following(step=step, cursor=seen.cursor, thin=thin),))


def fingerprint(item_ids: Iterable[str]) -> str | None:
    """A digest of a page's item ids, independent of their order; ``None`` for a blank page
    (blank pages are handled by the blank and thin rules, not as repeats of each other)."""
    ids = sorted(set(item_ids))
    if not ids:
        return None
    return hashlib.sha1("\x1f".join(ids).encode(), usedforsecurity=False).hexdigest()
