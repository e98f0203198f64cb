"""The engine: one activation of a run, hosted by whoever calls it.

An *activation* takes the run's lock, folds its log, makes the run's owner (``_owner.py``,
the only writer of the log) and executes the workflow from the top until it
completes, fails or suspends, as often as new events (a hook payload, a cancellation, a due
timer) keep it going. ``start()``, ``resume()``, ``resume_hook()`` and ``cancel_workflow()``
host one inline (the local runtime); ``pyworkflow.actors`` hosts them in a supervisor.

A call from outside the run (a hook payload, a cancellation) is a request to the owner: it
runs first in the activation. When another task or process holds the run's lock (it executes
the run right now), the request is appended beside it with optimistic concurrency, and that
executor's owner folds it in at its next write.
"""

from __future__ import annotations

import secrets
import traceback
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol, TypeVar

import msgspec

from .._config import Settings
from .._core._caused import caused
from .._core._events import (
    CHILD_OUTCOMES,
    CancellationRequested,
    Event,
    HookReceived,
    WorkflowCancelled,
    WorkflowCompleted,
    WorkflowContinuedAsNew,
    WorkflowFailed,
    WorkflowResumed,
    WorkflowStarted,
    WorkflowSuspended,
)
from .._core._failures import describe
from .._core._records import RunStatus, WorkflowRun
from .._core._replay import Kind, RunState, fold
from .._exceptions import (
    ConfigurationError,
    ConflictError,
    HookAlreadyReceivedError,
    HookExpiredError,
    InvalidTokenError,
    RunLockedError,
    RunNotFoundError,
    SerializationError,
    StorageError,
    WorkflowNotRegisteredError,
)
from ..storage import StorageBackend
from ._context import RunContext, running
from ._continuation import start_successor
from ._drafts import Derive, Draft, stamp
from ._hooks import parse_token, validate_payload
from ._outcomes import (
    Cancelled,
    Continued,
    Done,
    Drained,
    Failed,
    Outcome,
    Suspended,
    classify,
    leaves_of,
)
from ._owner import Backoff, Opening, OwnerStopped, OwnerStoppedSignal, RunOwner
from ._registry import registry
from ._requests import CancelRequest
from ._state_cache import StateCache
from ._tree import RunTree
from ._workflow import Workflow

__all__ = ["Engine", "Inbox", "encode_start", "new_run_id"]

T = TypeVar("T")
_WAKE_EVENTS = (HookReceived, CancellationRequested, *CHILD_OUTCOMES)
_APPEND_RETRIES = 50


_OPENED_MAX = 4096


def new_run_id() -> str:
    return f"run_{secrets.token_hex(8)}"


class Inbox(Protocol):
    """Requests that reach a run while an activation hosts it (a supervisor's mailbox):
    attached, it hands them straight to the run's owner."""

    async def attach(self, owner: RunOwner) -> None:
        """Write the pending requests through ``owner``; later ones go to it directly."""
        ...

    def detach(self) -> None:
        """Keep requests from now on for the next activation."""
        ...


