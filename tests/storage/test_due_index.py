"""DueIndex, the heap behind ``due_runs`` of the memory and Kafka backends: stale entries
are skipped and dropped, and the heap stays proportional to the runs in it."""

from __future__ import annotations

import random
from datetime import datetime, timedelta

from pyworkflow.storage._due import DueIndex

from .helpers import T0


def at(minutes: int) -> datetime:
    return T0 + timedelta(minutes=minutes)


def test_moves_and_removals_leave_one_entry_per_run() -> None:
    index = DueIndex()
    index.set("a", at(5))
    index.set("b", at(3))
    index.set("a", at(1))  # moved earlier: its old entry is stale
    index.set("c", at(2))
    index.set("c", None)  # finished
    index.set("b", at(7))
    index.set("b", at(3))  # moved back: two equal entries for b
    assert index.upto(at(100), 10) == [(at(1), "a"), (at(3), "b")]
    assert index.upto(at(100), 10) == [(at(1), "a"), (at(3), "b")]  # a query keeps them
    assert index.upto(at(2), 10) == [(at(1), "a")]
    assert index.upto(at(100), 1) == [(at(1), "a")]
    index.set("x", None)  # never due: nothing to do
    assert len(index) == 2


def test_many_moves_keep_the_heap_small_and_the_answers_exact() -> None:
    rng = random.Random(7)
    index = DueIndex()
    truth: dict[str, datetime] = {}
    for _ in range(50_000):
        run_id = f"run_{rng.randrange(500)}"
        due = None if rng.random() < 0.2 else at(rng.randrange(10_000))
        index.set(run_id, due)
        if due is None:
            truth.pop(run_id, None)
        else:
            truth[run_id] = due
    expected = sorted((d, r) for r, d in truth.items())
    assert index.upto(at(10_000), 10_000) == expected
    assert index.upto(at(5_000), 50) == [e for e in expected if e[0] <= at(5_000)][:50]
    assert len(index._heap) <= 2 * len(truth) + 1024 + 1
