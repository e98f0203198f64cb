"""Events: the log of a run. One frozen struct per event type, a tagged union on ``type``.

On disk an event is one flat JSON object whose top-level ``"type"`` is the seed's snake_case
name, e.g. ``{"type":"step_completed","run_id":"run_..","sequence":3,"timestamp":"..",
"step_id":"run_...3","step_name":"charge","checkpoint":3,"attempt":1,"result":{..}}``.
Payloads (arguments, results, hook payloads) stay as raw JSON until the engine decodes them
with the right type.
"""


import enum
from datetime import datetime
from typing import Any, ClassVar

import msgspec

__all__ = [
    "CHILD_OUTCOMES",
    "NULL",
    "CancellationRequested",
    "ChildWorkflowCancelled",
    "ChildWorkflowCompleted",
    "ChildWorkflowFailed",
    "ChildWorkflowStarted",
    "Event",
    "EventType",
    "HookCreated",
    "HookExpired",
    "HookReceived",
    "SleepCompleted",
    "SleepStarted",
    "StepCompleted",
    "StepContextSet",
    "StepFailed",
    "StepRetrying",
    "StepStarted",
    "WorkflowCancelled",
    "WorkflowCompleted",
    "WorkflowContinuedAsNew",
    "WorkflowFailed",
    "WorkflowResumed",
    "WorkflowStarted",
    "WorkflowSuspended",
    "decode_event",
    "decode_event_lines",
    "decode_events",
    "encode_event",
]

NULL = msgspec.Raw(b"null")


class EventType(enum.StrEnum):
    """The type of an event; ``.value`` is the snake_case name stored in the log."""

    WORKFLOW_STARTED = "workflow_started"
    WORKFLOW_SUSPENDED = "workflow_suspended"
    WORKFLOW_RESUMED = "workflow_resumed"
    WORKFLOW_COMPLETED = "workflow_completed"
    WORKFLOW_FAILED = "workflow_failed"
    WORKFLOW_CANCELLED = "workflow_cancelled"
    WORKFLOW_CONTINUED_AS_NEW = "workflow_continued_as_new"
    CANCELLATION_REQUESTED = "cancellation_requested"
    STEP_STARTED = "step_started"
    STEP_COMPLETED = "step_completed"
    STEP_FAILED = "step_failed"
    STEP_RETRYING = "step_retrying"
    SLEEP_STARTED = "sleep_started"
    SLEEP_COMPLETED = "sleep_completed"
    HOOK_CREATED = "hook_created"
    HOOK_RECEIVED = "hook_received"
    HOOK_EXPIRED = "hook_expired"
    STEP_CONTEXT_SET = "step_context_set"
    CHILD_WORKFLOW_STARTED = "child_workflow_started"
    CHILD_WORKFLOW_COMPLETED = "child_workflow_completed"
    CHILD_WORKFLOW_FAILED = "child_workflow_failed"
    CHILD_WORKFLOW_CANCELLED = "child_workflow_cancelled"


_NOT_DATA = ("type", "run_id", "sequence", "timestamp")


class _EventBase(msgspec.Struct, frozen=True, kw_only=True, tag_field="type", gc=False):
    # gc=False: an event holds only scalars, Raw payloads and tuples of str, which can't
    # reach back to it, so it can never be part of a reference cycle; untracked, the 2,000
    # events of a decoded log cost the decoder ~8% less (no GC header, no gen-0 passes).
    # A type with a mutable container field (StepFailed) turns it back on.
    run_id: str
    sequence: int
    timestamp: datetime

    type: ClassVar[EventType]

    @property
    def data(self) -> dict[str, Any]:
        """The event's own fields (all but type, run_id, sequence and timestamp) in their
        JSON form, as the log's line holds them: times as ISO 8601 strings, tuples as
        lists, payloads as decoded JSON. The typed values are the event's attributes."""
        out: dict[str, Any] = _DATA_DECODER.decode(_ENCODER.encode(self))
        for name in _NOT_DATA:
            del out[name]
        return out