class Engine:
    """Runs workflows on ``storage`` with the clock and logger of ``settings``."""

    def __init__(
        self,
        storage: StorageBackend,
        settings: Settings,
        states: StateCache | None = None,
        backoff: Backoff | None = None,
    ) -> None:
        self.storage = storage
        self.clock = settings.clock
        self.log = settings.log
        self.states = states or StateCache(size=0)
        self._opened: dict[str, RunState] = {}
        """Runs this engine just started, folded from the start it wrote: their first
        activation takes the state from here instead of reading the log back (anything
        another writer appended meanwhile makes the owner's first append conflict, and the
        owner folds the log again). Bounded by :data:`_OPENED_MAX`."""
        self.backoff = backoff or Backoff()
        self.draining = False
        self._owners: set[RunOwner] = set()
        self.begun: set[str] = set()
        """Successors and children started here that no activation hosted yet (their
        first activation is fresh, not a recovery)."""
        self.hand_over: Callable[[str], None] | None = None
        """Set by a host that runs each run in a task of its own (a Supervisor): runs that
        a run starts or wakes (its children) are handed to it instead of hosted inline."""
        self.tree = RunTree(self)

    def drain(self, run_ids: Callable[[str], bool] | None = None) -> None:
        """Shutting down (or handing runs over): running steps finish and are recorded, no
        new step starts; the runs stay ``running`` in their logs, for the next host. With
        ``run_ids``, only the runs it selects (their executions now; later ones are the
        host's to refuse)."""
        if run_ids is None:
            self.draining = True
        for owner in self._owners:
            if run_ids is None or run_ids(owner.run_id):
                owner.draining = True

    def live_owner(self, run_id: str) -> RunOwner | None:
        """The owner of ``run_id`` if an activation of this engine executes it now."""
        return next((o for o in self._owners if o.run_id == run_id and not o.closed), None)

    # -- commands ---------------------------------------------------------------------
    async def start(
        self,
        wf: object,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        *,
        idempotency_key: object,
    ) -> str:
        """``wf`` and ``idempotency_key`` as the user gave them, checked here (typed
        ``object``: compiled, a narrower type would refuse a wrong value with mypyc's
        TypeError before our clear error)."""
        workflow = as_workflow(wf)
        if not workflow.is_durable():
            workflow.codec.bind(workflow.name, args, kwargs)
            await workflow._inline(args, kwargs)
            return new_run_id()
        raw_args, raw_kwargs = encode_start(workflow, args, kwargs, idempotency_key)
        key = as_key(idempotency_key)
        fresh_id = new_run_id()
        run_id, started = await self.prepare_start(
            fresh_id, workflow.name, raw_args, raw_kwargs, idempotency_key=key
        )
        if started is None:
            return run_id  # the key's run
        # The run's start is written by its first commit, with the workflow's first events.
        opening = Opening(started, retry=False)
        try:
            await self.follow(run_id, fresh=True, opening=opening)
        except RunLockedError:
            if key is not None and not opening.done:
                # The key's run is executed elsewhere, its start maybe not written yet: by
                # the key's claimer, or (this one being the claimer) by a start that found
                # it unstarted and started it for us.
                return run_id
            raise  # (a start refused by a fence: not this writer's to start)
        except Exception:
            stopped = opening.error
            cause = stopped.__cause__ if isinstance(stopped, OwnerStopped) else None
            if isinstance(cause, ConflictError) and not isinstance(cause, RunLockedError):
                return run_id  # another writer started it first (the key's claimer): it runs it
            raise
        if opening.done and opening.error is None:
            self.log.info("workflow_started", run_id=run_id, workflow=workflow.name)
        return run_id

    async def write_start(self, started: WorkflowStarted) -> bool:
        """Append a run's start (``prepare_start``); whether this call wrote it (False: the
        run had started already). Its first activation here (``fresh``) won't read it back.

        Raises:
            RunLockedError: not this writer's to start (a Kafka partition fenced by workers).
        """
        run_id, workflow_name = started.run_id, started.workflow_name
        idempotency_key = started.idempotency_key
        try:
            await self.storage.append(run_id, [started], expected_sequence=0)
            if len(self._opened) >= _OPENED_MAX:  # started and never activated here
                del self._opened[next(iter(self._opened))]
            self._opened[run_id] = fold(run_id, [started])
        except RunLockedError:
            raise  # not this writer's to start (a Kafka partition fenced by workers)
        except ConflictError:  # started already (a concurrent start, or a command again)
            if idempotency_key is not None:
                await self.started_as(run_id, workflow_name, idempotency_key)
            return False
        self.log.info("workflow_started", run_id=run_id, workflow=workflow_name)
        return True

    async def prepare_start(
        self,
        run_id: str,
        workflow_name: str,
        raw_args: msgspec.Raw,
        raw_kwargs: msgspec.Raw,
        *,
        idempotency_key: str | None,
    ) -> tuple[str, WorkflowStarted | None]:
        """The ``workflow_started`` of run ``run_id``, not written yet, after claiming the
        idempotency key: ``(run_id, event)``, or ``(holder, None)`` when the key names a run
        that has started (of the same workflow). ``write_start`` appends the event; a host
        that runs the run at once gives it to ``activate(opening=Opening(event))``, whose
        first commit writes it with the workflow's first events.

        Raises:
            ConfigurationError: the key is held by a run of another workflow.
        """
        if idempotency_key is not None:
            holder = await self.storage.claim_idempotency_key(idempotency_key, run_id)
            if holder != run_id:
                if await self.started_as(holder, workflow_name, idempotency_key):
                    return holder, None
                run_id = holder  # the claimer died before starting it: start it for them
        wf = registry.workflow(workflow_name)
        started = WorkflowStarted(
            run_id=run_id,
            sequence=1,
            timestamp=self.clock.now(),
            workflow_name=workflow_name,
            args=raw_args,
            kwargs=raw_kwargs,
            tags=wf.tags if wf is not None else (),
            idempotency_key=idempotency_key,
        )
        return run_id, started

    async def opened(self, opening: Opening) -> bool:
        """Wait until the run's start is written by its owner: True; False when another
        writer started the run first (a start delivered twice, say).

        Raises:
            StorageError: the start could not be written (what stopped the owner).
            RunLockedError: the run is not this writer's to start (a fenced partition).
            OwnerStopped: the execution ended before writing it (the host was cancelled).
        """
        try:
            await opening.wait()
        except OwnerStopped as exc:
            cause = exc.__cause__
            if isinstance(cause, ConflictError) and not isinstance(cause, RunLockedError):
                return False
            if isinstance(cause, StorageError | RunLockedError):
                raise caused(cause, None)
            raise
        started = opening.started
        self.log.info("workflow_started", run_id=started.run_id, workflow=started.workflow_name)
        return True

    async def started_as(self, run_id: str, workflow_name: str, key: str) -> bool:
        """Whether run ``run_id`` has started; raise if it runs another workflow than
        ``workflow_name`` (the one the start with idempotency key ``key`` asks for)."""
        events = await self.storage.read(run_id, after=0)
        if not events:
            return False
        first = events[0]
        if isinstance(first, WorkflowStarted) and first.workflow_name != workflow_name:
            msg = (
                f"idempotency key {key!r} belongs to run {run_id!r} of workflow "
                f"{first.workflow_name!r}, not of {workflow_name!r}: a key names one start of "
                "one workflow; give each workflow its own keys (e.g. prefix them with the "
                "workflow's name)"
            )
            raise ConfigurationError(msg)
        return True

    async def resume(self, run_id: str) -> Any:
        if self.hand_over is None:
            await self.tree.resume_children(run_id)  # their ends wake it
        return await self.follow(run_id, fresh=False, strict=True)

    async def follow(
        self,
        run_id: str | None,
        *,
        fresh: bool,
        strict: bool = False,
        opening: Opening | None = None,
    ) -> Any:
        """Host ``run_id`` and, while it ends ``continued_as_new``, its successors, each until
        it rests (a loop, not a recursion: chains may be long); then the runs their rests
        handed work to (``RunTree.handed``: a parent told of its child's end, children its
        end cancelled), each once. Returns the result of the chain's last run if it
        completed here, else None. A run that another task or process executes right now
        is left to it (``strict``: RunLockedError for ``run_id`` itself). ``opening``:
        ``run_id``'s start, not written yet (see ``activate``)."""
        result = None
        chain, handed, seen = run_id, list[str](), set[str]()
        while chain is not None or handed:
            current = chain if chain is not None else handed.pop(0)
            fresh = (fresh and current == chain) or current in self.begun
            self.begun.discard(current)
            given, opening = opening, None  # the first run's only
            try:
                outcome, state = await self.activate(current, fresh=fresh, opening=given)
            except RunLockedError:  # someone else executes it already
                if (strict or given is not None) and current == run_id:
                    raise  # (or, opening it, its start was refused: not this writer's)
                chain = None if current == chain else chain
                continue
            except RunNotFoundError:
                if current == chain:
                    raise
                continue
            seen.add(current)
            if current == chain:
                result, chain, fresh = outcome, state.continued_to, False
            handed += [r for r in self.tree.handed(state) if r not in seen and r not in handed]
        return result

    async def cancel(self, run_id: str, reason: object) -> bool:
        request = CancelRequest(reason)
        await self.deliver(run_id, request)
        if request.finished:
            return False
        self.log.info("cancellation_requested", run_id=run_id, reason=reason)
        return True

    async def resume_hook(self, token: object, payload: Any) -> WorkflowRun:
        run_id, derive = await self.hook_request(token, payload)
        await self.deliver(run_id, derive)
        run = await self.storage.get_run(run_id)
        assert run is not None
        return run

    async def hook_request(self, token: object, payload: Any) -> tuple[str, Derive]:
        """The run behind ``token`` and the request that records ``payload`` for its hook
        (the payload is validated now; the hook's state when the request is written)."""
        run_id, hook_id = parse_token(token)
        record = await self.storage.get_hook(hook_id)
        if record is None or record.run_id != run_id:
            msg = f"unknown hook token {token!r}: no such hook in this storage"
            raise InvalidTokenError(msg)
        raw = validate_payload(
            registry.hook_type(record.hook_name) or Any, payload, hook_name=record.hook_name
        )
        clock, log, name, checkpoint = self.clock, self.log, record.hook_name, record.checkpoint

        def derive(state: RunState) -> Sequence[Draft]:
            cp = state.checkpoints.get(checkpoint)
            if cp is None or cp.kind is not Kind.HOOK or cp.hook_id != hook_id:
                raise InvalidTokenError(f"unknown hook token {token!r}")
            if cp.resolved:
                if cp.error is not None:
                    raise HookExpiredError(f"hook {name!r} ({token}) timed out")
                if cp.result is not None and cp.result == raw:
                    return ()  # our own write, landed before an error: done
                msg = f"hook {name!r} ({token}) already received its payload"
                raise HookAlreadyReceivedError(msg)
            if state.finished:
                msg = f"run {run_id!r} is {state.status}; hook {token!r} can't be resumed"
                raise InvalidTokenError(msg)
            if cp.due is not None and clock.now() >= cp.due:
                raise HookExpiredError(f"hook {name!r} ({token}) timed out")
            log.info("hook_received", run_id=run_id, hook=name)
            fields = {"hook_id": hook_id, "checkpoint": checkpoint, "payload": raw}
            return (Draft(HookReceived, fields),)

        return run_id, derive

    async def deliver(self, run_id: str, derive: Derive) -> RunState:
        """Have the run's owner write ``derive``'s events, then go on with the run as far
        as it can here: host an activation, or append beside the executor that holds it."""
        try:
            _, state = await self.activate(run_id, fresh=False, first=derive)
        except RunLockedError:
            return await self.append_beside(run_id, derive)
        if self.hand_over is None:  # local mode: the call hosts what the run's rest woke
            for other in self.tree.handed(state):
                await self.follow(other, fresh=False)
        return state

    # -- activations --------------------------------------------------------------------
    async def activate(
        self,
        run_id: str,
        *,
        fresh: bool,
        first: Derive | None = None,
        inbox: Inbox | None = None,
        opening: Opening | None = None,
    ) -> tuple[Any, RunState]:
        """Host the run under its lock until it completes, fails or rests.

        ``opening``: the run's start, not written yet (``prepare_start``): the owner's first
        commit writes it (with ``fresh``); the log is not read first.

        Returns the workflow's result if it completed during this call (else None), and
        the run's state as this activation left it. ``first``: a request from outside,
        written before anything else; a run whose workflow isn't registered here is then left to the
        processes that have its code (it stays due), instead of raising.

        Raises:
            RunNotFoundError: no such run.
            RunLockedError: someone else is executing it.
            WorkflowNotRegisteredError: nothing to deliver and no code to run it.
            StorageError: the storage failed for good; the run stays as the log says.
        """
        known: RunState | None = None
        while True:
            async with self.storage.lock_run(run_id):
                if opening is not None:
                    state = fold(run_id, [opening.started])
                elif known is not None:
                    state = await self._catch_up(known)
                else:
                    state = await self._load(run_id, fresh)
                result, state = await self._host(
                    state, fresh=fresh, first=first, inbox=inbox, opening=opening
                )
                opening = None
            self.states.give(self.storage, state)  # ended normally: reusable next time
            runnable = registry.workflow(state.workflow_name) is not None
            if state.status is not RunStatus.SUSPENDED or not runnable:
                return result, state
            # A hook payload or cancellation that arrived while we held the lock found the
            # run busy; now that it's released, look once more and go on if one came.
            newer = await self._read(run_id, state.last_sequence)
            woken = any(isinstance(e, _WAKE_EVENTS) for e in newer)
            if not (woken or state.is_due(self.clock.now())):
                return result, state
            known, fresh, first = self.states.take(self.storage, run_id) or state, False, None

    async def _host(
        self,
        state: RunState,
        *,
        fresh: bool,
        first: Derive | None,
        inbox: Inbox | None,
        opening: Opening | None = None,
    ) -> tuple[Any, RunState]:
        owner = RunOwner(state, self.storage, self.clock, self.log, self.backoff, opening)
        owner.draining = self.draining
        self._owners.add(owner)
        try:
            if first is not None:
                await owner.ask(first)
            if inbox is not None:
                await inbox.attach(owner)
            result = await self._drive(owner, fresh=fresh, asked=first)
        except BaseExceptionGroup as group:
            if owner.stopped is None:
                raise
            raise caused(_unwrap(group, owner), None)
        except OwnerStoppedSignal:
            raise caused(_unwrap(None, owner), None)
        finally:
            owner.close()
            if inbox is not None:
                inbox.detach()
            self._owners.discard(owner)
        return result, owner.state

    async def _drive(self, owner: RunOwner, *, fresh: bool, asked: Derive | None) -> Any:
        """The core loop. Invariant: we hold the run's lock and ``owner`` is the only writer
        of its log. Each turn executes the workflow from the top and records how that
        ended; a turn follows another while new events keep the run due."""
        state = owner.state
        log = self.log.bind(run_id=state.run_id, workflow=state.workflow_name)
        if state.finished:
            return self._finished_result(state)
        wf = registry.workflow(state.workflow_name)
        if wf is None:
            await owner.flush()  # a start not written yet is (its code runs elsewhere)
            if asked is not None:
                log.warning("run_continues_elsewhere")  # recorded; its code runs elsewhere
                return None
            raise WorkflowNotRegisteredError(state.workflow_name)
        prelude: Derive | None = None
        if state.status is RunStatus.SUSPENDED:
            if not state.is_due(self.clock.now()):
                if asked is None:
                    log.warning("resume_not_due", resume_at=str(state.next_due()))
                return None
            prelude = _resumed("resume", state.last_sequence)
        elif not fresh:
            prelude = _resumed("recovered", state.last_sequence)
            log.warning("run_recovered")
        while True:
            owner.woken = False
            turn = owner.state.last_sequence
            ctx = RunContext(
                owner=owner, clock=self.clock, log=log, prelude=prelude, children=self.tree
            )
            try:
                outcome = await self._run_once(ctx, wf)
            except Exception:
                if ctx.fatal is not None:  # a code error: the run stays started
                    await owner.write_start_alone()
                raise
            await ctx.idle()  # steps of other branches finish and queue their outcomes
            match outcome:
                case Done(result=raw):
                    await self._end(ctx, WorkflowCompleted, {"result": raw})
                    log.info("workflow_completed")
                    return wf.codec.decode_result(raw)
                case Failed(error=error):
                    error_type, message = describe(error)
                    tb = "".join(traceback.format_exception(error))
                    fields = {"error_type": error_type, "error_message": message, "traceback": tb}
                    await self._end(ctx, WorkflowFailed, fields)
                    log.info("workflow_failed", error=error_type)
                    return None
                case Cancelled(reason=reason):
                    await self._end(ctx, WorkflowCancelled, {"reason": reason})
                    log.info("workflow_cancelled", reason=reason)
                    return None
                case Continued(args=args, kwargs=kwargs):
                    await self._continue(ctx, args, kwargs)
                    return None
                case Drained():
                    await owner.flush()  # outcomes of the steps that were running
                    log.info("run_left_to_next_host")
                    return None
                case Suspended():
                    blocked = ctx.blocked[0] if ctx.blocked else None
                    kind = owner.state.checkpoints[blocked].kind if blocked else Kind.SLEEP
                    reason = "retry" if kind is Kind.STEP else str(kind)
                    await ctx.ask(_suspension(reason, turn))
                    log.info("workflow_suspended", reason=reason)
                    if not (owner.woken or owner.state.is_due(self.clock.now())):
                        return None
                    prelude = _resumed("woken", owner.state.last_sequence)

    async def _run_once(self, ctx: RunContext, wf: Workflow[..., Any]) -> Outcome:
        args, kwargs = wf.codec.decode_args(ctx.state.args, ctx.state.kwargs)
        try:
            with running(ctx):
                value = await wf.fn(*args, **kwargs)
        except BaseException as exc:  # classified below; foreign BaseExceptions re-raised
            return classify(ctx, exc)
        ctx.raise_if_fatal()
        if ctx.suspending:
            return Suspended()  # the code swallowed the suspension signal
        try:
            return Done(wf.codec.encode_result(value, what=f"the result of {wf.name!r}"))
        except SerializationError as exc:
            return Failed(exc)

    # -- helpers ------------------------------------------------------------------------
    async def _end(self, ctx: RunContext, cls: type[Any], fields: dict[str, Any]) -> None:
        """Write the run's terminal event, after closing its children and telling its
        parent (``RunTree.before_end``)."""
        await self.tree.before_end(ctx, cls, fields)
        await ctx.ask(_ending(cls, fields))

    async def _continue(self, ctx: RunContext, args: msgspec.Raw, kwargs: msgspec.Raw) -> None:
        """End the run by ``continue_as_new``, in the order ``_continuation`` explains."""
        # Write-ahead: the outcomes the new arguments may come from are in the log before
        # the successor exists.
        await ctx.owner.flush()
        new_id = await self._successor(ctx.state, args, kwargs)
        link: dict[str, Any] = {"new_run_id": new_id, "args": args, "kwargs": kwargs}
        await self._end(ctx, WorkflowContinuedAsNew, link)
        ctx.log.info("workflow_continued_as_new", new_run_id=new_id)

    async def _successor(self, state: RunState, args: msgspec.Raw, kwargs: msgspec.Raw) -> str:
        """Start the successor of a run that continues as new (``_continuation``), retried
        with backoff while the storage fails transiently."""
        new_id, created = await self.retrying(
            lambda: start_successor(self.storage, self.clock, state, args, kwargs), "append"
        )
        if created:
            self.begun.add(new_id)
        return new_id

    async def _load(self, run_id: str, fresh: bool = False) -> RunState:
        """The run's state folded from its log: for the first activation of a run this
        engine just started (``fresh``), the state of its start; else a kept state brought
        up to date, or a fold from the first event."""
        opened = self._opened.pop(run_id, None)  # stale for anything but that activation
        if opened is not None and fresh:
            return opened
        kept = self.states.take(self.storage, run_id)
        if kept is not None:
            return await self._catch_up(kept)
        events: Sequence[Event] = await self._read(run_id, 0)
        if not events:
            raise RunNotFoundError(run_id)
        return fold(run_id, events)

    async def _catch_up(self, state: RunState) -> RunState:
        newer = await self._read(state.run_id, state.last_sequence)
        for event in newer:
            state.apply(event)
        return state

    async def _read(self, run_id: str, after: int = 0) -> list[Event]:
        """The run's events after ``after``, retried with backoff while reads fail
        transiently."""
        return await self.retrying(lambda: self.storage.read(run_id, after=after), "read")

    async def retrying(self, call: Callable[[], Awaitable[T]], operation: str) -> T:
        """``call()``, again with backoff while it fails with a transient storage error."""
        delays = self.backoff.delays()
        while True:
            try:
                return await call()
            except StorageError as exc:
                delay = next(delays, None) if exc.retriable else None
                if delay is None:
                    raise
                self.log.warning("storage_retry", operation=operation, delay=delay, error=repr(exc))
                await self.clock.sleep(delay)

    async def append_beside(self, run_id: str, derive: Derive) -> RunState:
        """Write ``derive``'s events while another executor holds the run: decide on the
        latest state, append with optimistic concurrency, decide again after a conflict.
        The executor's owner folds them in at its next write."""
        for _ in range(_APPEND_RETRIES):
            state = await self._load(run_id)
            drafts = derive(state)
            now = self.clock.now()
            events = [
                stamp(d, run_id, state.last_sequence + i, now)
                for i, d in enumerate(drafts, start=1)
            ]
            if not events:
                return state
            try:
                await self.storage.append(run_id, events, expected_sequence=state.last_sequence)
            except RunLockedError:
                raise  # the run's partition belongs to another worker now
            except ConflictError:
                continue
            for event in events:
                state.apply(event)
            return state
        raise ConflictError(f"could not write to run {run_id!r}: too many conflicts")

    def _finished_result(self, state: RunState) -> Any:
        if state.status is RunStatus.COMPLETED and state.result is not None:
            wf = registry.workflow(state.workflow_name)
            if wf is not None:
                return wf.codec.decode_result(state.result)
            return msgspec.json.decode(state.result)
        return None


