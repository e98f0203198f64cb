"""``start_child_workflow()``: a run starts another run (its child) and may wait for it.

A child is a run of its own: its own id, log and owner, with ``parent_run_id`` and
``nesting_depth`` on its start (and record). The parent's log records the child's start
(``child_workflow_started``, a checkpoint) and its outcome (``child_workflow_completed`` /
``_failed`` / ``_cancelled``); replay serves the outcome and never starts the child again.

Crash safety, by the order of the writes (as for ``continue_as_new``, see ``_linked``):

1. The child's id is derived from the parent's id and the call's checkpoint
   (:func:`child_id`): every execution of the parent that reaches the call names the same
   child (on Kafka, in the parent's partition).
2. The parent's queued step outcomes are written (the child's arguments may come from them),
   then the child's ``workflow_started`` is appended with ``expected_sequence=0``: a second
   append of it conflicts and changes nothing.
3. Then the parent's owner records ``child_workflow_started``.

A crash between 2 and 3 leaves the parent ``running`` (due, recovered): its replay reaches
the call again, finds the child started, and records it. The child is started once.

The outcome: a child that ends writes it to its parent's log *before* its own terminal event
(a request appended beside the parent's owner, like a hook payload; it wakes a suspended
parent). A crash between the two leaves the child ``running``: it is recovered, ends again,
and the parent already has the outcome. A parent that finds its child ended without having
been told (the child ended before the parent recorded 3) records the outcome itself (from
the child's record where its log is not held: a Kafka worker's backend drops an ended
run's log).

Waiting is durable: a parent whose child rests (sleep, hook) suspends too, and is woken by
the child's outcome. In local mode (no supervisor) the call that hosts the parent hosts the
child inline, until it rests; under a ``Supervisor`` the child runs in its actor, and its
end wakes the parent's actor.
"""

from __future__ import annotations

from collections.abc import Coroutine, Sequence
from typing import Any

import msgspec

from .._core._events import (
    ChildWorkflowCancelled,
    ChildWorkflowCompleted,
    ChildWorkflowFailed,
    ChildWorkflowStarted,
    Event,
    WorkflowCancelled,
    WorkflowCompleted,
    WorkflowFailed,
    WorkflowStarted,
)
from .._core._records import RunStatus
from .._core._replay import Checkpoint, Kind, RunState
from .._exceptions import (
    ChildWorkflowCancelledError,
    ChildWorkflowFailedError,
    ConfigurationError,
    MaxNestingDepthError,
    RetryableError,
)
from ._context import ChildRuntime, RunContext, current_context, is_shielded, step_view
from ._drafts import Derive, Draft
from ._linked import derived_id, placement
from ._signals import DrainSignal, SuspendSignal
from ._sleep import start_timer, timer_done
from ._workflow import Workflow

__all__ = [
    "MAX_NESTING_DEPTH",
    "ChildWorkflowHandle",
    "child_id",
    "outcome_request",
    "start_child_workflow",
]

MAX_NESTING_DEPTH = 3
"""A top run is at depth 0; its children at 1, theirs at 2, theirs at 3, and no deeper."""

_STATUS_OF = {
    ChildWorkflowCompleted: RunStatus.COMPLETED,
    ChildWorkflowFailed: RunStatus.FAILED,
    ChildWorkflowCancelled: RunStatus.CANCELLED,
}


def child_id(seed: str, home_run_id: str, storage: object) -> str:
    """The id of the child started at ``seed`` (``"{run_id}:{checkpoint}"`` in workflow
    code, ``"{step_id}:{n}"`` in a step): the same in every execution."""
    return derived_id(f"child:{seed}", home_run_id, placement(storage))


