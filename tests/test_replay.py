"""The replay fold: deterministic, strict about what the log may contain."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import msgspec
import pytest

from pyworkflow import CorruptRecordError
from pyworkflow._core._events import (
    HookCreated,
    HookReceived,
    SleepCompleted,
    SleepStarted,
    StepCompleted,
    StepStarted,
    WorkflowStarted,
    WorkflowSuspended,
    decode_event,
)
from pyworkflow._core._records import RunStatus
from pyworkflow._core._replay import Kind, fold

T0 = datetime(2025, 1, 1, tzinfo=UTC)
RUN = "run_00000000000000aa"


def started(seq: int = 1) -> WorkflowStarted:
    return WorkflowStarted(run_id=RUN, sequence=seq, timestamp=T0, workflow_name="wf")


def step_done(seq: int, checkpoint: int, name: str = "s") -> StepCompleted:
    return StepCompleted(
        run_id=RUN,
        sequence=seq,
        timestamp=T0,
        step_id=f"{RUN}.{checkpoint}",
        step_name=name,
        checkpoint=checkpoint,
        attempt=1,
        result=msgspec.Raw(b"1"),
    )


def test_fold_builds_checkpoints_by_call_order() -> None:
    due = T0 + timedelta(hours=1)
    state = fold(
        RUN,
        [
            started(),
            StepStarted(
                run_id=RUN,
                sequence=2,
                timestamp=T0,
                step_id=f"{RUN}.1",
                step_name="s",
                checkpoint=1,
                attempt=1,
            ),
            step_done(3, 1),
            SleepStarted(
                run_id=RUN, sequence=4, timestamp=T0, checkpoint=2, duration=3600, resume_at=due
            ),
            WorkflowSuspended(run_id=RUN, sequence=5, timestamp=T0, reason="sleep", resume_at=due),
        ],
    )
    assert state.status is RunStatus.SUSPENDED and state.last_sequence == 5
    assert (state.checkpoints[1].kind, state.checkpoints[1].resolved) == (Kind.STEP, True)
    assert state.checkpoints[2].kind is Kind.SLEEP and not state.checkpoints[2].resolved
    assert state.next_due() == due
    assert not state.is_due(due - timedelta(seconds=1)) and state.is_due(due)


def test_same_events_same_state() -> None:
    events = [started(), step_done(2, 1), step_done(3, 2)]
    a, b = fold(RUN, events), fold(RUN, events)
    assert a.checkpoints == b.checkpoints and a.last_sequence == b.last_sequence == 3


@pytest.mark.parametrize(
    ("events", "why"),
    [
        ([started(), started(2)], "second workflow_started"),
        ([started(), step_done(3, 1)], "sequence 3, expected 2"),
        ([started(), step_done(2, 1), step_done(3, 1)], "already has its outcome"),
        ([started(), step_done(2, 1, "a"), step_done(3, 1, "b")], "recorded as step 'a'"),
        (
            [started(), SleepCompleted(run_id=RUN, sequence=2, timestamp=T0, checkpoint=1)],
            "no sleep checkpoint 1",
        ),
    ],
)
def test_contradictions_are_rejected(events: list, why: str) -> None:  # type: ignore[type-arg]
    with pytest.raises(CorruptRecordError, match=why):
        fold(RUN, events)


def test_hook_payload_wakes_a_suspended_run() -> None:
    state = fold(
        RUN,
        [
            started(),
            HookCreated(
                run_id=RUN,
                sequence=2,
                timestamp=T0,
                hook_id="hook_x",
                hook_name="h",
                checkpoint=1,
                token=f"{RUN}:hook_x",
            ),
            WorkflowSuspended(run_id=RUN, sequence=3, timestamp=T0, reason="hook"),
        ],
    )
    assert not state.is_due(T0 + timedelta(days=365))  # no timer: waits for the payload
    state.apply(
        HookReceived(
            run_id=RUN,
            sequence=4,
            timestamp=T0,
            hook_id="hook_x",
            checkpoint=1,
            payload=msgspec.Raw(b'{"ok":true}'),
        )
    )
    assert state.is_due(T0) and state.checkpoints[1].resolved


def test_unknown_event_types_are_rejected() -> None:
    line = (
        b'{"type":"step_teleported","run_id":"r","sequence":1,"timestamp":"2025-01-01T00:00:00Z"}'
    )
    with pytest.raises(msgspec.ValidationError, match="step_teleported"):
        decode_event(line)


def test_events_serialize_flat_with_a_top_level_type() -> None:
    data = msgspec.json.decode(msgspec.json.encode(step_done(3, 1)))
    assert data["type"] == "step_completed"
    assert {"run_id", "sequence", "timestamp", "step_id", "step_name", "result"} <= set(data)
    assert step_done(3, 1).data == {
        "step_id": f"{RUN}.1",
        "step_name": "s",
        "checkpoint": 1,
        "attempt": 1,
        "result": 1,
    }