def as_workflow(wf: object) -> Workflow[..., Any]:
    """``wf`` if it is a workflow, else ConfigurationError."""
    if not isinstance(wf, Workflow):
        msg = f"start() needs a function decorated with @workflow, got {wf!r}"
        raise ConfigurationError(msg)
    return wf


def as_key(key: object) -> str | None:
    """``key`` if it is None or a non-empty string (an idempotency key), else
    ConfigurationError."""
    if key is None or (isinstance(key, str) and key):
        return key
    msg = f"idempotency_key {key!r} must be a non-empty string"
    raise ConfigurationError(msg)


def encode_start(
    wf: object,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    idempotency_key: object,
) -> tuple[msgspec.Raw, msgspec.Raw]:
    """Check a start's arguments and encode them, before anything is written or sent.

    Raises:
        ConfigurationError: ``wf`` is not a workflow, the key is not a non-empty string,
            or the workflow's annotations can't be resolved.
        TypeError: the arguments don't fit the signature.
        SerializationError: an argument can't be stored.
    """
    workflow = as_workflow(wf)
    as_key(idempotency_key)
    workflow.codec.bind(workflow.name, args, kwargs)
    workflow.codec.resolve()  # a run whose arguments couldn't be decoded must not start
    return workflow.codec.encode_args(workflow.name, args, kwargs)