def start_child_workflow(
    workflow: Workflow[..., Any], /, *args: Any, wait_for_completion: bool = True, **kwargs: Any
) -> Coroutine[Any, Any, Any]:
    """Start a run of ``workflow`` as a child of the current run.

    In durable workflow code the call is a checkpoint: the child's start and its outcome
    are recorded in this run's log, and a replay serves them (the child is started once).
    With ``wait_for_completion=True`` (the default) it returns the child's result, or raises
    :class:`ChildWorkflowFailedError` (:class:`ChildWorkflowCancelledError` for a cancelled
    child); waiting is durable: a child that rests (sleep, hook) suspends this run until it
    ends. With ``wait_for_completion=False`` it returns a :class:`ChildWorkflowHandle`.

    When this run completes, fails, is cancelled or continues as new, its children still
    running are cancelled (parent-close policy TERMINATE) and end ``cancelled``.

    Inside a step the call is ordinary code: the step's result is what the log records,
    so a replay never runs it again. The child's id is derived from the step's id and the
    call's order in the step, so a retried step finds the child it started before instead
    of starting another. The child is not a checkpoint of the run (``get_children`` does
    not list it, TERMINATE does not cancel it; its record names the run as its parent).
    Waiting there is not durable: a child that rests before it ends raises
    :class:`~pyworkflow.RetryableError`, so the step is retried by its retry policy (give
    it ``max_retries``), and the retry looks at the same child again.

    Raises:
        ConfigurationError: ``workflow`` is not a durable ``@workflow``, or the call is
            made outside a durable run (nothing is written).
        MaxNestingDepthError: this run is already at depth 3.
        TypeError / SerializationError: the arguments don't fit or can't be stored.
    """
    if not isinstance(workflow, Workflow) or not workflow.is_durable():
        msg = (
            f"start_child_workflow() needs a function decorated with @workflow(durable=True), "
            f"got {workflow!r}"
        )
        raise ConfigurationError(msg)
    if not isinstance(wait_for_completion, bool):
        msg = f"start_child_workflow(wait_for_completion={wait_for_completion!r}): pass a bool"
        raise ConfigurationError(msg)
    ctx = current_context()
    view = step_view()
    if isinstance(ctx, RunContext) and ctx.children is not None:
        _check_depth(ctx.run_id, ctx.state.nesting_depth)
        workflow.codec.bind(workflow.name, args, kwargs)
        raw = workflow.codec.encode_args(workflow.name, args, kwargs)
        index, recorded = ctx.next_checkpoint(Kind.CHILD, workflow.name)
        return _in_workflow(ctx, index, recorded, workflow, raw, wait_for_completion)
    if ctx is None and view is not None and view.children is not None:
        assert view.run_id is not None
        assert view.step_id is not None
        _check_depth(view.run_id, view.depth)
        workflow.codec.bind(workflow.name, args, kwargs)
        raw = workflow.codec.encode_args(workflow.name, args, kwargs)
        view.started += 1
        cid = child_id(f"{view.step_id}:{view.started}", view.run_id, view.children.storage)
        started = _start_event(cid, view.run_id, view.depth, workflow, raw, view.children)
        handle = ChildWorkflowHandle(cid, workflow, view.children)
        return _in_step(handle, started, wait_for_completion)
    where = "in a transient workflow" if ctx is not None else "outside any durable workflow"
    msg = (
        f"start_child_workflow({workflow!r}) was called {where}: call it in the code of a "
        "@workflow(durable=True) function or in a step of one (start a top-level run with "
        "pyworkflow.start())"
    )
    raise ConfigurationError(msg)


def _check_depth(run_id: str, depth: int) -> None:
    if depth >= MAX_NESTING_DEPTH:
        msg = (
            f"run {run_id!r} is at nesting depth {depth}: its child would be at depth "
            f"{depth + 1}, past the limit of {MAX_NESTING_DEPTH} (a top run is at 0). Flatten "
            "the tree: do the work in steps, or start it as a top-level run with start()"
        )
        raise MaxNestingDepthError(msg)


def _start_event(
    cid: str,
    parent: str,
    depth: int,
    wf: Workflow[..., Any],
    raw: tuple[msgspec.Raw, msgspec.Raw],
    runtime: ChildRuntime,
) -> WorkflowStarted:
    return WorkflowStarted(
        run_id=cid,
        sequence=1,
        timestamp=runtime.clock.now(),
        workflow_name=wf.name,
        args=raw[0],
        kwargs=raw[1],
        tags=wf.tags,
        parent_run_id=parent,
        nesting_depth=depth + 1,
    )


