"""The local runtime: executes durable runs inline against one storage backend.

``start()`` runs a workflow until it completes, fails or suspends; ``resume()`` replays it
from the top, serving recorded outcomes, and goes on from the first checkpoint without one.
"""

from __future__ import annotations

import contextlib
import secrets
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import msgspec

from .._config import Settings
from .._core._events import (
    CancellationRequested,
    Event,
    HookReceived,
    WorkflowCancelled,
    WorkflowCompleted,
    WorkflowFailed,
    WorkflowResumed,
    WorkflowStarted,
    WorkflowSuspended,
)
from .._core._failures import describe
from .._core._records import RunStatus, WorkflowRun
from .._core._replay import Kind, RunState, fold
from .._exceptions import (
    CancellationError,
    ConfigurationError,
    ConflictError,
    HookAlreadyReceivedError,
    HookExpiredError,
    InvalidTokenError,
    RunLockedError,
    RunNotFoundError,
    SerializationError,
    WorkflowNotRegisteredError,
)
from ..storage import StorageBackend
from ._context import Draft, RunContext, running
from ._hooks import parse_token, validate_payload
from ._registry import registry
from ._signals import SuspendSignal
from ._state_cache import StateCache
from ._workflow import Workflow

__all__ = ["Engine", "new_run_id"]

_WAKE_EVENTS = (HookReceived, CancellationRequested)
_APPEND_RETRIES = 50


def new_run_id() -> str:
    return f"run_{secrets.token_hex(8)}"


@dataclass(slots=True)
class _Done:
    result: msgspec.Raw


@dataclass(slots=True)
class _Failed:
    error: BaseException


@dataclass(slots=True)
class _Cancelled:
    reason: str | None


@dataclass(slots=True)
class _Suspended:
    pass


_Outcome = _Done | _Failed | _Cancelled | _Suspended


