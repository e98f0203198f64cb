"""pyworkflow: durable, event-sourced workflows for Python on asyncio and trio."""

import typing as _typing  # aliased: dir(pyworkflow) lists public names only

from . import _public
from ._api import cancel_workflow as cancel_workflow
from ._api import get_workflow_chain as get_workflow_chain
from ._api import get_workflow_events as get_workflow_events
from ._api import get_workflow_run as get_workflow_run
from ._api import list_runs as list_runs
from ._api import resume as resume
from ._api import resume_hook as resume_hook
from ._api import start as start
from ._config import configure as configure
from ._config import reset_config as reset_config
from ._core._events import Event as Event
from ._core._events import EventType as EventType
from ._core._records import HookRecord as HookRecord
from ._core._records import HookStatus as HookStatus
from ._core._records import RunPage as RunPage
from ._core._records import RunStatus as RunStatus
from ._core._records import StepRecord as StepRecord
from ._core._records import WorkflowRun as WorkflowRun
from ._exceptions import CancellationError as CancellationError
from ._exceptions import ChildWorkflowCancelledError as ChildWorkflowCancelledError
from ._exceptions import ChildWorkflowFailedError as ChildWorkflowFailedError
from ._exceptions import ConfigurationError as ConfigurationError
from ._exceptions import ConflictError as ConflictError
from ._exceptions import CorruptRecordError as CorruptRecordError
from ._exceptions import FatalError as FatalError
from ._exceptions import HookAlreadyReceivedError as HookAlreadyReceivedError
from ._exceptions import HookExpiredError as HookExpiredError
from ._exceptions import HookPayloadError as HookPayloadError
from ._exceptions import InvalidTokenError as InvalidTokenError
from ._exceptions import MaxNestingDepthError as MaxNestingDepthError
from ._exceptions import NonDeterminismError as NonDeterminismError
from ._exceptions import NotFoundError as NotFoundError
from ._exceptions import RetryableError as RetryableError
from ._exceptions import RunLockedError as RunLockedError
from ._exceptions import RunNotFoundError as RunNotFoundError
from ._exceptions import ScheduleNotFoundError as ScheduleNotFoundError
from ._exceptions import SerializationError as SerializationError
from ._exceptions import StepFailedError as StepFailedError
from ._exceptions import StorageError as StorageError
from ._exceptions import TransientStorageError as TransientStorageError
from ._exceptions import WorkflowCancelledError as WorkflowCancelledError
from ._exceptions import WorkflowError as WorkflowError
from ._exceptions import WorkflowFailedError as WorkflowFailedError
from ._exceptions import WorkflowNotRegisteredError as WorkflowNotRegisteredError
from ._execution._cancellation import shield as shield
from ._execution._hooks import TypedHook as TypedHook
from ._execution._hooks import define_hook as define_hook
from ._execution._hooks import hook as hook
from ._execution._sleep import sleep as sleep
from ._execution._step import Step as Step
from ._execution._step import step as step
from ._execution._step_context import StepContext as StepContext
from ._execution._step_context import get_step_context as get_step_context
from ._execution._step_context import has_step_context as has_step_context
from ._execution._step_context import set_step_context as set_step_context
from ._execution._workflow import Workflow as Workflow
from ._execution._workflow import workflow as workflow

if _typing.TYPE_CHECKING:
    from ._core._schedule import OverlapPolicy as OverlapPolicy
    from ._core._schedule import Schedule as Schedule
    from ._core._schedule import ScheduleSpec as ScheduleSpec
    from ._core._schedule import ScheduleStatus as ScheduleStatus
    from ._execution._children import ChildWorkflowHandle as ChildWorkflowHandle
    from ._execution._children import start_child_workflow as start_child_workflow
    from ._execution._continuation import continue_as_new as continue_as_new
    from ._schedule_api import create_schedule as create_schedule
    from ._schedule_api import delete_schedule as delete_schedule
    from ._schedule_api import get_schedule as get_schedule
    from ._schedule_api import list_schedules as list_schedules
    from ._schedule_api import pause_schedule as pause_schedule
    from ._schedule_api import resume_schedule as resume_schedule
    from ._schedule_api import trigger_schedule as trigger_schedule
    from .actors._scheduler import LocalScheduler as LocalScheduler

__version__ = "0.1.0"

__all__ = [
    "CancellationError",
    "ChildWorkflowCancelledError",
    "ChildWorkflowFailedError",
    "ChildWorkflowHandle",
    "ConfigurationError",
    "ConflictError",
    "CorruptRecordError",
    "Event",
    "EventType",
    "FatalError",
    "HookAlreadyReceivedError",
    "HookExpiredError",
    "HookPayloadError",
    "HookRecord",
    "HookStatus",
    "InvalidTokenError",
    "LocalScheduler",
    "MaxNestingDepthError",
    "NonDeterminismError",
    "NotFoundError",
    "OverlapPolicy",
    "RetryableError",
    "RunLockedError",
    "RunNotFoundError",
    "RunPage",
    "RunStatus",
    "Schedule",
    "ScheduleNotFoundError",
    "ScheduleSpec",
    "ScheduleStatus",
    "SerializationError",
    "Step",
    "StepContext",
    "StepFailedError",
    "StepRecord",
    "StorageError",
    "TransientStorageError",
    "TypedHook",
    "Workflow",
    "WorkflowCancelledError",
    "WorkflowError",
    "WorkflowFailedError",
    "WorkflowNotRegisteredError",
    "WorkflowRun",
    "cancel_workflow",
    "configure",
    "continue_as_new",
    "create_schedule",
    "define_hook",
    "delete_schedule",
    "get_schedule",
    "get_step_context",
    "get_workflow_chain",
    "get_workflow_events",
    "get_workflow_run",
    "has_step_context",
    "hook",
    "list_runs",
    "list_schedules",
    "pause_schedule",
    "reset_config",
    "resume",
    "resume_hook",
    "resume_schedule",
    "set_step_context",
    "shield",
    "sleep",
    "start",
    "start_child_workflow",
    "step",
    "trigger_schedule",
    "workflow",
]

# Imported on first access (see ``_public``): child workflows, continue_as_new, schedules and
# the local scheduler (the actor runtime, asyncio) are not needed to define and start
# workflows.
_LAZY = _public.LazyExports(
    globals(),
    {
        "OverlapPolicy": "._core._schedule",
        "Schedule": "._core._schedule",
        "ScheduleSpec": "._core._schedule",
        "ScheduleStatus": "._core._schedule",
        "ChildWorkflowHandle": "._execution._children",
        "start_child_workflow": "._execution._children",
        "continue_as_new": "._execution._continuation",
        "create_schedule": "._schedule_api",
        "delete_schedule": "._schedule_api",
        "get_schedule": "._schedule_api",
        "list_schedules": "._schedule_api",
        "pause_schedule": "._schedule_api",
        "resume_schedule": "._schedule_api",
        "trigger_schedule": "._schedule_api",
        "LocalScheduler": ".actors._scheduler",
        "actors": ".actors",  # a subpackage: reachable after a plain import, as it always was
    },
)

_public.publish(globals(), [name for name in __all__ if name not in _LAZY])


def __getattr__(name: str) -> _typing.Any:
    return _LAZY.load(name)


def __dir__() -> list[str]:
    return _LAZY.dir()
