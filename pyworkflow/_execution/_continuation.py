"""``continue_as_new()``: a run ends and a new run of the same workflow goes on, with new
arguments and a fresh log (a *chain* of runs, linked both ways on their records).

Crash safety, by the order of the two writes:

1. The successor's id is derived from the current run's id (:func:`successor_id`): a run
   ends once, so every execution that reaches its ``continue_as_new`` names the same
   successor, without reading or recording anything first. On Kafka it is chosen in the
   run's own partition, which the run's worker owns.
2. The successor's ``workflow_started`` (arguments, ``continued_from_run_id``, the tags and
   idempotency key carried over) is appended first, with ``expected_sequence=0``: a second
   append of it conflicts and changes nothing.
3. Then the current run's owner writes its terminal ``workflow_continued_as_new`` naming
   the successor.

A crash before 2 leaves nothing; between 2 and 3 the current run is still ``running``, so
it is due and recovered (``resume()``, a supervisor's due poll): its replay reaches the same
``continue_as_new``, finds the successor started and writes 3. After 3 the successor is an
ordinary run (``running``, hence due until someone executes it). The link is made exactly
once, and making it reads no other member of the chain: O(1) per link.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any, NoReturn

import msgspec

from .._core._events import WorkflowStarted
from .._core._replay import RunState
from .._exceptions import ConfigurationError
from ._context import RunContext, current_context, step_view
from ._linked import derived_id, placement, start_linked
from ._registry import registry

if TYPE_CHECKING:
    from ..storage import StorageBackend
    from ._clock import Clock

__all__ = ["ContinueAsNewSignal", "continue_as_new", "start_successor", "successor_id"]


class ContinueAsNewSignal(BaseException):
    """Unwinds a workflow that called ``continue_as_new`` (a BaseException: a user's
    ``except Exception:`` can't swallow it); the engine ends the run with it."""

    def __init__(self, args: msgspec.Raw, kwargs: msgspec.Raw) -> None:
        super().__init__("continue_as_new")
        self.new_args = args
        self.new_kwargs = kwargs


def successor_id(run_id: str, partition_of: Callable[[str], int] | None = None) -> str:
    """The id of the run that ``run_id`` continues as: the same in every execution (on
    Kafka, in ``run_id``'s partition: see ``_linked.derived_id``)."""
    return derived_id(f"continue_as_new:{run_id}", run_id, partition_of)


def continue_as_new(*args: Any, **kwargs: Any) -> Coroutine[Any, Any, NoReturn]:
    """End this run as ``continued_as_new`` and start a new run of the same workflow with
    ``*args``/``**kwargs`` and a fresh log (its tags and idempotency key carried over).

    Await it in durable workflow code; it does not return. Steps still running in other
    branches finish and are recorded first. A pending cancellation is raised instead.

    Raises:
        ConfigurationError: called outside a durable workflow's own code (in a step, in a
            transient workflow, or in no workflow).
        TypeError: the arguments don't fit the workflow's signature (nothing is written).
        SerializationError: an argument can't be stored (nothing is written).
    """
    ctx = current_context()
    if not isinstance(ctx, RunContext):
        if ctx is not None:
            where = "in a transient workflow"
        else:
            where = "inside a step" if step_view() is not None else "outside any workflow"
        msg = (
            f"continue_as_new() was called {where}: call it in the code of a "
            "@workflow(durable=True) function (a step can return what the workflow needs)"
        )
        raise ConfigurationError(msg)
    if ctx.state.parent_run_id is not None:
        msg = (
            f"continue_as_new() was called in run {ctx.run_id!r}, a child of run "
            f"{ctx.state.parent_run_id!r}: a child workflow can't continue as new (its parent "
            "waits for this run's end); loop in the child, or have the parent start another"
        )
        raise ConfigurationError(msg)
    wf = registry.workflow(ctx.state.workflow_name)
    assert wf is not None  # the run executes: its workflow is registered
    wf.codec.bind(wf.name, args, kwargs)
    raw_args, raw_kwargs = wf.codec.encode_args(wf.name, args, kwargs)
    return _continue(ctx, raw_args, raw_kwargs)


async def _continue(ctx: RunContext, args: msgspec.Raw, kwargs: msgspec.Raw) -> NoReturn:
    ctx.raise_if_fatal()
    ctx.check_cancelled()
    # As a suspension does: steps already started in other branches finish and have their
    # outcomes recorded (the signal would cancel them), and no new step starts.
    ctx.suspending = True
    await ctx.idle()
    raise ContinueAsNewSignal(args, kwargs)


async def start_successor(
    storage: StorageBackend,
    clock: Clock,
    state: RunState,
    args: msgspec.Raw,
    kwargs: msgspec.Raw,
) -> tuple[str, bool]:
    """Append the ``workflow_started`` of ``state``'s successor (write 2 of the module's
    docstring); return its id and whether this call wrote it.

    Raises:
        CorruptRecordError: the successor's id holds a run that did not come from
            ``state``'s run.
        StorageError / RunLockedError: the caller's owner retries or stops; the run stays
            ``running`` and recoverable.
    """
    new_id = successor_id(state.run_id, placement(storage))
    started = WorkflowStarted(
        run_id=new_id,
        sequence=1,
        timestamp=clock.now(),
        workflow_name=state.workflow_name,
        args=args,
        kwargs=kwargs,
        tags=state.tags,
        idempotency_key=state.idempotency_key,
        continued_from_run_id=state.run_id,
    )
    created = await start_linked(
        storage, started, lambda first: first.continued_from_run_id == state.run_id
    )
    return new_id, created
