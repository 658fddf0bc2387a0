"""What the states of a task tree add up to, read in the order that never says "done" early.

Pure: no Celery, no Redis; the reads are passed in.  A tree grows while it runs (pages spawn
pages), so "every task I know of is finished" is not "the tree is finished": a task may have
spawned a child after its id was read.  celery_dlx's rule is that a task registers the
children it spawns *before* sending them and so before it finishes.  Hence the order here:

1. read the node ids;
2. read their states;
3. count the nodes again.

If every state read in 2 is final and the count in 3 equals the number read in 1, the tree is
complete: any child was registered before its parent's final state was written, which was
before that state was read in 2, which was before the count in 3 — so it would have been
counted.  Node sets only grow, so equal counts mean equal sets.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

#: Celery's state names (``celery.states``), repeated so this module stays free of Celery.
SUCCESS = "SUCCESS"
FAILED_STATES = frozenset({"FAILURE", "REVOKED"})


@dataclass(frozen=True)
class TreeProgress:
    """Counts of a tree's tasks; ``complete`` is True only when no task can still run or spawn.

    ``done`` succeeded, ``failed`` ended in FAILURE or REVOKED, ``pending`` is everything else:
    not started, running, or waiting for a retry (a retrying task is not done).
    """

    done: int
    failed: int
    pending: int
    complete: bool
    nodes: tuple[str, ...] = ()

    @property
    def total(self) -> int:
        return self.done + self.failed + self.pending


def observe_tree(
    read_nodes: Callable[[], Sequence[str]],
    read_states: Callable[[Sequence[str]], Sequence[str]],
    count_nodes: Callable[[], int],
) -> TreeProgress:
    """Read a tree in the order described in the module docstring and count its states."""
    nodes = tuple(read_nodes())
    states = read_states(nodes)
    if len(states) != len(nodes):
        raise ValueError(f"read_states returned {len(states)} states for {len(nodes)} nodes")
    done = sum(state == SUCCESS for state in states)
    failed = sum(state in FAILED_STATES for state in states)
    pending = len(nodes) - done - failed
    complete = bool(nodes) and pending == 0 and count_nodes() == len(nodes)
    return TreeProgress(done, failed, pending, complete, nodes)
