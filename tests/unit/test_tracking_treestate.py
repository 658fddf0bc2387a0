"""The read order and counting that keep a growing tree from looking done early (pure)."""

from __future__ import annotations

from collections.abc import Sequence

import pytest
from celery import states

from celery_dlx.tracking.progress import FAILED_STATES, SUCCESS, observe_tree

#: Celery-facing: runs on every supported Celery minor (nox -s compat).
pytestmark = pytest.mark.compat


class Tree:
    """A tree being written while it is read: ``on_state_read`` runs between the reads of the
    ids and of the states, where a running task can spawn a child and finish."""

    def __init__(self, nodes: dict[str, str]) -> None:
        self.nodes = dict(nodes)
        self.on_state_read = lambda: None

    def observe(self):  # type: ignore[no-untyped-def]
        return observe_tree(lambda: list(self.nodes), self.read_states, lambda: len(self.nodes))

    def read_states(self, ids: Sequence[str]) -> list[str]:
        self.on_state_read()
        return [self.nodes[task_id] for task_id in ids]


def test_the_state_names_are_celerys() -> None:
    assert SUCCESS == states.SUCCESS
    assert FAILED_STATES | {SUCCESS} == states.READY_STATES


def test_counts_done_failed_and_everything_else_as_pending() -> None:
    progress = Tree(
        {"a": "SUCCESS", "b": "FAILURE", "c": "REVOKED", "d": "RETRY", "e": "STARTED", "f": "PENDING"}
    ).observe()
    assert (progress.done, progress.failed, progress.pending, progress.total) == (1, 2, 3, 6)
    assert not progress.complete


def test_complete_when_every_task_is_final_including_failures() -> None:
    progress = Tree({"a": "SUCCESS", "b": "FAILURE"}).observe()
    assert progress.complete and set(progress.nodes) == {"a", "b"}


def test_a_retrying_task_is_not_done() -> None:
    assert not Tree({"root": "SUCCESS", "page": "RETRY"}).observe().complete


def test_a_child_spawned_while_states_are_read_keeps_the_tree_incomplete() -> None:
    """The parent registers its child, then finishes, between our two reads: every state we
    read is final, but the recount sees the child."""
    tree = Tree({"root": "STARTED"})

    def parent_spawns_and_finishes() -> None:
        tree.nodes["child"] = "PENDING"
        tree.nodes["root"] = "SUCCESS"

    tree.on_state_read = parent_spawns_and_finishes
    progress = tree.observe()
    assert (progress.done, progress.pending, progress.complete) == (1, 0, False)
    tree.on_state_read = lambda: None
    assert not tree.observe().complete  # the child is pending
    tree.nodes["child"] = "SUCCESS"
    assert tree.observe().complete


def test_an_empty_tree_is_not_complete() -> None:
    assert not Tree({}).observe().complete


def test_a_state_reader_that_loses_ids_is_refused() -> None:
    with pytest.raises(ValueError, match="1 states for 2 nodes"):
        observe_tree(lambda: ["a", "b"], lambda ids: ["SUCCESS"], lambda: 2)