class WorkflowStarted(_EventBase, frozen=True, kw_only=True, tag="workflow_started"):
    type = EventType.WORKFLOW_STARTED
    workflow_name: str
    args: msgspec.Raw = msgspec.Raw(b"[]")
    kwargs: msgspec.Raw = msgspec.Raw(b"{}")
    tags: tuple[str, ...] = ()
    idempotency_key: str | None = None
    continued_from_run_id: str | msgspec.UnsetType = msgspec.UNSET
    """Set on the runs that ``continue_as_new`` started: the run that continued as this one.
    Unset (absent from the log, so other runs' events keep their bytes) on the others."""
    parent_run_id: str | msgspec.UnsetType = msgspec.UNSET
    """Set on child runs (``start_child_workflow``): the run that started this one."""
    nesting_depth: int | msgspec.UnsetType = msgspec.UNSET
    """Set on child runs: 1 for a child, 2 for a grandchild, ... (unset: 0, a top run)."""
    schedule_id: str | msgspec.UnsetType = msgspec.UNSET
    """Set on runs that a schedule started: the schedule's id."""
    scheduled_time: datetime | msgspec.UnsetType = msgspec.UNSET
    """Set on runs that a schedule started: the due time they were started for (the time
    of the ``trigger_schedule`` call for a triggered run)."""


class WorkflowSuspended(_EventBase, frozen=True, kw_only=True, tag="workflow_suspended"):
    type = EventType.WORKFLOW_SUSPENDED
    reason: str
    resume_at: datetime | None = None


class WorkflowResumed(_EventBase, frozen=True, kw_only=True, tag="workflow_resumed"):
    type = EventType.WORKFLOW_RESUMED
    reason: str = "resume"


class WorkflowCompleted(_EventBase, frozen=True, kw_only=True, tag="workflow_completed"):
    type = EventType.WORKFLOW_COMPLETED
    result: msgspec.Raw = NULL


class WorkflowFailed(_EventBase, frozen=True, kw_only=True, tag="workflow_failed"):
    type = EventType.WORKFLOW_FAILED
    error_type: str
    error_message: str
    traceback: str = ""


class WorkflowCancelled(_EventBase, frozen=True, kw_only=True, tag="workflow_cancelled"):
    type = EventType.WORKFLOW_CANCELLED
    reason: str | None = None


class WorkflowContinuedAsNew(
    _EventBase, frozen=True, kw_only=True, tag="workflow_continued_as_new"
):
    """The run ended by ``continue_as_new``: run ``new_run_id`` goes on with these arguments
    (its ``workflow_started`` is written before this event, see ``_continuation``)."""

    type = EventType.WORKFLOW_CONTINUED_AS_NEW
    new_run_id: str
    args: msgspec.Raw = msgspec.Raw(b"[]")
    kwargs: msgspec.Raw = msgspec.Raw(b"{}")


class CancellationRequested(_EventBase, frozen=True, kw_only=True, tag="cancellation_requested"):
    type = EventType.CANCELLATION_REQUESTED
    reason: str | None = None


class StepStarted(_EventBase, frozen=True, kw_only=True, tag="step_started"):
    type = EventType.STEP_STARTED
    step_id: str
    step_name: str
    checkpoint: int
    attempt: int


class StepCompleted(_EventBase, frozen=True, kw_only=True, tag="step_completed"):
    type = EventType.STEP_COMPLETED
    step_id: str
    step_name: str
    checkpoint: int
    attempt: int
    result: msgspec.Raw = NULL


class StepFailed(
    _EventBase, frozen=True, kw_only=True, tag="step_failed", omit_defaults=True, gc=True
):
    type = EventType.STEP_FAILED
    step_id: str
    step_name: str
    checkpoint: int
    attempt: int
    error_type: str
    error_message: str
    final: bool
    # What rebuilds the exception on replay (``_failures.details``), on final failures.
    # Records written before have none of them: their exception is rebuilt from its message.
    error_args: list[Any] | None = None
    """The exception's ``args`` as JSON (a value that isn't JSON: its ``str()``)."""
    error_attrs: dict[str, Any] | None = None
    """The JSON values among ``vars(exception)``."""
    error_notes: list[str] | None = None
    """What could not be recorded faithfully; added to the rebuilt exception as notes."""


class StepRetrying(_EventBase, frozen=True, kw_only=True, tag="step_retrying"):
    type = EventType.STEP_RETRYING
    step_id: str
    step_name: str
    checkpoint: int
    attempt: int
    """The number of the attempt that will run at ``resume_at``."""
    resume_at: datetime
    delay: float


class SleepStarted(_EventBase, frozen=True, kw_only=True, tag="sleep_started"):
    type = EventType.SLEEP_STARTED
    checkpoint: int
    duration: float
    resume_at: datetime