class ChildWorkflowHandle:
    """A child run started with ``wait_for_completion=False``.

    In workflow code its methods are durable: ``result()`` is a checkpoint-served wait
    like ``wait_for_completion=True``. ``get_status()`` is a live look (not recorded):
    don't let the code's path depend on it, or a replay may take another path.
    """

    def __init__(
        self,
        child_run_id: str,
        workflow: Workflow[..., Any],
        runtime: ChildRuntime,
        ctx: RunContext | None = None,
        index: int = 0,
    ) -> None:
        self.child_run_id = child_run_id
        """The child's run id (``get_workflow_run(handle.child_run_id)``)."""
        self.workflow_name = workflow.name
        self._wf = workflow
        self._runtime = runtime
        self._ctx = ctx
        self._index = index

    def __repr__(self) -> str:
        return f"<ChildWorkflowHandle {self.workflow_name!r} run {self.child_run_id!r}>"

    async def result(self, timeout: float | None = None) -> Any:  # noqa: ASYNC109
        """The child's result, waiting for it to end.

        Args:
            timeout: seconds to wait at most; in workflow code a durable timer (recorded as
                a sleep checkpoint), after which ``TimeoutError`` is raised (the child goes
                on; call ``result()`` again to wait more).

        Raises:
            ChildWorkflowFailedError: the child failed (ChildWorkflowCancelledError: it was
                cancelled).
            TimeoutError: ``timeout`` passed first.
        """
        ctx = self._ctx
        if ctx is None:
            return await self._result_in_step()
        timer = None
        if timeout is not None:
            timer = await start_timer(ctx, timeout)
        return await _wait(ctx, self._index, self.child_run_id, self._wf, timer)

    async def cancel(self, reason: str | None = None) -> None:
        """Request the child's cancellation (it runs its cleanup and ends ``cancelled``); a
        no-op for a child that ended. Its outcome is recorded as any other."""
        if self._ctx is not None and self._ctx.state.checkpoints[self._index].resolved:
            return  # it ended (a replay, say): nothing to ask anyone
        await _io(self._ctx, self._runtime.cancel_child(self.child_run_id, reason))

    async def get_status(self) -> RunStatus:
        """The child's status: the recorded outcome if this run has it, else a live look."""
        ctx = self._ctx
        if ctx is not None:
            cp = ctx.state.checkpoints.get(self._index)
            if cp is not None and cp.resolved:
                return _recorded_status(cp)
        status: RunStatus = await _io(ctx, self._runtime.child_status(self.child_run_id))
        return status

    async def _result_in_step(self) -> Any:
        end = await self._runtime.settle_child(self.child_run_id)
        if end is None:
            msg = (
                f"child workflow run {self.child_run_id!r} ({self.workflow_name!r}) has not "
                "ended yet: the step is retried per its retry policy, and looks again"
            )
            raise RetryableError(msg)
        return _served(outcome_of_end(end, 0), self.child_run_id, self._wf)


async def _in_step(handle: ChildWorkflowHandle, started: WorkflowStarted, wait: bool) -> Any:
    await handle._runtime.start_child(started)
    if wait:
        return await handle._result_in_step()
    await handle._runtime.settle_child(handle.child_run_id)  # local mode: run it till it rests
    return handle


async def _in_workflow(
    ctx: RunContext,
    index: int,
    recorded: Checkpoint | None,
    wf: Workflow[..., Any],
    raw: tuple[msgspec.Raw, msgspec.Raw],
    wait: bool,
) -> Any:
    runtime = ctx.children
    assert runtime is not None
    if recorded is None:
        ctx.check_cancelled()
        cid = child_id(f"{ctx.run_id}:{index}", ctx.run_id, runtime.storage)
        started = _start_event(cid, ctx.run_id, ctx.state.nesting_depth, wf, raw, runtime)
        await ctx.owner.flush()  # write-ahead: the outcomes its arguments may come from
        await _io(ctx, runtime.start_child(started))
        fields = {
            "checkpoint": index,
            "child_run_id": cid,
            "workflow_name": wf.name,
            "wait_for_completion": wait,
        }
        await ctx.ask(ctx.opening(index, ChildWorkflowStarted, fields, is_shielded()))
        ctx.log.info("child_workflow_started", child_run_id=cid, child_workflow=wf.name)
    cp = ctx.state.checkpoints[index]
    assert cp.child_run_id is not None
    if wait:
        return await _wait(ctx, index, cp.child_run_id, wf, None)
    if not cp.resolved:
        await _settle(ctx, index, cp.child_run_id)  # local mode: run it till it rests
    return ChildWorkflowHandle(cp.child_run_id, wf, runtime, ctx, index)


