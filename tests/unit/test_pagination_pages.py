"""Page planning and the guards against endless pagination (pure, no servers)."""

from __future__ import annotations

import json

import pytest

from celery_dlx.pagination.plans import (
    Guards,
    Halt,
    Mode,
    Observation,
    Page,
    Step,
    cursor_plan,
    fingerprint,
    next_step,
    offset_plan,
    window_plan,
)

GUARDS = Guards(max_pages=100, min_new_items=2, max_thin_pages=3)


def cursor_page(number: int = 0, thin: int = 0, size: int = 10) -> Page:
    return Page("run", number, size, Mode.CURSOR, cursor=f"c{number}" if number else None, thin=thin)


def window_page(number: int = 0, window: int = 4, thin: int = 0) -> Page:
    return Page("run", number, 10, Mode.WINDOW, offset=number * 10, window=window, thin=thin)


def brought(
    page: Page, items: int = 10, new: int | None = None, cursor: str | None = None, **firsts: int
) -> Observation:
    """What ``page`` brought; by default it is the first page to see its cursor and content."""
    return Observation(
        items=items,
        new_items=items if new is None else new,
        cursor=cursor,
        cursor_page=firsts.get("cursor_page", page.number) if cursor else None,
        content_page=firsts.get("content_page", page.number) if items else None,
    )


def test_known_size_plans_every_page_at_once() -> None:
    pages = offset_plan("r", total=95, size=10)
    assert [p.offset for p in pages] == list(range(0, 100, 10))
    assert [p.number for p in pages] == list(range(10))
    assert {p.mode for p in pages} == {Mode.OFFSET}


def test_an_empty_known_set_still_gets_one_page_so_the_run_finishes() -> None:
    assert [(p.number, p.offset) for p in offset_plan("r", total=0, size=10)] == [(0, 0)]


def test_a_known_set_needing_more_than_max_pages_is_refused() -> None:
    with pytest.raises(ValueError, match="max_pages=10"):
        offset_plan("r", total=101, size=10, guards=Guards(max_pages=10))
    assert len(offset_plan("r", total=100, size=10, guards=Guards(max_pages=10))) == 10


def test_unknown_size_starts_k_pages_that_each_know_the_window() -> None:
    pages = window_plan("r", size=25, in_flight=3)
    assert [(p.number, p.offset, p.window) for p in pages] == [(0, 0, 3), (1, 25, 3), (2, 50, 3)]
    with pytest.raises(ValueError, match="max_in_flight"):
        window_plan("r", size=25, in_flight=5, guards=Guards(max_pages=4))


def test_a_cursor_chain_starts_with_one_page_optionally_resuming() -> None:
    assert cursor_plan("r", 50) == [Page("r", 0, 50, Mode.CURSOR)]
    assert cursor_plan("r", 50, cursor="abc")[0].cursor == "abc"


@pytest.mark.parametrize(
    "call",
    [
        lambda: offset_plan("r", total=-1, size=10),
        lambda: offset_plan("r", total=10, size=0),
        lambda: window_plan("r", size=10, in_flight=0),
        lambda: cursor_plan("r", size=True),
        lambda: Guards(max_pages=0),
        lambda: Guards(max_thin_pages=0),
        lambda: Guards(min_new_items=-1),
    ],
)
def test_nonsense_sizes_and_limits_are_refused(call: object) -> None:
    with pytest.raises(ValueError):
        call()  # type: ignore[operator]


def test_a_page_travels_as_primitives_and_comes_back_equal() -> None:
    page = Page("r", 7, 10, Mode.WINDOW, offset=70, window=4, thin=1)
    message = json.loads(json.dumps(page.to_message()))
    assert message == {
        "run": "r",
        "number": 7,
        "size": 10,
        "mode": "window",
        "offset": 70,
        "cursor": None,
        "window": 4,
        "thin": 1,
    }
    assert Page.from_message(message) == page
    assert Page.from_message(page) is page


def test_task_ids_derive_from_the_run_so_a_resent_page_keeps_its_id() -> None:
    assert cursor_page(0).task_id == "run"
    assert window_page(5).task_id == "run.5"
    assert window_page(1).following(step=4).task_id == "run.5"


