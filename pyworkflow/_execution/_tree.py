"""The host's side of child workflows (``_children`` is the workflow's side): starting a
child, hosting it, a child's end told to its parent, a parent's end closing its children.

Local mode (an engine with no ``hand_over``): the call that hosts a run hosts what it
starts or wakes, until everything rests (as ``start()``/``resume()`` do for one run). A
parent waiting for its child hosts the child inline; a child whose end wakes its parent, or a
parent whose end cancels its children, hands them to the same call (``Engine.follow``).
Under a Supervisor (``hand_over`` set) each run runs in its own actor: new and due children
are handed to the supervisor, and a run's end wakes the runs it told.
"""

from __future__ import annotations

import functools
from contextlib import suppress
from typing import TYPE_CHECKING, Any

import msgspec

from .._core._events import (
    Event,
    WorkflowCancelled,
    WorkflowCompleted,
    WorkflowContinuedAsNew,
    WorkflowFailed,
    WorkflowStarted,
)
from .._core._projection import due_at
from .._core._records import RunStatus, WorkflowRun
from .._core._replay import Kind, RunState, fold
from .._exceptions import RunLockedError, RunNotFoundError
from ._children import outcome_request
from ._context import RunContext, detached
from ._linked import start_linked
from ._owner import OwnerStoppedSignal
from ._requests import CancelRequest
from ._signals import SuspendSignal

if TYPE_CHECKING:
    from ._engine import Engine

__all__ = ["RunTree"]


