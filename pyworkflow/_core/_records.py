"""Records: query-friendly projections of a run's log (run, step and hook records)."""


import enum
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import msgspec

__all__ = ["HookRecord", "HookStatus", "RunPage", "RunStatus", "StepRecord", "WorkflowRun"]


class RunStatus(enum.StrEnum):
    """The status of a workflow run."""

    PENDING = "pending"
    RUNNING = "running"
    SUSPENDED = "suspended"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"
    CONTINUED_AS_NEW = "continued_as_new"
    """Ended by ``continue_as_new``: ``continued_to_run_id`` names the run that goes on."""

    @property
    def is_finished(self) -> bool:
        """True for completed, failed, cancelled and continued-as-new runs."""
        return self in _FINISHED


_FINISHED = frozenset(
    {RunStatus.COMPLETED, RunStatus.FAILED, RunStatus.CANCELLED, RunStatus.CONTINUED_AS_NEW}
)


class WorkflowRun(msgspec.Struct, frozen=True, kw_only=True):
    """A run's current state, projected from its events.

    ``result`` is the decoded return value once the run is completed; ``error_type`` and
    ``error_message`` describe the failure of a failed run.
    """

    run_id: str
    workflow_name: str
    status: RunStatus
    created_at: datetime
    updated_at: datetime
    completed_at: datetime | None = None
    args: Any = ()
    kwargs: Any = msgspec.field(default_factory=dict)
    tags: tuple[str, ...] = ()
    idempotency_key: str | None = None
    result: Any = None
    error_type: str | None = None
    error_message: str | None = None
    cancellation_requested: bool = False
    cancellation_reason: str | None = None
    suspended_reason: str | None = None
    resume_at: datetime | None = None
    """When a suspended run's earliest timer is due (``None``: waiting for a hook)."""
    last_sequence: int = 0
    step_count: int = 0
    """Steps completed so far."""
    running_since: datetime | None = None
    """While the run is ``running``: the time of the event that made it so
    (``workflow_started`` or ``workflow_resumed``). A crashed executor leaves it set."""
    woken_at: datetime | None = None
    """While the run is ``suspended``: when the first hook payload or cancellation arrived
    since it suspended (the replay fold's ``wake_pending``); it must be woken now."""
    continued_from_run_id: str | None = None
    """The run that ended by ``continue_as_new`` and started this one (a chain's link)."""
    continued_to_run_id: str | None = None
    """The run this one continued as (status ``continued_as_new``)."""
    parent_run_id: str | None = None
    """The run that started this one with ``start_child_workflow`` (None: a top run)."""
    nesting_depth: int = 0
    """0 for a top run, 1 for its children, 2 for theirs, ... (at most 3)."""
    schedule_id: str | None = None
    """The schedule that started this run (None: not started by a schedule)."""
    scheduled_time: datetime | None = None
    """The due time the schedule started this run for."""

    @property
    def error(self) -> str | None:
        """``"ErrorType: message"`` for a failed run, else None."""
        if self.error_type is None:
            return None
        return f"{self.error_type}: {self.error_message}"


class StepRecord(msgspec.Struct, frozen=True, kw_only=True):
    """The latest state of one step checkpoint (``steps/{step_id}.json``)."""

    step_id: str
    run_id: str
    step_name: str
    checkpoint: int
    status: str
    """``running``, ``completed``, ``failed`` or ``retrying``."""
    attempt: int
    updated_at: datetime
    result: Any = None
    error_type: str | None = None
    error_message: str | None = None
    resume_at: datetime | None = None


class HookStatus(enum.StrEnum):
    """The status of a hook."""

    PENDING = "pending"
    RECEIVED = "received"
    EXPIRED = "expired"


class HookRecord(msgspec.Struct, frozen=True, kw_only=True):
    """One hook a run waits on (``hooks/{hook_id}.json``)."""

    hook_id: str
    run_id: str
    hook_name: str
    token: str
    checkpoint: int
    status: HookStatus
    created_at: datetime
    expires_at: datetime | None = None
    received_at: datetime | None = None
    payload: Any = None


class RunPage(msgspec.Struct, frozen=True, kw_only=True):
    """One page of ``list_runs()``, newest first; pass ``next_cursor`` to get the next."""

    runs: list[WorkflowRun]
    next_cursor: str | None = None

    def __iter__(self) -> Iterator[WorkflowRun]:
        return iter(self.runs)

    def __len__(self) -> int:
        return len(self.runs)
