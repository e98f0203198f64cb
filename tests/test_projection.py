"""``due_at``: the one rule that maps a projected run to when it needs an executor.

Backends are held to it by the storage contract suite (``tests/storage/test_contract.py``);
here, the rule itself: it agrees with the replay fold after every event of every kind of
history, and reads run records written before its fields existed.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import msgspec
import pytest

from pyworkflow._core._events import (
    CancellationRequested,
    Event,
    HookCreated,
    HookReceived,
    WorkflowSuspended,
)
from pyworkflow._core._projection import due_at, project
from pyworkflow._core._records import RunStatus, WorkflowRun
from pyworkflow._core._replay import fold

from .storage.helpers import (
    T0,
    History,
    cancelled_history,
    expired_hook_history,
    failed_history,
    full_history,
    new_hook_id,
    raw,
    started,
)


def _news_while_running_then_suspended() -> list[Event]:
    """A cancellation while running (no wake), then a payload and a second cancellation
    while suspended (the first wakes)."""
    h = History()
    expires = T0 + timedelta(hours=1)
    started(h)
    hook_id = new_hook_id()
    h.add(HookCreated, hook_id=hook_id, hook_name="go", checkpoint=1, token=f"t:{hook_id}",
          expires_at=expires)  # fmt: skip
    h.add(CancellationRequested, reason="early")
    h.add(WorkflowSuspended, reason="hook", resume_at=expires)
    h.add(HookReceived, hook_id=hook_id, checkpoint=1, payload=raw(1))
    h.add(CancellationRequested, reason="late")
    return h.events


HISTORIES = {
    "full": lambda: full_history(History())[0],
    "cancelled": lambda: cancelled_history(History()),
    "expired_hook": lambda: expired_hook_history(History())[0],
    "failed": lambda: failed_history(History()),
    "news": _news_while_running_then_suspended,
}


@pytest.mark.parametrize("name", HISTORIES)
def test_due_at_agrees_with_the_replay_fold_after_every_event(name: str) -> None:
    events = HISTORIES[name]()
    for n in range(1, len(events) + 1):
        run = project(None, events[:n]).run
        state = fold(run.run_id, events[:n])
        due = due_at(run)
        assert run.status is state.status, n
        assert (run.woken_at is not None) == state.wake_pending, n
        if state.status is RunStatus.RUNNING:
            assert due is not None and due <= events[n - 1].timestamp, n
        elif state.status is RunStatus.SUSPENDED:
            assert (due is None) == (run.resume_at is None and not state.wake_pending), n
            if state.wake_pending:
                assert due is not None and due <= events[n - 1].timestamp, n
        else:
            assert due is None, n


def test_a_running_run_is_due_when_it_became_running() -> None:
    events, _ = full_history(History())
    resumed = events[7]
    for n in range(8, 11):  # resumed, a step started and completed, a sleep started
        assert due_at(project(None, events[:n]).run) == resumed.timestamp


def test_due_times_are_utc_and_naive_ones_are_taken_as_utc() -> None:
    east = timezone(timedelta(hours=9))
    run = WorkflowRun(
        run_id="r",
        workflow_name="w",
        status=RunStatus.SUSPENDED,
        created_at=T0,
        updated_at=T0,
        resume_at=datetime(2025, 1, 1, 9, tzinfo=east),
    )
    assert due_at(run) == T0 and due_at(run).tzinfo is UTC  # type: ignore[union-attr]
    naive = msgspec.structs.replace(run, resume_at=datetime(2025, 1, 1))
    assert due_at(naive) == T0 and due_at(naive).tzinfo is UTC  # type: ignore[union-attr]


def test_a_run_record_from_before_the_due_fields_still_decodes() -> None:
    old = (
        b'{"run_id":"r","workflow_name":"w","status":"running",'
        b'"created_at":"2025-01-01T00:00:00Z","updated_at":"2025-01-01T00:05:00Z"}'
    )
    run = msgspec.json.decode(old, type=WorkflowRun)
    assert run.running_since is None and run.woken_at is None
    assert due_at(run) == T0  # since it was created: stable, and due now