async def _wait(
    ctx: RunContext, index: int, cid: str, wf: Workflow[..., Any], timer: int | None
) -> Any:
    """Wait, durably, for the child of checkpoint ``index``; ``timer``: the sleep
    checkpoint of a timeout (whichever of the two is resolved first decides)."""
    while True:
        cp = ctx.state.checkpoints[index]
        clock = ctx.state.checkpoints[timer] if timer is not None else None
        if (
            clock is not None
            and clock.resolved
            and not (cp.resolved and cp.resolved_at < clock.resolved_at)
        ):
            msg = f"child workflow run {cid!r} did not end within the timeout"
            raise TimeoutError(msg)
        if cp.resolved:
            if timer is not None and clock is not None and not clock.resolved:
                await ctx.ask(timer_done(timer))  # the child won: the timer is moot
            return _served(cp, cid, wf)
        ctx.check_cancelled()
        if timer is not None and clock is not None and clock.due and ctx.now() >= clock.due:
            await ctx.ask(timer_done(timer))
            continue
        if await _settle(ctx, index, cid):
            continue
        await ctx.suspend(index)


async def _settle(ctx: RunContext, index: int, cid: str) -> bool:
    """Have the host run the child (inline in local mode) and record its outcome if it
    ended; whether it did."""
    if ctx.suspending:
        raise SuspendSignal  # a concurrent branch is suspending the run
    if ctx.owner.draining:
        raise DrainSignal  # the host shuts down: nothing new is hosted
    runtime = ctx.children
    assert runtime is not None
    ctx.step_started()  # a suspension in another branch waits until the child rests
    try:
        end = await _io(ctx, runtime.settle_child(cid))
    finally:
        ctx.step_done()
    if end is None:
        return False
    await ctx.ask(outcome_request(cid, end))
    return True


async def _io(ctx: RunContext | None, call: Coroutine[Any, Any, Any]) -> Any:
    """The host's I/O for a child; in workflow code, a failure stops the execution (it is
    the host's, never the workflow's: the run stays as its log says, recoverable)."""
    if ctx is None:
        return await call
    try:
        return await call
    except Exception as exc:
        raise ctx.owner.halt(exc) from exc


def _recorded_status(cp: Checkpoint) -> RunStatus:
    if cp.cancelled is not None:
        return RunStatus.CANCELLED
    return RunStatus.FAILED if cp.error is not None else RunStatus.COMPLETED


def _served(cp: Checkpoint, cid: str, wf: Workflow[..., Any]) -> Any:
    """The recorded outcome of a resolved child checkpoint: its result, or its error."""
    if cp.cancelled is not None:
        raise ChildWorkflowCancelledError(cid, cp.cancelled or None)
    if cp.error is not None:
        raise ChildWorkflowFailedError(cid, *cp.error)
    assert cp.result is not None
    return wf.codec.decode_result(cp.result)


def outcome_of_end(end: Event, index: int) -> Checkpoint:
    """A child's terminal event as the outcome of its checkpoint ``index`` would be."""
    cp = Checkpoint(kind=Kind.CHILD, name="", resolved=True)
    match end:
        case WorkflowCompleted():
            cp.result = end.result
        case WorkflowFailed():
            cp.error = (end.error_type, end.error_message)
        case WorkflowCancelled():
            cp.cancelled = end.reason or ""
        case _:
            msg = f"a child's run can't end with {end.type.value!r}"
            raise ConfigurationError(msg)
    return cp


def outcome_request(cid: str, end: Event) -> Derive:
    """The request that records the end of child ``cid`` in its parent's log, written by
    the parent's owner or beside it; nothing once it is there, or for a parent that ended
    or never recorded the child (a child started in a step)."""
    outcome = outcome_of_end(end, 0)

    def derive(state: RunState) -> Sequence[Draft]:
        index = state.children.get(cid)
        if state.finished or index is None or state.checkpoints[index].resolved:
            return ()
        fields: dict[str, Any] = {"checkpoint": index, "child_run_id": cid}
        if outcome.cancelled is not None:
            return (Draft(ChildWorkflowCancelled, {**fields, "reason": outcome.cancelled or None}),)
        if outcome.error is not None:
            error_type, message = outcome.error
            failed = {**fields, "error_type": error_type, "error_message": message}
            return (Draft(ChildWorkflowFailed, failed),)
        return (Draft(ChildWorkflowCompleted, {**fields, "result": outcome.result}),)

    return derive