class SleepCompleted(_EventBase, frozen=True, kw_only=True, tag="sleep_completed"):
    type = EventType.SLEEP_COMPLETED
    checkpoint: int


class HookCreated(_EventBase, frozen=True, kw_only=True, tag="hook_created"):
    type = EventType.HOOK_CREATED
    hook_id: str
    hook_name: str
    checkpoint: int
    token: str
    expires_at: datetime | None = None


class HookReceived(_EventBase, frozen=True, kw_only=True, tag="hook_received"):
    type = EventType.HOOK_RECEIVED
    hook_id: str
    checkpoint: int
    payload: msgspec.Raw = NULL


class HookExpired(_EventBase, frozen=True, kw_only=True, tag="hook_expired"):
    type = EventType.HOOK_EXPIRED
    hook_id: str
    checkpoint: int


class StepContextSet(_EventBase, frozen=True, kw_only=True, tag="step_context_set"):
    """``set_step_context(ctx)`` at checkpoint ``checkpoint``: the context's JSON."""

    type = EventType.STEP_CONTEXT_SET
    checkpoint: int
    context: msgspec.Raw = NULL


class ChildWorkflowStarted(_EventBase, frozen=True, kw_only=True, tag="child_workflow_started"):
    """``start_child_workflow`` at checkpoint ``checkpoint`` started run ``child_run_id``
    (whose ``workflow_started`` is written before this event, see ``_children``)."""

    type = EventType.CHILD_WORKFLOW_STARTED
    checkpoint: int
    child_run_id: str
    workflow_name: str
    wait_for_completion: bool = True


class ChildWorkflowCompleted(
    _EventBase, frozen=True, kw_only=True, tag="child_workflow_completed"
):
    """The child started at ``checkpoint`` completed with ``result``."""

    type = EventType.CHILD_WORKFLOW_COMPLETED
    checkpoint: int
    child_run_id: str
    result: msgspec.Raw = NULL


class ChildWorkflowFailed(_EventBase, frozen=True, kw_only=True, tag="child_workflow_failed"):
    """The child started at ``checkpoint`` failed (its recorded error type and message)."""

    type = EventType.CHILD_WORKFLOW_FAILED
    checkpoint: int
    child_run_id: str
    error_type: str
    error_message: str


class ChildWorkflowCancelled(
    _EventBase, frozen=True, kw_only=True, tag="child_workflow_cancelled"
):
    """The child started at ``checkpoint`` was cancelled (``reason`` as it was given)."""

    type = EventType.CHILD_WORKFLOW_CANCELLED
    checkpoint: int
    child_run_id: str
    reason: str | None = None


CHILD_OUTCOMES = (ChildWorkflowCompleted, ChildWorkflowFailed, ChildWorkflowCancelled)
"""What a child's end writes to its parent's log: news from outside, like a hook payload."""

Event = (
    WorkflowStarted
    | WorkflowSuspended
    | WorkflowResumed
    | WorkflowCompleted
    | WorkflowFailed
    | WorkflowCancelled
    | WorkflowContinuedAsNew
    | CancellationRequested
    | StepStarted
    | StepCompleted
    | StepFailed
    | StepRetrying
    | SleepStarted
    | SleepCompleted
    | HookCreated
    | HookReceived
    | HookExpired
    | StepContextSet
    | ChildWorkflowStarted
    | ChildWorkflowCompleted
    | ChildWorkflowFailed
    | ChildWorkflowCancelled
)

_ENCODER = msgspec.json.Encoder()
_DATA_DECODER: msgspec.json.Decoder[dict[str, Any]] = msgspec.json.Decoder(dict[str, Any])
_DECODER: msgspec.json.Decoder[Event] = msgspec.json.Decoder(Event)
_LIST_DECODER: msgspec.json.Decoder[list[Event]] = msgspec.json.Decoder(list[Event])


def encode_event(event: Event) -> bytes:
    """One event as compact JSON (no trailing newline)."""
    return _ENCODER.encode(event)


def decode_event(data: bytes | str) -> Event:
    """Decode one JSON event; an unknown ``type`` raises ``msgspec.ValidationError``."""
    return _DECODER.decode(data)


def decode_events(data: bytes | str) -> list[Event]:
    """Decode a JSON array of events."""
    return _LIST_DECODER.decode(data)


def decode_event_lines(data: bytes | str) -> list[Event]:
    """Decode newline-delimited JSON events (a JSONL log) with one call."""
    return _DECODER.decode_lines(data)
