"""Celery canvas with members that retry through the broker: chain, group and chord.

A retry of celery_dlx republishes the member's own message, so what ties it into its canvas
(the chain's remaining links, the group id and index, the chord's callback) must survive the
trip through the delay queues on every Celery minor.  If it did not, a chain would stop at the
retrying link and a chord would never call back (or call back twice, or with missing results).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable

import pytest
from celery import chain, chord, group

from .conftest import DLXEnv

pytestmark = [pytest.mark.integration, pytest.mark.compat]


def test_a_chain_whose_links_retry_runs_every_link_once_to_the_end(make_env: Callable[..., DLXEnv]) -> None:
    dlx = make_env()
    key = dlx.key()
    step = dlx.app.tasks["it.step"]
    # Links 1 and 3 fail once each; every link adds one to what the previous one returned.
    result = chain(step.s(0, key, 1), step.s(key, 0), step.s(key, 1), step.s(key, 0)).apply_async()
    assert result.get(timeout=30) == 4
    arrivals = dlx.arrivals(key, 6, timeout=5)
    assert len(arrivals) == 6  # four links, two of them delivered twice
    by_id: dict[str, list[int]] = {}
    for arrival in arrivals:
        by_id.setdefault(arrival["id"], []).append(arrival["retries"])
    assert sorted(by_id.values()) == [[0], [0], [0, 1], [0, 1]]
    # The links after a retried one still belong to the chain's tree.
    assert {a["root_id"] for a in arrivals} == {result.parent.parent.parent.id}


def test_a_group_whose_members_retry_returns_every_result_in_order(make_env: Callable[..., DLXEnv]) -> None:
    dlx = make_env()
    key = dlx.key()
    member = dlx.app.tasks["it.member"]
    fails = [i % 3 for i in range(6)]  # 0, 1 and 2 retries
    result = group(member.s(key, i, fails[i]) for i in range(6)).apply_async()
    assert result.get(timeout=30) == list(range(6))
    arrivals = dlx.arrivals(key, 6 + sum(fails), timeout=5)
    assert len(arrivals) == 6 + sum(fails)


def test_a_chord_of_ten_with_five_retrying_members_calls_back_once_with_all_ten_results(
    make_env: Callable[..., DLXEnv],
) -> None:
    """The issue's acceptance check: 10 members, 5 of which retry once; one callback run."""
    dlx = make_env()
    key, callback_key = dlx.key(), dlx.key()
    dlx.keys.append(f"{callback_key}:results")
    member, collect = dlx.app.tasks["it.member"], dlx.app.tasks["it.collect"]
    header = [member.s(key, i, i % 2) for i in range(10)]
    result = chord(header)(collect.s(callback_key))
    assert result.get(timeout=30) == list(range(10))
    members = dlx.arrivals(key, 15, timeout=5)
    assert sorted(a["retries"] for a in members) == [0] * 10 + [1] * 5
    # A second callback would come within the retries' delays; give it ten times that.
    time.sleep(0.5)
    assert dlx.store.llen(callback_key) == 1
    assert [json.loads(x) for x in dlx.store.lrange(f"{callback_key}:results", 0, -1)] == [list(range(10))]