class Engine:
    """Runs workflows on ``storage`` with the clock and logger of ``settings``."""

    def __init__(
        self, storage: StorageBackend, settings: Settings, states: StateCache | None = None
    ) -> None:
        self.storage = storage
        self.clock = settings.clock
        self.log = settings.log
        self.states = states or StateCache(size=0)

    # -- commands ---------------------------------------------------------------------
    async def start(
        self,
        wf: Workflow[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        *,
        idempotency_key: str | None,
    ) -> str:
        if not isinstance(wf, Workflow):
            msg = f"start() needs a function decorated with @workflow, got {wf!r}"
            raise ConfigurationError(msg)
        if idempotency_key is not None and (
            not isinstance(idempotency_key, str) or not idempotency_key
        ):
            msg = f"idempotency_key {idempotency_key!r} must be a non-empty string"
            raise ConfigurationError(msg)
        wf.codec.bind(wf.name, args, kwargs)
        if not wf.is_durable():
            run_id = new_run_id()
            await wf._inline(args, kwargs)
            return run_id
        raw_args, raw_kwargs = wf.codec.encode_args(wf.name, args, kwargs)
        run_id = new_run_id()
        if idempotency_key is not None:
            holder = await self.storage.claim_idempotency_key(idempotency_key, run_id)
            if holder != run_id:
                if await self.storage.read(holder, after=0):
                    return holder
                run_id = holder  # the claimer died before starting it: start it for them
        started = WorkflowStarted(
            run_id=run_id,
            sequence=1,
            timestamp=self.clock.now(),
            workflow_name=wf.name,
            args=raw_args,
            kwargs=raw_kwargs,
            tags=wf.tags,
            idempotency_key=idempotency_key,
        )
        try:
            await self.storage.append(run_id, [started], expected_sequence=0)
        except ConflictError:
            return run_id  # a concurrent start() with the same key won
        self.log.info("workflow_started", run_id=run_id, workflow=wf.name)
        with contextlib.suppress(RunLockedError):  # someone else executes it already
            await self.execute(run_id, fresh=True)
        return run_id

    async def resume(self, run_id: str) -> Any:
        return await self.execute(run_id, fresh=False)

    async def cancel(self, run_id: str, reason: str | None) -> bool:
        if reason is not None and not isinstance(reason, str):
            msg = f"cancel_workflow reason {reason!r} must be a string or None"
            raise ConfigurationError(msg)

        def request(state: RunState) -> Draft | None:
            if state.finished or state.cancel_requested:
                return None
            return Draft(CancellationRequested, {"reason": reason})

        state, appended = await self._record(run_id, request, "the cancellation")
        if state.finished:
            return False
        if appended:
            self.log.info("cancellation_requested", run_id=run_id, reason=reason)
        await self._wake(state)
        return True

    async def resume_hook(self, token: str, payload: Any) -> WorkflowRun:
        run_id, hook_id = parse_token(token)
        record = await self.storage.get_hook(hook_id)
        if record is None or record.run_id != run_id:
            msg = f"unknown hook token {token!r}: no such hook in this storage"
            raise InvalidTokenError(msg)
        raw = validate_payload(
            registry.hook_type(record.hook_name) or Any, payload, hook_name=record.hook_name
        )

        def deliver(state: RunState) -> Draft:
            cp = state.checkpoints.get(record.checkpoint)
            if cp is None or cp.kind is not Kind.HOOK or cp.hook_id != hook_id:
                raise InvalidTokenError(f"unknown hook token {token!r}")
            if cp.resolved:
                if cp.error is not None:
                    raise HookExpiredError(f"hook {record.hook_name!r} ({token}) timed out")
                msg = f"hook {record.hook_name!r} ({token}) already received its payload"
                raise HookAlreadyReceivedError(msg)
            if state.finished:
                msg = f"run {run_id!r} is {state.status}; hook {token!r} can't be resumed"
                raise InvalidTokenError(msg)
            if cp.due is not None and self.clock.now() >= cp.due:
                raise HookExpiredError(f"hook {record.hook_name!r} ({token}) timed out")
            fields = {"hook_id": hook_id, "checkpoint": record.checkpoint, "payload": raw}
            return Draft(HookReceived, fields)

        state, _ = await self._record(run_id, deliver, f"the payload of hook {token!r}")
        self.log.info("hook_received", run_id=run_id, hook=record.hook_name)
        await self._wake(state)
        run = await self.storage.get_run(run_id)
        assert run is not None
        return run

    # -- execution --------------------------------------------------------------------
    async def execute(self, run_id: str, *, fresh: bool, known: RunState | None = None) -> Any:
        """Execute a run under its lock until it completes, fails or suspends.

        Returns the workflow's result if it completed during this call, else None.
        ``known``: a state of this run folded by the caller; only the events appended
        since are read and folded into it (a fold is incremental), not the whole log.

        Raises:
            RunNotFoundError: no such run.
            RunLockedError: someone else is executing it.
        """
        while True:
            async with self.storage.lock_run(run_id):
                state = await self._catch_up(known) if known else await self._load(run_id)
                known = None
                result = await self._drive(state, fresh=fresh)
            self.states.give(self.storage, state)  # ended normally: reusable next time
            if state.status is not RunStatus.SUSPENDED:
                return result
            # A hook payload or cancellation that arrived while we held the lock found the
            # run busy; now that it's released, look once more and go on if one came.
            newer = await self.storage.read(run_id, after=state.last_sequence)
            if not any(isinstance(e, _WAKE_EVENTS) for e in newer):
                return result
            fresh = False

    async def _drive(self, state: RunState, *, fresh: bool) -> Any:
        """The core loop. Invariant: we hold the run's lock, and ``state`` is the fold of
        every event in the log (appends go through a RunContext that keeps it so).
        Each turn executes the workflow from the top and records how that ended."""
        log = self.log.bind(run_id=state.run_id, workflow=state.workflow_name)
        if state.finished:
            return self._finished_result(state)
        wf = registry.workflow(state.workflow_name)
        if wf is None:
            raise WorkflowNotRegisteredError(state.workflow_name)
        prelude: list[Draft] = []
        if state.status is RunStatus.SUSPENDED:
            if not state.is_due(self.clock.now()):
                log.warning("resume_not_due", resume_at=str(state.next_due()))
                return None
            prelude.append(Draft(WorkflowResumed, {"reason": "resume"}))
        elif not fresh:
            prelude.append(Draft(WorkflowResumed, {"reason": "recovered"}))
            log.warning("run_recovered")
        while True:
            ctx = RunContext(
                state=state, storage=self.storage, clock=self.clock, log=log, prelude=prelude
            )
            outcome = await self._run_once(ctx, wf)
            match outcome:
                case _Done(result=raw):
                    await ctx.append(Draft(WorkflowCompleted, {"result": raw}))
                    log.info("workflow_completed")
                    return wf.codec.decode_result(raw)
                case _Failed(error=error):
                    error_type, message = describe(error)
                    tb = "".join(traceback.format_exception(error))
                    await ctx.append(
                        Draft(
                            WorkflowFailed,
                            {"error_type": error_type, "error_message": message, "traceback": tb},
                        )
                    )
                    log.info("workflow_failed", error=error_type)
                    return None
                case _Cancelled(reason=reason):
                    await ctx.append(Draft(WorkflowCancelled, {"reason": reason}))
                    log.info("workflow_cancelled", reason=reason)
                    return None
                case _Suspended():
                    kind = state.checkpoints[ctx.blocked[0]].kind if ctx.blocked else Kind.SLEEP
                    reason = "retry" if kind is Kind.STEP else str(kind)
                    due = state.next_due()
                    await ctx.append(Draft(WorkflowSuspended, {"reason": reason, "resume_at": due}))
                    log.info("workflow_suspended", reason=reason, resume_at=str(due))
                    if not (ctx.woken or state.is_due(self.clock.now())):
                        return None
                    prelude = [Draft(WorkflowResumed, {"reason": "woken"})]

    async def _run_once(self, ctx: RunContext, wf: Workflow[..., Any]) -> _Outcome:
        args, kwargs = wf.codec.decode_args(ctx.state.args, ctx.state.kwargs)
        try:
            with running(ctx):
                value = await wf.fn(*args, **kwargs)
        except BaseException as exc:  # classified below; foreign BaseExceptions re-raised
            return _classify(ctx, exc)
        ctx.raise_if_fatal()
        if ctx.suspending:
            return _Suspended()  # the code swallowed the suspension signal
        try:
            return _Done(wf.codec.encode_result(value, what=f"the result of {wf.name!r}"))
        except SerializationError as exc:
            return _Failed(exc)

    # -- helpers ------------------------------------------------------------------------
    async def _load(self, run_id: str) -> RunState:
        """The run's state folded from its log: a kept state brought up to date, or a
        fold from the first event."""
        kept = self.states.take(self.storage, run_id)
        if kept is not None:
            return await self._catch_up(kept)
        events: Sequence[Event] = await self.storage.read(run_id)
        if not events:
            raise RunNotFoundError(run_id)
        return fold(run_id, events)

    async def _catch_up(self, state: RunState) -> RunState:
        for event in await self.storage.read(state.run_id, after=state.last_sequence):
            state.apply(event)
        return state

    async def _record(
        self, run_id: str, decide: Callable[[RunState], Draft | None], what: str
    ) -> tuple[RunState, bool]:
        """Append one event from outside the run's execution (a cancellation, a hook
        payload): ``decide`` looks at the latest state and returns the event, or None for
        nothing to write (it may raise instead). Re-read and decide again when another
        writer appended first. Returns the state and whether the event was appended."""
        for _ in range(_APPEND_RETRIES):
            state = await self._load(run_id)
            draft = decide(state)
            if draft is None:
                return state, False
            event = draft.cls(
                run_id=run_id,
                sequence=state.last_sequence + 1,
                timestamp=self.clock.now(),
                **draft.fields,
            )
            try:
                await self.storage.append(run_id, [event], expected_sequence=state.last_sequence)
            except ConflictError:
                continue
            state.apply(event)
            return state, True
        raise ConflictError(f"could not record {what} of run {run_id!r}: too many conflicts")

    async def _wake(self, state: RunState) -> None:
        """Continue a suspended run at once (the local runtime's reaction to a new event)."""
        if state.status is not RunStatus.SUSPENDED:
            return  # running elsewhere: its executor folds the event in at its next append
        with contextlib.suppress(RunLockedError):  # its executor sees the event on release
            await self.execute(state.run_id, fresh=False, known=state)

    def _finished_result(self, state: RunState) -> Any:
        if state.status is RunStatus.COMPLETED and state.result is not None:
            wf = registry.workflow(state.workflow_name)
            if wf is not None:
                return wf.codec.decode_result(state.result)
            return msgspec.json.decode(state.result)
        return None


def _classify(ctx: RunContext, exc: BaseException) -> _Outcome:
    """Turn how a workflow execution ended into an outcome, or re-raise what isn't ours."""
    ctx.raise_if_fatal()
    rest: BaseException | None = exc
    if isinstance(exc, SuspendSignal):
        rest = None
    elif isinstance(exc, BaseExceptionGroup):
        _, rest = exc.split(SuspendSignal)
    if rest is None:
        return _Suspended()
    leaves = _leaves(rest)
    if not all(isinstance(e, Exception) for e in leaves):
        raise exc  # KeyboardInterrupt, task cancellation: the run stays running, recoverable
    if all(isinstance(e, CancellationError) for e in leaves):
        first = leaves[0]
        assert isinstance(first, CancellationError)
        return _Cancelled(first.reason or ctx.state.cancel_reason)
    return _Failed(
        rest if not isinstance(rest, BaseExceptionGroup) or len(leaves) > 1 else leaves[0]
    )


def _leaves(exc: BaseException) -> list[BaseException]:
    if isinstance(exc, BaseExceptionGroup):
        return [leaf for sub in exc.exceptions for leaf in _leaves(sub)]
    return [exc]
