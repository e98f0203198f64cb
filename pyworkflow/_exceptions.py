"""Errors raised by pyworkflow.

Every error a user can catch derives from :class:`WorkflowError`::

    WorkflowError
    ├── ConfigurationError          bad arguments to configure(), start(), @step(...), ...
    ├── NotFoundError
    │   ├── RunNotFoundError        no run with that id
    │   ├── WorkflowNotRegisteredError  a run names a workflow this process never imported
    │   └── ScheduleNotFoundError   no schedule with that id
    ├── InvalidTokenError           malformed or unknown hook token
    │   ├── HookAlreadyReceivedError    the hook already got its payload
    │   └── HookExpiredError        the hook timed out (also raised inside the workflow)
    ├── HookPayloadError            a typed hook's payload failed validation
    ├── SerializationError          an argument, result or payload that cannot be stored
    ├── NonDeterminismError         the code's checkpoints differ from the recorded ones
    ├── ConflictError               another writer appended to the run first
    │   └── RunLockedError          the run is being executed by someone else right now
    ├── StorageError                a backend could not read or write (foreign errors wrapped)
    │   ├── TransientStorageError   ...but a retry may succeed (broker or disk unavailable)
    │   └── CorruptRecordError      a stored record could not be decoded
    ├── StepFailedError             a step's recorded failure whose type can't be rebuilt
    ├── CancellationError           raised inside a workflow at its next checkpoint
    ├── WorkflowFailedError         Supervisor.result() of a run that failed
    ├── WorkflowCancelledError      Supervisor.result() of a run that was cancelled
    ├── ChildWorkflowFailedError    raised in a parent: its child workflow failed
    │   └── ChildWorkflowCancelledError  ...was cancelled
    ├── MaxNestingDepthError        start_child_workflow() past the deepest nesting (3)
    ├── FatalError                  raise from a step: never retried
    └── RetryableError              raise from a step: retried, optionally after ``retry_after``

Control-flow signals used by the engine (suspension) derive from ``BaseException`` and live
in ``_signals.py``, so a user's ``except Exception:`` cannot swallow them.
"""

from __future__ import annotations

from datetime import timedelta

__all__ = [
    "CancellationError",
    "ChildWorkflowCancelledError",
    "ChildWorkflowFailedError",
    "ConfigurationError",
    "ConflictError",
    "CorruptRecordError",
    "FatalError",
    "HookAlreadyReceivedError",
    "HookExpiredError",
    "HookPayloadError",
    "InvalidTokenError",
    "MaxNestingDepthError",
    "NonDeterminismError",
    "NotFoundError",
    "RetryableError",
    "RunLockedError",
    "RunNotFoundError",
    "ScheduleNotFoundError",
    "SerializationError",
    "StepFailedError",
    "StorageError",
    "TransientStorageError",
    "WorkflowCancelledError",
    "WorkflowError",
    "WorkflowFailedError",
    "WorkflowNotRegisteredError",
]


class WorkflowError(Exception):
    """Root of every pyworkflow error."""


class ConfigurationError(WorkflowError, ValueError):
    """A call to the library was made with arguments it cannot accept."""


class NotFoundError(WorkflowError, LookupError):
    """Something named by the caller does not exist."""


class RunNotFoundError(NotFoundError):
    """No run with the given id exists in the storage."""

    def __init__(self, run_id: str) -> None:
        super().__init__(
            f"no workflow run with id {run_id!r} in this storage; check the id and that "
            "the same storage backend is configured"
        )
        self.run_id = run_id


class WorkflowNotRegisteredError(NotFoundError):
    """A stored run names a workflow that no imported module has defined."""

    def __init__(self, name: str) -> None:
        super().__init__(
            f"no @workflow named {name!r} is registered in this process; import the module "
            "that defines it before resuming its runs"
        )
        self.workflow_name = name


class ScheduleNotFoundError(NotFoundError):
    """No schedule with the given id exists in the storage."""

    def __init__(self, schedule_id: str) -> None:
        super().__init__(
            f"no schedule with id {schedule_id!r} in this storage; list_schedules() (or "
            "`pyworkflow schedules list`) shows the ids, and check that the same storage "
            "backend is configured"
        )
        self.schedule_id = schedule_id


class InvalidTokenError(WorkflowError, ValueError):
    """A hook token is malformed, unknown, or can no longer be used."""


class HookAlreadyReceivedError(InvalidTokenError):
    """The hook behind the token already received its payload."""


class HookExpiredError(InvalidTokenError):
    """The hook timed out before a payload arrived."""


class HookPayloadError(WorkflowError, ValueError):
    """A typed hook's payload failed validation; nothing was recorded."""


