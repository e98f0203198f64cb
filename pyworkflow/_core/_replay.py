"""Replay: a synchronous fold of a run's events into the state the engine replays from.

The fold does no I/O and reads no clock: the same events always give the same state. It
rejects events it does not know (exhaustive ``match`` with ``assert_never``) and events that
contradict the log so far (a second ``workflow_started``, a step completed twice).

Checkpoints are keyed by their call order in the run (``checkpoint``, 1-based). Each records
its kind and name so the engine can check that the code calls what the log recorded.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NoReturn, assert_never

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
from ._records import RunStatus

__all__ = ["Checkpoint", "Kind", "RunState", "fold"]


class Kind(enum.StrEnum):
    STEP = "step"
    SLEEP = "sleep"
    HOOK = "hook"
    CONTEXT = "step_context"
    CHILD = "child_workflow"


class Checkpoint:
    """The recorded outcome of one checkpoint so far.

    Made for every step a run executes, so it is built cheaply: the fields every checkpoint
    sets are slots, set by ``__init__``; the rest (failures, hooks, children) are class
    defaults until first set, then kept in an instance ``__dict__`` made only then.
    """

    __slots__ = ("__dict__", "attempts", "due", "kind", "name", "resolved", "resolved_at", "result")

    kind: Kind
    name: str
    resolved: bool
    """True once the checkpoint has its final outcome (result, error, elapsed, payload)."""
    result: msgspec.Raw | None
    attempts: int
    """Step attempts started."""
    due: datetime | None
    """When a pending timer fires: a sleep's end, a retry, a hook's timeout."""
    resolved_at: int
    """The sequence of the event that resolved it (which of two came first)."""
    error: tuple[str, str] | None = None
    """``(error_type, message)`` of a final failure, or of an expired hook."""
    failure: StepFailed | None = None
    """A step's final failure, from which replay rebuilds its exception."""
    failed_attempt: int = 0
    """The last step attempt recorded as failed."""
    hook_id: str | None = None
    token: str | None = None
    announced: bool = False
    """A hook whose run suspended after creating it: its ``on_created`` has returned."""
    child_run_id: str | None = None
    """A child workflow's run (its outcome, once recorded: ``result``/``error``/``cancelled``)."""
    cancelled: str | None = None
    """A child that was cancelled: the reason (``""`` when none was given)."""

    def __init__(self, kind: Kind, name: str, resolved: bool = False) -> None:
        self.kind = kind
        self.name = name
        self.resolved = resolved
        self.result = None
        self.attempts = 0
        self.due = None
        self.resolved_at = 0

    def _values(self) -> tuple[Any, ...]:
        return tuple(getattr(self, name) for name in _CHECKPOINT_FIELDS)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Checkpoint):
            return NotImplemented
        return self._values() == other._values()

    __hash__ = None  # type: ignore[assignment]  # mutable, compared by value

    def __repr__(self) -> str:
        shown = ", ".join(
            f"{n}={v!r}" for n, v in zip(_CHECKPOINT_FIELDS, self._values(), strict=True)
        )
        return f"Checkpoint({shown})"


_CHECKPOINT_FIELDS = (
    "kind",
    "name",
    "resolved",
    "result",
    "attempts",
    "due",
    "resolved_at",
    "error",
    "failure",
    "failed_attempt",
    "hook_id",
    "token",
    "announced",
    "child_run_id",
    "cancelled",
)


