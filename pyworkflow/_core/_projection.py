"""Projection of events onto run, step and hook records.

Every backend keeps these records for fast queries and derives them with these functions
only, so the records of every backend are the same fold of the same log.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import assert_never

import msgspec

from .._exceptions import CorruptRecordError
from ._events import (
    CancellationRequested,
    ChildWorkflowCancelled,
    ChildWorkflowCompleted,
    ChildWorkflowFailed,
    ChildWorkflowStarted,
    Event,
    HookCreated,
    HookExpired,
    HookReceived,
    SleepCompleted,
    SleepStarted,
    StepCompleted,
    StepContextSet,
    StepFailed,
    StepRetrying,
    StepStarted,
    WorkflowCancelled,
    WorkflowCompleted,
    WorkflowContinuedAsNew,
    WorkflowFailed,
    WorkflowResumed,
    WorkflowStarted,
    WorkflowSuspended,
)
from ._records import HookRecord, HookStatus, RunStatus, StepRecord, WorkflowRun

__all__ = ["DUE_EVENTS", "Projection", "due_at", "project"]

_replace = msgspec.structs.replace


def _plain(raw: msgspec.Raw) -> object:
    return msgspec.json.decode(raw)


class Projection(msgspec.Struct):
    """What one append changes: the new run record and the touched step/hook records."""

    run: WorkflowRun
    steps: dict[str, StepRecord]
    hooks: dict[str, HookRecord]


def project(
    run: WorkflowRun | None,
    events: Sequence[Event],
    steps: dict[str, StepRecord] | None = None,
    hooks: dict[str, HookRecord] | None = None,
) -> Projection:
    """Fold ``events`` onto ``run`` (None before ``workflow_started``).

    ``steps``/``hooks`` map ids to current records for the ids the events touch (a backend
    may pass only what it has at hand; missing ones are rebuilt from the events).
    """
    touched_steps: dict[str, StepRecord] = {}
    touched_hooks: dict[str, HookRecord] = {}
    known_steps = steps or {}
    known_hooks = hooks or {}
    for event in events:
        run = _apply_run(run, event)
        if isinstance(event, StepStarted | StepCompleted | StepFailed | StepRetrying):
            prev = touched_steps.get(event.step_id) or known_steps.get(event.step_id)
            touched_steps[event.step_id] = _apply_step(prev, event)
        elif isinstance(event, HookCreated | HookReceived | HookExpired):
            prev_hook = touched_hooks.get(event.hook_id) or known_hooks.get(event.hook_id)
            touched_hooks[event.hook_id] = _apply_hook(prev_hook, event)
    if run is None:
        msg = "a projection needs at least a workflow_started event"
        raise CorruptRecordError(msg)
    return Projection(run=run, steps=touched_steps, hooks=touched_hooks)


def _apply_run(run: WorkflowRun | None, event: Event) -> WorkflowRun:
    if run is None:
        if not isinstance(event, WorkflowStarted):
            msg = (
                f"run {event.run_id!r}: the first event is {event.type.value!r}, "
                "expected 'workflow_started'"
            )
            raise CorruptRecordError(msg)
        return WorkflowRun(
            run_id=event.run_id,
            workflow_name=event.workflow_name,
            status=RunStatus.RUNNING,
            created_at=event.timestamp,
            updated_at=event.timestamp,
            args=_plain(event.args),
            kwargs=_plain(event.kwargs),
            tags=event.tags,
            idempotency_key=event.idempotency_key,
            continued_from_run_id=event.continued_from_run_id or None,
            parent_run_id=event.parent_run_id or None,
            nesting_depth=event.nesting_depth or 0,
            schedule_id=event.schedule_id or None,
            scheduled_time=event.scheduled_time or None,
            last_sequence=event.sequence,
            running_since=event.timestamp,
        )
    ts, seq = event.timestamp, event.sequence
    match event:  # the most frequent events first
        case StepCompleted():
            return _replace(run, step_count=run.step_count + 1, updated_at=ts, last_sequence=seq)
        case (
            StepStarted()
            | StepFailed()
            | StepRetrying()
            | SleepStarted()
            | SleepCompleted()
            | HookCreated()
            | HookExpired()
            | StepContextSet()
            | ChildWorkflowStarted()
        ):
            return _replace(run, updated_at=ts, last_sequence=seq)
        case (
            HookReceived()
            | ChildWorkflowCompleted()
            | ChildWorkflowFailed()
            | ChildWorkflowCancelled()
        ):
            return _replace(run, woken_at=_woken(run, ts), updated_at=ts, last_sequence=seq)
        case WorkflowStarted():
            msg = f"run {event.run_id!r}: a second workflow_started at sequence {seq}"
            raise CorruptRecordError(msg)
        case WorkflowSuspended():
            return _replace(
                run,
                status=RunStatus.SUSPENDED,
                suspended_reason=event.reason,
                resume_at=event.resume_at,
                running_since=None,
                woken_at=None,
                updated_at=ts,
                last_sequence=seq,
            )
        case WorkflowResumed():
            return _replace(
                run,
                status=RunStatus.RUNNING,
                suspended_reason=None,
                resume_at=None,
                running_since=ts,
                woken_at=None,
                updated_at=ts,
                last_sequence=seq,
            )
        case WorkflowCompleted():
            return _finish(run, event, RunStatus.COMPLETED, result=_plain(event.result))
        case WorkflowFailed():
            return _finish(
                run,
                event,
                RunStatus.FAILED,
                error_type=event.error_type,
                error_message=event.error_message,
            )
        case WorkflowCancelled():
            return _finish(run, event, RunStatus.CANCELLED, cancellation_reason=event.reason)
        case WorkflowContinuedAsNew():
            return _finish(
                run, event, RunStatus.CONTINUED_AS_NEW, continued_to_run_id=event.new_run_id
            )
        case CancellationRequested():
            return _replace(
                run,
                cancellation_requested=True,
                cancellation_reason=event.reason,
                woken_at=_woken(run, ts),
                updated_at=ts,
                last_sequence=seq,
            )
        case _:
            assert_never(event)


def _finish(
    run: WorkflowRun,
    event: WorkflowCompleted | WorkflowFailed | WorkflowCancelled | WorkflowContinuedAsNew,
    status: RunStatus,
    **changes: object,
) -> WorkflowRun:
    return _replace(
        run,
        status=status,
        completed_at=event.timestamp,
        updated_at=event.timestamp,
        last_sequence=event.sequence,
        suspended_reason=None,
        resume_at=None,
        running_since=None,
        woken_at=None,
        **changes,
    )


def _woken(run: WorkflowRun, ts: datetime) -> datetime | None:
    """A hook payload, a child's outcome or a cancellation at ``ts`` wakes a suspended run;
    the first one counts (the same rule as ``RunState.wake_pending`` in ``_replay``)."""
    if run.status is RunStatus.SUSPENDED and run.woken_at is None:
        return ts
    return run.woken_at


DUE_EVENTS = (
    WorkflowStarted,
    WorkflowSuspended,
    WorkflowResumed,
    WorkflowCompleted,
    WorkflowFailed,
    WorkflowCancelled,
    WorkflowContinuedAsNew,
    CancellationRequested,
    HookReceived,
    ChildWorkflowCompleted,
    ChildWorkflowFailed,
    ChildWorkflowCancelled,
)
"""The events that may change :func:`due_at` of a run; no other event does (steps never)."""


def due_at(run: WorkflowRun) -> datetime | None:
    """When ``run`` needs an executor (in UTC), or None: the rule of the due-runs index.

    * ``running``: since the event that made it running (``running_since``). It stays due
      while running, so a run whose executor died is found again; the runtime skips runs
      whose lock is held.
    * ``suspended``: at its timer (``resume_at``), or at once if a hook payload or a
      cancellation arrived since it suspended (``woken_at``), whichever is earlier. A run
      waiting for a hook with no timer and no such news is not due.
    * finished (completed, failed, cancelled, continued as new): never.
    """
    if run.status is RunStatus.RUNNING:
        return _utc(run.running_since or run.created_at)  # None: a record of an older version
    if run.status is RunStatus.SUSPENDED:
        if run.woken_at is not None:
            woken = _utc(run.woken_at)
            return woken if run.resume_at is None else min(woken, _utc(run.resume_at))
        return None if run.resume_at is None else _utc(run.resume_at)
    return None


def _utc(moment: datetime) -> datetime:
    """``moment`` in UTC (a naive one is taken as UTC), so due times compare and sort alike
    on every backend."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def _apply_step(
    prev: StepRecord | None, event: StepStarted | StepCompleted | StepFailed | StepRetrying
) -> StepRecord:
    base = prev or StepRecord(
        step_id=event.step_id,
        run_id=event.run_id,
        step_name=event.step_name,
        checkpoint=event.checkpoint,
        status="running",
        attempt=event.attempt,
        updated_at=event.timestamp,
    )
    common = {"attempt": event.attempt, "updated_at": event.timestamp}
    match event:
        case StepStarted():
            return _replace(base, status="running", resume_at=None, **common)
        case StepCompleted():
            return _replace(base, status="completed", result=_plain(event.result), **common)
        case StepFailed():
            return _replace(
                base,
                status="failed" if event.final else "retrying",
                error_type=event.error_type,
                error_message=event.error_message,
                **common,
            )
        case StepRetrying():
            return _replace(base, status="retrying", resume_at=event.resume_at, **common)
        case _:
            assert_never(event)


def _apply_hook(
    prev: HookRecord | None, event: HookCreated | HookReceived | HookExpired
) -> HookRecord:
    if isinstance(event, HookCreated):
        return HookRecord(
            hook_id=event.hook_id,
            run_id=event.run_id,
            hook_name=event.hook_name,
            token=event.token,
            checkpoint=event.checkpoint,
            status=HookStatus.PENDING,
            created_at=event.timestamp,
            expires_at=event.expires_at,
        )
    if prev is None:
        msg = f"run {event.run_id!r}: {event.type.value} for unknown hook {event.hook_id!r}"
        raise CorruptRecordError(msg)
    if isinstance(event, HookReceived):
        return _replace(
            prev,
            status=HookStatus.RECEIVED,
            received_at=event.timestamp,
            payload=_plain(event.payload),
        )
    return _replace(prev, status=HookStatus.EXPIRED)