def _unwrap(group: BaseExceptionGroup[Any] | None, owner: RunOwner) -> BaseException:
    """The one exception an activation ends with: the storage error that stopped the owner,
    else the single error inside the task group's group."""
    stopped = owner.stopped
    if isinstance(stopped, OwnerStopped) and isinstance(stopped.__cause__, Exception):
        return stopped.__cause__
    if group is None:
        return stopped or RuntimeError("the run's owner stopped")
    leaves = leaves_of(group)
    return leaves[0] if len(leaves) == 1 else group


# The requests of the run's own lifecycle. Each returns nothing when the log already holds
# what it asks for (its write landed before an error was reported).


def _resumed(reason: str, since: int) -> Derive:
    """``workflow_resumed``, unless one was written after sequence ``since``."""

    def derive(state: RunState) -> Sequence[Draft]:
        if state.resumed_at > since:
            return ()
        return (Draft(WorkflowResumed, {"reason": reason}),)

    return derive


def _ending(cls: type[Any], fields: dict[str, Any]) -> Derive:
    def derive(state: RunState) -> Sequence[Draft]:
        return () if state.finished else (Draft(cls, fields),)

    return derive


def _suspension(reason: str, turn: int) -> Derive:
    """The run rests, unless it rested since sequence ``turn`` (when the turn began) already;
    a turn that began suspended (woken) writes its ``workflow_resumed`` and this together."""

    def derive(state: RunState) -> Sequence[Draft]:
        if state.status is RunStatus.SUSPENDED and state.suspended_at > turn:
            return ()
        return (Draft(WorkflowSuspended, {"reason": reason, "resume_at": state.next_due()}),)

    return derive