class SerializationError(WorkflowError, TypeError):
    """A value cannot be stored with the JSON/msgpack codec (no pickle fallback)."""


class NonDeterminismError(WorkflowError):
    """The workflow's code called a different checkpoint than the one recorded in its log.

    Workflow code must make the same sequence of step/sleep/hook calls on every replay.
    The run's log is left untouched.
    """


class ConflictError(WorkflowError):
    """An append lost the optimistic-concurrency race: another writer appended first."""


class RunLockedError(ConflictError):
    """The run is being executed by another task or process right now."""

    def __init__(self, run_id: str, holder: str = "another task") -> None:
        super().__init__(
            f"workflow run {run_id!r} is being executed by {holder}; wait for it to "
            "suspend or finish, then resume it again"
        )
        self.run_id = run_id


class StorageError(WorkflowError):
    """A storage backend failed to read or write."""

    retriable = False
    """Whether retrying the same call may succeed (see TransientStorageError)."""


class TransientStorageError(StorageError):
    """A storage failure that a retry may cure (a broker or disk briefly unavailable).

    The runtime retries these with backoff; a workflow never sees them. Any other
    ``StorageError`` is permanent: retrying the same call won't help.
    """

    retriable = True


class CorruptRecordError(StorageError):
    """A stored record could not be decoded."""


class StepFailedError(WorkflowError):
    """A step's recorded failure, replayed when the original exception type is unavailable."""

    def __init__(self, step_name: str, error_type: str, message: str) -> None:
        super().__init__(f"step {step_name!r} failed with {error_type}: {message}")
        self.step_name = step_name
        self.error_type = error_type
        self.error_message = message


class CancellationError(WorkflowError):
    """Raised inside a workflow at its next checkpoint after ``cancel_workflow()``.

    Catch it to run cleanup (inside ``async with shield():``) and re-raise it so the run
    ends ``cancelled``.
    """

    def __init__(self, reason: str | None = None) -> None:
        super().__init__(f"workflow cancelled: {reason}" if reason else "workflow cancelled")
        self.reason = reason


class WorkflowFailedError(WorkflowError):
    """The run failed: ``error_type`` and ``error_message`` are what it recorded."""

    def __init__(self, run_id: str, error_type: str, message: str) -> None:
        super().__init__(f"workflow run {run_id!r} failed with {error_type}: {message}")
        self.run_id = run_id
        self.error_type = error_type
        self.error_message = message


class WorkflowCancelledError(WorkflowError):
    """The run was cancelled (``reason`` as given to ``cancel_workflow``)."""

    def __init__(self, run_id: str, reason: str | None = None) -> None:
        why = f": {reason}" if reason else ""
        super().__init__(f"workflow run {run_id!r} was cancelled{why}")
        self.run_id = run_id
        self.reason = reason


class ChildWorkflowFailedError(WorkflowError):
    """Raised in a parent workflow where it waits for a child that failed.

    ``child_run_id`` names the child's run; ``error_type`` and ``error_message`` are what the
    child recorded (``error`` joins them). The same error is raised again on every replay.
    """

    def __init__(self, child_run_id: str, error_type: str, message: str) -> None:
        super().__init__(f"child workflow run {child_run_id!r} failed with {error_type}: {message}")
        self.child_run_id = child_run_id
        self.error_type = error_type
        self.error_message = message

    @property
    def error(self) -> str:
        """``"ErrorType: message"``, as the child's run record shows it."""
        return f"{self.error_type}: {self.error_message}"


class ChildWorkflowCancelledError(ChildWorkflowFailedError):
    """Raised in a parent workflow where it waits for a child that was cancelled."""

    def __init__(self, child_run_id: str, reason: str | None = None) -> None:
        super().__init__(child_run_id, "CancellationError", reason or "cancelled")
        self.args = (f"child workflow run {child_run_id!r} was cancelled: {reason or '-'}",)
        self.reason = reason


class MaxNestingDepthError(WorkflowError):
    """``start_child_workflow`` in a run already nested as deep as children may go."""


class FatalError(WorkflowError):
    """Raise from a step to fail it at once, without retries."""


class RetryableError(WorkflowError):
    """Raise from a step to ask for a retry, optionally after ``retry_after``.

    Args:
        message: what went wrong.
        retry_after: seconds, a duration string such as ``"30s"``, or a ``timedelta``;
            overrides the step's own retry delay for the next attempt.
    """

    def __init__(
        self, message: str = "", *, retry_after: float | str | timedelta | None = None
    ) -> None:
        super().__init__(message)
        self.retry_after = retry_after