def test_offset_pages_launch_nothing_more() -> None:
    page = offset_plan("r", total=30, size=10)[1]
    assert next_step(page, brought(page, items=1, new=0), GUARDS) == next_step(page, brought(page), GUARDS) == Step()


def test_a_cursor_page_launches_the_next_with_the_cursor() -> None:
    page = cursor_page(3)
    step = next_step(page, brought(page, cursor="c4"), GUARDS)
    assert step.halt is None
    assert step.pages == (Page("run", 4, 10, Mode.CURSOR, cursor="c4"),)


def test_a_cursor_chain_ends_without_a_cursor() -> None:
    page = cursor_page(3)
    assert next_step(page, brought(page, items=3, cursor=None), GUARDS).pages == ()


def test_a_short_or_even_empty_cursor_page_does_not_end_the_chain() -> None:
    page = cursor_page(3)
    assert next_step(page, brought(page, items=4, cursor="c4"), GUARDS).pages[0].thin == 0
    step = next_step(page, brought(page, items=0, cursor="c4"), GUARDS)
    assert step.pages[0].number == 4 and step.pages[0].thin == 1


def test_a_cursor_another_page_already_returned_is_a_loop() -> None:
    page = cursor_page(6)
    assert next_step(page, brought(page, cursor="c2", cursor_page=1), GUARDS).halt is Halt.REPEATED_CURSOR


def test_a_page_running_again_after_a_retry_is_not_its_own_repeat() -> None:
    page = cursor_page(6)
    seen = brought(page, cursor="c7", cursor_page=6, content_page=6)
    assert next_step(page, seen, GUARDS).pages[0].cursor == "c7"


def test_content_another_page_returned_is_a_repeated_page() -> None:
    page = window_page(9)
    assert next_step(page, brought(page, items=1, new=0, content_page=5), GUARDS).halt is Halt.REPEATED_PAGE
    page = cursor_page(9)
    assert next_step(page, brought(page, cursor="c10", content_page=2), GUARDS).halt is Halt.REPEATED_PAGE


def test_thin_pages_in_a_row_end_the_chain_and_a_full_one_resets_the_count() -> None:
    page = cursor_page(1)
    for expected_thin in (1, 2):
        (page,) = next_step(page, brought(page, items=1, cursor=f"c{page.number + 1}"), GUARDS).pages
        assert page.thin == expected_thin
    (reset,) = next_step(page, brought(page, items=10, cursor="x"), GUARDS).pages
    assert reset.thin == 0
    assert next_step(page, brought(page, items=1, cursor="y"), GUARDS).halt is Halt.NO_PROGRESS


def test_endless_1_item_pages_of_new_items_stop_after_max_thin_pages() -> None:
    """LinkedIn's off-by-one with items that look new: the minimum-progress rule ends it."""
    page, fetched = window_page(0, window=1), 0
    while True:
        step = next_step(page, brought(page, items=1), GUARDS)
        fetched += 1
        if not step.pages:
            break
        (page,) = step.pages
    assert step.halt is Halt.NO_PROGRESS and fetched == GUARDS.max_thin_pages


def test_with_1_item_pages_one_new_item_is_full_progress() -> None:
    page = cursor_page(1, size=1)
    assert next_step(page, brought(page, items=1, cursor="c2"), GUARDS).pages[0].thin == 0


def test_a_window_page_launches_the_page_k_further_and_a_blank_page_ends_its_chain() -> None:
    page = window_page(2, window=4)
    (following,) = next_step(page, brought(page, items=3), GUARDS).pages
    assert (following.number, following.offset, following.window) == (6, 60, 4)
    assert next_step(page, brought(page, items=0), GUARDS) == Step()


def test_no_page_number_reaches_max_pages() -> None:
    guards = Guards(max_pages=10)
    assert next_step(window_page(5, window=4), brought(window_page(5)), guards).pages[0].number == 9
    assert next_step(window_page(6, window=4), brought(window_page(6)), guards).halt is Halt.MAX_PAGES
    assert next_step(cursor_page(9), brought(cursor_page(9), cursor="c10"), guards).halt is Halt.MAX_PAGES


def test_fingerprints_ignore_order_and_duplicates_and_blank_pages_have_none() -> None:
    assert fingerprint(["b", "a", "a"]) == fingerprint(["a", "b"]) != fingerprint(["a", "c"])
    assert fingerprint([]) is None