@dataclass(slots=True)
class RunState:
    """Everything replay needs to know about a run, folded from its events."""

    run_id: str
    workflow_name: str = ""
    args: msgspec.Raw = field(default_factory=lambda: msgspec.Raw(b"[]"))
    kwargs: msgspec.Raw = field(default_factory=lambda: msgspec.Raw(b"{}"))
    status: RunStatus = RunStatus.PENDING
    last_sequence: int = 0
    checkpoints: dict[int, Checkpoint] = field(default_factory=dict)
    waiting: set[int] = field(default_factory=set)
    """Checkpoints with an unresolved timer or hook."""
    cancel_requested: bool = False
    cancel_reason: str | None = None
    wake_pending: bool = False
    """A hook payload or a cancellation arrived while the run was suspended."""
    result: msgspec.Raw | None = None
    resumed_at: int = 0
    """The sequence of the last ``workflow_resumed``."""
    suspended_at: int = 0
    """The sequence of the last ``workflow_suspended``."""
    error: tuple[str, str] | None = None
    """``(error_type, message)`` of a failed run."""
    tags: tuple[str, ...] = ()
    idempotency_key: str | None = None
    continued_from: str | None = None
    """The run that continued as this one (``continue_as_new``)."""
    continued_to: str | None = None
    """The run this one continued as, once it ended ``continued_as_new``."""
    step_context: msgspec.Raw | None = None
    """The JSON of the last recorded step context."""
    parent_run_id: str | None = None
    """The run that started this one as its child."""
    nesting_depth: int = 0
    children: dict[str, int] = field(default_factory=dict)
    """Child run id -> the checkpoint that started it."""

    @property
    def finished(self) -> bool:
        return self.status.is_finished

    def next_due(self) -> datetime | None:
        """The earliest pending timer among the waiting checkpoints."""
        dues = [d for i in self.waiting if (d := self.checkpoints[i].due) is not None]
        return min(dues) if dues else None

    def is_due(self, now: datetime) -> bool:
        """Whether a suspended run has something to do at ``now``."""
        if self.wake_pending:
            return True
        due = self.next_due()
        return due is not None and due <= now

    def apply(self, event: Event) -> None:
        """Fold one event into the state."""
        if event.sequence != self.last_sequence + 1:
            msg = (
                f"run {self.run_id!r}: event {event.type.value!r} has sequence "
                f"{event.sequence}, expected {self.last_sequence + 1}"
            )
            raise CorruptRecordError(msg)
        self.last_sequence = event.sequence
        match event:  # the most frequent events first: a match tests cases in order
            case StepStarted():
                cp = self._checkpoint(event.checkpoint, Kind.STEP, event.step_name, event)
                cp.attempts = event.attempt
                cp.due = None
                self.waiting.discard(event.checkpoint)
            case StepCompleted():
                cp = self._checkpoint(event.checkpoint, Kind.STEP, event.step_name, event)
                self._resolve(cp, event)
                cp.result = event.result
            case StepFailed():
                cp = self._checkpoint(event.checkpoint, Kind.STEP, event.step_name, event)
                cp.failed_attempt = event.attempt
                if event.final:
                    self._resolve(cp, event)
                    cp.error = (event.error_type, event.error_message)
                    cp.failure = event
            case WorkflowStarted():
                if self.status is not RunStatus.PENDING:
                    self._corrupt(event, "a second workflow_started")
                self.workflow_name = event.workflow_name
                self.args, self.kwargs = event.args, event.kwargs
                self.tags, self.idempotency_key = event.tags, event.idempotency_key
                self.continued_from = event.continued_from_run_id or None
                self.parent_run_id = event.parent_run_id or None
                self.nesting_depth = event.nesting_depth or 0
                self.status = RunStatus.RUNNING
            case WorkflowSuspended():
                self.status = RunStatus.SUSPENDED
                self.suspended_at = event.sequence
                self.wake_pending = False
                for index in self.waiting:
                    self.checkpoints[index].announced = True
            case WorkflowResumed():
                self.status = RunStatus.RUNNING
                self.wake_pending = False
                self.resumed_at = event.sequence
            case WorkflowCompleted():
                self.status = RunStatus.COMPLETED
                self.result = event.result
            case WorkflowFailed():
                self.status = RunStatus.FAILED
                self.error = (event.error_type, event.error_message)
            case WorkflowCancelled():
                self.status = RunStatus.CANCELLED
                self.cancel_reason = event.reason
            case WorkflowContinuedAsNew():
                if self.finished:
                    self._corrupt(event, f"the run already ended {self.status}")
                self.status = RunStatus.CONTINUED_AS_NEW
                self.continued_to = event.new_run_id
            case StepContextSet():
                cp = self._checkpoint(event.checkpoint, Kind.CONTEXT, Kind.CONTEXT.value, event)
                self._resolve(cp, event)
                cp.result = self.step_context = event.context
            case ChildWorkflowStarted():
                cp = self._checkpoint(event.checkpoint, Kind.CHILD, event.workflow_name, event)
                cp.child_run_id = event.child_run_id
                self.children[event.child_run_id] = event.checkpoint
            case ChildWorkflowCompleted() | ChildWorkflowFailed() | ChildWorkflowCancelled():
                cp = self._existing(event.checkpoint, Kind.CHILD, event)
                if cp.child_run_id != event.child_run_id:
                    self._corrupt(event, f"checkpoint {event.checkpoint} started another child")
                self._resolve(cp, event)
                if isinstance(event, ChildWorkflowCompleted):
                    cp.result = event.result
                elif isinstance(event, ChildWorkflowFailed):
                    cp.error = (event.error_type, event.error_message)
                else:
                    cp.cancelled = event.reason or ""
                self._wake()
            case CancellationRequested():
                self.cancel_requested = True
                self.cancel_reason = event.reason
                self._wake()
            case StepRetrying():
                cp = self._checkpoint(event.checkpoint, Kind.STEP, event.step_name, event)
                cp.due = event.resume_at
                self.waiting.add(event.checkpoint)
            case SleepStarted():
                cp = self._checkpoint(event.checkpoint, Kind.SLEEP, "sleep", event)
                cp.due = event.resume_at
                self.waiting.add(event.checkpoint)
            case SleepCompleted():
                cp = self._existing(event.checkpoint, Kind.SLEEP, event)
                self._resolve(cp, event)
            case HookCreated():
                cp = self._checkpoint(event.checkpoint, Kind.HOOK, event.hook_name, event)
                cp.hook_id, cp.token, cp.due = event.hook_id, event.token, event.expires_at
                self.waiting.add(event.checkpoint)
            case HookReceived():
                cp = self._existing(event.checkpoint, Kind.HOOK, event)
                self._resolve(cp, event)
                cp.result = event.payload
                self._wake()
            case HookExpired():
                cp = self._existing(event.checkpoint, Kind.HOOK, event)
                self._resolve(cp, event)
                cp.error = ("HookExpiredError", f"hook {cp.name!r} timed out")
            case _:
                assert_never(event)

    def _wake(self) -> None:
        if self.status is RunStatus.SUSPENDED:
            self.wake_pending = True

    def _checkpoint(self, index: int, kind: Kind, name: str, event: Event) -> Checkpoint:
        cp = self.checkpoints.get(index)
        if cp is None:
            cp = self.checkpoints[index] = Checkpoint(kind, name)
        elif cp.kind is not kind or cp.name != name:
            self._corrupt(event, f"checkpoint {index} was recorded as {cp.kind} {cp.name!r}")
        return cp

    def _existing(self, index: int, kind: Kind, event: Event) -> Checkpoint:
        cp = self.checkpoints.get(index)
        if cp is None or cp.kind is not kind:
            self._corrupt(event, f"no {kind} checkpoint {index} was started")
        return cp

    def _resolve(self, cp: Checkpoint, event: Event) -> None:
        if cp.resolved:
            self._corrupt(event, f"{cp.kind} {cp.name!r} already has its outcome")
        cp.resolved = True
        cp.resolved_at = event.sequence
        cp.due = None
        self.waiting.discard(event.checkpoint)  # type: ignore[union-attr]

    def _corrupt(self, event: Event, why: str) -> NoReturn:
        msg = (
            f"run {self.run_id!r}: event {event.type.value!r} at sequence {event.sequence} "
            f"contradicts the log: {why}"
        )
        raise CorruptRecordError(msg)


def fold(run_id: str, events: Iterable[Event]) -> RunState:
    """Fold a run's events, from the first, into a fresh :class:`RunState`."""
    state = RunState(run_id=run_id)
    for event in events:
        state.apply(event)
    return state