class RunTree:
    """Child workflows as the engine ``engine`` hosts them (a ``ChildRuntime``)."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self.storage = engine.storage
        self.clock = engine.clock

    # -- what workflow code asks for (ChildRuntime) ---------------------------------------
    async def start_child(self, started: WorkflowStarted) -> bool:
        engine = self._engine
        parent, name = started.parent_run_id, started.workflow_name

        def ours(first: WorkflowStarted) -> bool:
            return first.parent_run_id == parent and first.workflow_name == name

        created = await engine.retrying(lambda: start_linked(self.storage, started, ours), "append")
        if created:
            engine.begun.add(started.run_id)
            engine.log.info("workflow_started", run_id=started.run_id, parent_run_id=parent)
            if engine.hand_over is not None:
                engine.hand_over(started.run_id)
        return created

    async def settle_child(self, child_id: str) -> Event | None:
        engine = self._engine
        run = await self._run(child_id)
        if run is None:
            return None  # not in this host's view (e.g. a worker's, which dropped it)
        if not run.status.is_finished:
            if not self._due(run):
                return None
            if engine.hand_over is not None:
                engine.hand_over(child_id)
                return None
            with detached():
                await engine.follow(child_id, fresh=False)
            run = await self._run(child_id)
            if run is None or not run.status.is_finished:
                return None
        events = await engine.retrying(
            lambda: self.storage.read(child_id, after=max(run.last_sequence - 1, 0)), "read"
        )
        return events[-1] if events else _end_of_record(run)

    async def cancel_child(self, child_id: str, reason: str | None) -> None:
        engine = self._engine
        request = CancelRequest(reason)
        try:
            await engine.retrying(lambda: engine.append_beside(child_id, request), "append")
        except RunNotFoundError:  # not in this storage: nothing here to cancel
            engine.log.warning("child_run_not_found", child_run_id=child_id)
            return
        if engine.hand_over is not None:
            engine.hand_over(child_id)
            return
        with detached():
            await engine.follow(child_id, fresh=False)  # its cleanup, until it rests

    async def child_status(self, child_id: str) -> RunStatus:
        run = await self._run(child_id)
        if run is None:
            raise RunNotFoundError(child_id)
        return run.status

    # -- what the engine does around a run's end ------------------------------------------
    async def before_end(self, ctx: RunContext, cls: type[Any], fields: dict[str, Any]) -> None:
        """Before the run's terminal event (``cls(**fields)``) is written: cancel its
        children still running (parent-close policy TERMINATE), then give its parent its
        outcome. Both are requests beside the other runs' owners, idempotent, so a crash
        before the terminal event is repaired by the run's recovery doing them again."""
        engine, state = self._engine, ctx.state
        open_children = _open_children(state)
        if not open_children and state.parent_run_id is None:
            return
        await ctx.owner.flush()  # write-ahead: what the run did before it tells others
        why = f"parent run {state.run_id} ended: parent-close policy TERMINATE"
        for child_id in open_children:
            cancel = functools.partial(engine.append_beside, child_id, CancelRequest(why))
            try:
                await engine.retrying(cancel, "append")
            except RunNotFoundError:  # not in this storage (a log replayed alone, say)
                ctx.log.warning("child_run_not_found", child_run_id=child_id)
                continue
            ctx.log.info("child_workflow_terminated", child_run_id=child_id)
        parent = state.parent_run_id
        if parent is None or cls is WorkflowContinuedAsNew:
            return
        end = cls(run_id=state.run_id, sequence=0, timestamp=self.clock.now(), **fields)
        told = outcome_request(state.run_id, end)
        owner = engine.live_owner(parent)
        if owner is not None:  # executing here (hosting this child inline, say): its owner
            with suppress(SuspendSignal, OwnerStoppedSignal):  # ...unless it just ended
                await owner.ask(told)
                if engine.hand_over is not None:
                    # A wake, as another writer's outcome would be: under a supervisor the
                    # parent runs in an actor of its own, and may have looked at this child
                    # (still running) and be suspending on it in this same turn; it goes on
                    # instead of resting with the outcome unread (the wake this end hands
                    # the supervisor finds the parent's actor active, and is dropped). In
                    # local mode the parent hosts the child inline and reads its end itself.
                    owner.woken = True
                return
        try:
            await engine.retrying(lambda: engine.append_beside(parent, told), "append")
        except RunNotFoundError:
            ctx.log.warning("parent_run_not_found", parent_run_id=parent)

    def handed(self, state: RunState) -> list[str]:
        """The runs that the rest of ``state``'s run handed work to: when it ended, its
        children its end cancelled, and its parent (to take its outcome)."""
        if not state.finished:
            return []
        runs = _open_children(state)
        if state.parent_run_id is not None:
            runs.append(state.parent_run_id)
        return runs

    async def resume_children(self, run_id: str) -> None:
        """Local mode, before ``resume(run_id)``: a suspended run waits for its children,
        so resume those that are due, deepest first (their ends wake it)."""
        engine = self._engine
        run = await self._run(run_id)
        if run is None or run.suspended_reason != str(Kind.CHILD):
            return  # not resting on a child: nothing to read
        events = await engine.retrying(lambda: self.storage.read(run_id, after=0), "read")
        state = fold(run_id, events)
        for child_id in _open_children(state):
            await self.resume_children(child_id)
            run = await self._run(child_id)
            if run is not None and not run.status.is_finished and self._due(run):
                with suppress(RunLockedError):
                    await engine.follow(child_id, fresh=False)

    # -- helpers --------------------------------------------------------------------------
    async def _run(self, run_id: str) -> WorkflowRun | None:
        return await self._engine.retrying(lambda: self.storage.get_run(run_id), "read")

    def _due(self, run: WorkflowRun) -> bool:
        """Whether the child needs an executor now (just started here, recovering, or
        woken or its timer due)."""
        if run.run_id in self._engine.begun:
            return True
        due = due_at(run)
        return due is not None and due <= self.clock.now()


def _end_of_record(run: WorkflowRun) -> Event | None:
    """A finished run's end, rebuilt from its record: for a storage that keeps the record
    of a run that ended but not its log (a Kafka worker's backend). A parent recovered after
    its child ended, before it recorded the child's start (the child's end found nothing to
    write its outcome to), takes the outcome from here. Results are JSON: the record holds
    the decoded value, encoded again here to what the log holds."""
    at: dict[str, Any] = {
        "run_id": run.run_id,
        "sequence": run.last_sequence,
        "timestamp": run.updated_at,
    }
    match run.status:
        case RunStatus.COMPLETED:
            return WorkflowCompleted(**at, result=msgspec.Raw(msgspec.json.encode(run.result)))
        case RunStatus.FAILED:
            error_type, message = run.error_type or "", run.error_message or ""
            return WorkflowFailed(**at, error_type=error_type, error_message=message)
        case RunStatus.CANCELLED:
            return WorkflowCancelled(**at, reason=run.cancellation_reason)
        case _:
            return None


def _open_children(state: RunState) -> list[str]:
    """The children that ``state``'s run started and has no outcome of yet."""
    return [c for c, i in state.children.items() if not state.checkpoints[i].resolved]
