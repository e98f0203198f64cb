"""The embedded supervisor: one actor task per active run, durable timers, backpressure."""

from __future__ import annotations

import heapq
from collections import OrderedDict
from contextlib import nullcontext
from dataclasses import replace
from datetime import datetime, timedelta
from types import TracebackType
from typing import Any, Self

import anyio
import msgspec
from anyio.abc import TaskGroup

from .._config import add_host, remove_host, settings, state_cache
from .._core._events import WorkflowCompleted, WorkflowStarted
from .._core._records import RunStatus, WorkflowRun
from .._core._replay import RunState
from .._exceptions import (
    ConfigurationError,
    ConflictError,
    RunLockedError,
    RunNotFoundError,
    StorageError,
    WorkflowCancelledError,
    WorkflowFailedError,
    WorkflowNotRegisteredError,
)
from .._execution._clock import Clock
from .._execution._drafts import Derive
from .._execution._engine import Engine, encode_start, new_run_id
from .._execution._owner import Backoff, Opening, OwnerStopped, OwnerStoppedSignal
from .._execution._registry import registry
from .._execution._requests import CancelRequest
from .._execution._scheduling import ScheduleFirer
from .._execution._signals import SuspendSignal
from .._execution._workflow import Workflow
from ..storage import StorageBackend
from ._actor import Command, RunActor
from ._tasks import ActorTasks

__all__ = ["Supervisor", "outcome_of"]

_POLL_LIMIT = 10_000
_RECENT = 4096


class Supervisor:
    """Hosts the runs of one storage backend in this process: one actor per active run.

    ``async with Supervisor(storage=...) as sup:`` inside any program (asyncio or trio).
    Each active run is a task in the supervisor's task group and the only writer of its
    log; calls (start, a hook payload, a cancellation) are messages to it. A run that
    suspends ends its task and leaves a timer entry; the supervisor wakes it when a sleep,
    a retry delay or a hook timeout is due, when a payload or cancellation arrives, and
    after a restart, from the storage's index of due runs (which also finds runs whose
    executor died). While it is open, the module-level ``start``/``resume``/
    ``resume_hook``/``cancel_workflow`` on the same storage go through it.

    Args:
        storage: the backend whose runs it hosts (one supervisor per backend and process).
        max_active: at most this many runs execute at once; callers and timers wait.
        clock: defaults to the configured clock (``pyworkflow.testing.ManualClock`` in
            tests: timers then fire when the test advances it).
        poll_interval: seconds between looks at the storage's due index, for runs that
            other processes made due (their hook payloads, their crashes).
        grace_period: on leaving the ``async with`` block, no new step starts, and the steps
            running get this many seconds to finish and be recorded before they are
            stopped; either way the runs are left ``running`` for the next host to recover.
    """

    def __init__(
        self,
        storage: StorageBackend,
        *,
        max_active: int = 1000,
        clock: Clock | None = None,
        poll_interval: float = 1.0,
        grace_period: float = 30.0,
    ) -> None:
        if not isinstance(max_active, int) or isinstance(max_active, bool) or max_active < 1:
            msg = f"Supervisor(max_active={max_active!r}): pass a whole number >= 1"
            raise ConfigurationError(msg)
        for name, value in (("poll_interval", poll_interval), ("grace_period", grace_period)):
            if not isinstance(value, int | float) or isinstance(value, bool) or value <= 0:
                msg = f"Supervisor({name}={value!r}): pass a number of seconds > 0"
                raise ConfigurationError(msg)
        current = settings()
        self.storage = storage
        self.clock: Clock = clock or current.clock
        self.log = current.log.bind(component="supervisor")
        self.max_active = max_active
        self.poll_interval = float(poll_interval)
        self.grace_period = float(grace_period)
        self._engine = Engine(
            storage,
            current if clock is None else replace(current, clock=clock),
            state_cache(),
            Backoff(attempts=None),
        )
        self._engine.hand_over = self._continue  # a run's new children: their own actors
        self._actors: dict[str, RunActor] = {}
        self._slots = anyio.Semaphore(max_active)
        self._timers: list[tuple[datetime, str]] = []
        self._timer_due: dict[str, datetime] = {}
        self._failures: dict[str, int] = {}
        self._unhosted: set[str] = set()
        """Due runs whose workflow this process doesn't define: polls skip them."""
        self._errors: dict[str, BaseException] = {}
        """The storage error a run's last activation ended with (until one ends well)."""
        self._recent: OrderedDict[str, RunState] = OrderedDict()
        """The final states of the runs that ended here lately, for ``result()``."""
        self._finished: dict[str, anyio.Event] = {}
        self._sleep: anyio.CancelScope | None = None
        self._poll_due = False
        self._rested_in_poll: set[str] = set()
        self._starting: set[str] = set()
        """Runs whose start this supervisor is recording (not crashed, though running)."""
        self._sleep_until: datetime | None = None
        self._tg: TaskGroup | None = None
        self._actor_tasks = ActorTasks()
        """The actors' tasks (cheaper than the task group's, which runs the rest)."""
        self._closing = False
        self._firer = ScheduleFirer(storage, self.clock, self.log, self)
        self._schedule_due: datetime | None = None
        """The earliest due time of the schedules this host fires (None: none known)."""

    # -- lifecycle ----------------------------------------------------------------------
    async def __aenter__(self) -> Self:
        add_host(self.storage, self)
        self._tg = anyio.create_task_group()
        await self._tg.__aenter__()
        try:
            await self._actor_tasks.__aenter__()
        except BaseException:
            await self._tg.__aexit__(None, None, None)
            raise
        self._tg.start_soon(self._timer_service)
        self.log.info("supervisor_started", max_active=self.max_active)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        assert self._tg is not None
        self._closing = True
        remove_host(self.storage, self)
        self._engine.drain()
        try:
            if exc is None:
                with anyio.move_on_after(self.grace_period):
                    for actor in list(self._actors.values()):
                        await actor.rested()
        finally:
            self._actor_tasks.cancel()
            try:
                await self._actor_tasks.aclose()
            finally:
                self._tg.cancel_scope.cancel()
                suppressed = await self._tg.__aexit__(exc_type, exc, tb)
                self.log.info("supervisor_stopped", active=len(self._actors))
        return suppressed

    # -- calls ----------------------------------------------------------------------------
    async def start(
        self,
        workflow: Workflow[..., Any],
        /,
        *args: Any,
        idempotency_key: str | None = None,
        **kwargs: Any,
    ) -> str:
        """Start a run and return its id as soon as it is durably started; its actor runs
        it. Waits while ``max_active`` runs execute (backpressure)."""
        self._check_open()
        if isinstance(workflow, Workflow) and not workflow.is_durable():
            return await self._engine.start(workflow, args, kwargs, idempotency_key=None)
        await self._take_slot()  # backpressure: nothing is recorded before there is room
        fresh_id = new_run_id()
        self._starting.add(fresh_id)  # the due index lists it as running: not a recovery
        try:
            raw_args, raw_kwargs = encode_start(workflow, args, kwargs, idempotency_key)
            run_id, started = await self._engine.prepare_start(
                fresh_id, workflow.name, raw_args, raw_kwargs, idempotency_key=idempotency_key
            )
        except BaseException:
            self._slots.release()
            self._starting.discard(fresh_id)
            raise
        if started is None or run_id in self._actors:  # the key names a run that started
            self._starting.discard(fresh_id)
            if run_id in self._actors:
                self._slots.release()
            else:
                self._spawn(run_id, fresh=False, slot=True)
            return run_id
        try:
            await self._start_here(started)
        finally:
            self._starting.discard(fresh_id)
        return run_id

    async def _start_here(self, started: WorkflowStarted) -> bool:
        """Spawn the run's actor (the caller took its slot) to write the run's start with
        the workflow's first events, one append; wait until it did. Whether this wrote it
        (False: another writer started the run first)."""
        opening = Opening(started)
        self._spawn(started.run_id, fresh=True, slot=True, opening=opening)
        return await self._engine.opened(opening)

    async def result(self, run_id: str, timeout: float | None = None) -> Any:  # noqa: ASYNC109
        """The value of the completed run, waiting for it to finish.

        A run that ended ``continued_as_new`` is followed to its successors: the value
        (or error) is the chain's last run's.

        Raises:
            WorkflowFailedError: the run failed (its recorded error type and message).
            WorkflowCancelledError: the run was cancelled.
            RunNotFoundError: no such run.
            TimeoutError: ``timeout`` seconds passed first.
            StorageError: the run's actor hit a permanent storage error.
        """
        with anyio.fail_after(timeout) if timeout is not None else nullcontext():
            while True:
                error = self._errors.get(run_id)
                if error is not None:
                    raise error
                ended = self._recent.get(run_id)
                if ended is not None:  # it ended here: its state says how, no reads
                    if ended.continued_to is not None:
                        run_id = ended.continued_to
                        continue
                    return outcome_of_state(ended)
                actor = self._actors.get(run_id)
                if actor is not None:  # active here: wait until it rests, look again
                    await actor.rested()
                    continue
                finished = self._finished.setdefault(run_id, anyio.Event())
                run = await self.storage.get_run(run_id)
                if run is None:
                    raise RunNotFoundError(run_id)
                if run.status.is_finished:
                    self._finished.pop(run_id, None)
                    if run.continued_to_run_id is not None:  # its successor exists already
                        run_id = run.continued_to_run_id
                        continue
                    return await outcome_of(self.storage, run)
                # Woken when an actor here finishes it; otherwise (another process), looked
                # at again every poll interval.
                with anyio.move_on_after(self.poll_interval):
                    await finished.wait()

    async def resume_hook(self, token: str, payload: Any = None) -> WorkflowRun:
        """Deliver ``payload`` to the hook behind ``token`` through the run's actor.

        Returns the run's record once the payload is recorded (the run goes on by itself).
        Raises what ``pyworkflow.resume_hook`` raises for a bad token or payload.
        """
        self._check_open()
        run_id, derive = await self._engine.hook_request(token, payload)
        await self._command(run_id, derive)
        run = await self.storage.get_run(run_id)
        assert run is not None
        return run

    async def cancel(self, run_id: str, reason: str | None = None) -> bool:
        """Request the run's cancellation; False if it had already finished.

        ``CancellationError`` is raised inside the workflow at its next checkpoint; a
        suspended run is woken to run its cleanup.
        """
        self._check_open()
        request = CancelRequest(reason)
        await self._command(run_id, request)
        return not request.finished

    async def resume(self, run_id: str) -> None:
        """Wake the run now, as a due timer would (a no-op for a run with nothing due)."""
        self._check_open()
        if await self.storage.get_run(run_id) is None:
            raise RunNotFoundError(run_id)
        await self._wake(run_id)

    # -- the module-level API, routed here (it waits until the run rests) ------------------
    async def start_and_rest(
        self,
        wf: Any,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        idempotency_key: str | None,
    ) -> str:
        run_id = await self.start(wf, *args, idempotency_key=idempotency_key, **kwargs)
        await self._rest(run_id)
        return run_id

    async def resume_and_rest(self, run_id: str) -> Any:
        await self.resume(run_id)
        actor = await self._rest(run_id)
        if actor is not None and actor.error is not None:
            raise actor.error
        return actor.result if actor is not None else None

    async def cancel_and_rest(self, run_id: str, reason: str | None) -> bool:
        requested = await self.cancel(run_id, reason)
        await self._rest(run_id)
        return requested

    async def resume_hook_and_rest(self, token: str, payload: Any) -> WorkflowRun:
        run = await self.resume_hook(token, payload)
        await self._rest(run.run_id)
        return await self.storage.get_run(run.run_id) or run

    async def host_started_and_rest(self, run_id: str) -> None:
        """Execute a run whose ``workflow_started`` the caller wrote (``trigger_schedule``)
        and wait until it rests."""
        self._check_open()
        await self.launch(run_id)
        await self._rest(run_id)

    # -- schedules (a Launcher for the ScheduleFirer) -------------------------------------
    async def launch(self, run_id: str) -> None:
        """Execute a run that a schedule just started (fresh: nothing to recover)."""
        self._engine.begun.add(run_id)
        self._continue(run_id)

    async def request_cancel(self, run_id: str, reason: str) -> None:
        """Post a cancellation to the run's actor without waiting for it to be written
        (the timer service must not wait on a run's activation)."""
        if not self._closing and self._owns(run_id):
            self._post(run_id, Command(CancelRequest(reason)))

    # -- actors -------------------------------------------------------------------------
    async def _command(self, run_id: str, derive: Any) -> None:
        """Have the run's owner write a command: the live one at once (the caller leads or
        joins its group commit), else the next activation (spawned if need be)."""
        actor = self._actors.get(run_id)
        if actor is None and await self.storage.get_run(run_id) is None:
            raise RunNotFoundError(run_id)
        command = Command(derive)
        owner = actor.live_owner if actor is not None else None
        if owner is None:
            self._post(run_id, command)
        else:
            try:
                await owner.ask(command.derive)
            except SuspendSignal:  # that activation ended meanwhile: the next one
                self._post(run_id, command)
            except OwnerStoppedSignal as stopped:
                command.answer(stopped)
            else:
                command.answer(None)
        await command.wait()

    def _post(self, run_id: str, command: Command) -> None:
        """Keep a command in the run's mailbox (spawning its actor)."""
        actor = self._actors.get(run_id) or self._spawn(run_id, fresh=False)
        actor.post(command)

    def _owns(self, run_id: str) -> bool:
        """Whether this host executes ``run_id`` (a worker: the run's partition is its)."""
        return True

    async def _wake(self, run_id: str, *, fresh: bool = False) -> RunActor:
        """The run's actor, spawned if it has none once an active slot is free (the caller
        waits for it: backpressure)."""
        actor = self._actors.get(run_id)
        if actor is not None:
            return actor
        await self._take_slot()
        actor = self._actors.get(run_id)  # spawned meanwhile by someone else
        if actor is not None:
            self._slots.release()
            return actor
        return self._spawn(run_id, fresh=fresh, slot=True)

    async def _take_slot(self) -> None:
        """One of the ``max_active`` slots, for an actor about to be spawned."""
        try:
            self._slots.acquire_nowait()
        except anyio.WouldBlock:
            await self._slots.acquire()

    async def _rest(self, run_id: str) -> RunActor | None:
        """Wait until the run's actor rests, and its successors' while it continues as new
        (the last actor waited for)."""
        actor = self._actors.get(run_id)
        while actor is not None:
            await actor.rested()
            state = actor.state
            successor = state.continued_to if state is not None else None
            following = self._actors.get(successor) if successor is not None else None
            if following is None:
                break
            actor = following
        return actor

    def _spawn(
        self, run_id: str, *, fresh: bool, slot: bool = False, opening: Opening | None = None
    ) -> RunActor:
        """Start the run's actor task (``slot``: the caller took an active slot for it;
        ``opening``: the run's start, for its first activation to write)."""
        actor = self._actors[run_id] = RunActor(run_id, fresh=fresh, opening=opening)
        self._actor_tasks.start_soon(self._host, actor, slot)
        return actor

    async def _host(self, actor: RunActor, slot: bool) -> None:
        """The actor's task: activations, one at a time, while commands keep coming."""
        run_id = actor.run_id
        try:
            if not slot:
                await self._slots.acquire()
            try:
                while True:
                    await self._activation(actor)
                    actor.fresh = False
                    if not actor.pending:  # nothing more to do: passivate
                        break
            finally:
                self._slots.release()
        finally:
            del self._actors[run_id]
            leftover = actor.drain()
            if leftover and not self._closing:
                # Commands that arrived while the task was ending go to a new one.
                successor = self._spawn(run_id, fresh=False)
                for item in leftover:
                    successor.push(item)
            for _, answer in leftover if self._closing else ():
                answer(ConfigurationError("the Supervisor stopped before this was delivered"))
            actor.rest()
            self._after_rest(actor)

    async def _activation(self, actor: RunActor) -> None:
        """One activation of the actor's run, with its first kept command if any. How it
        ended is kept on the actor; infrastructure errors schedule a retry with backoff."""
        run_id = actor.run_id
        item = actor.take()
        first = item[0] if item else None
        self._errors.pop(run_id, None)  # a new attempt: waiters await its end
        opening, actor.opening = actor.opening, None
        try:
            actor.result, actor.state = await self._engine.activate(
                run_id, fresh=actor.fresh, first=first, inbox=actor, opening=opening
            )
            actor.error = None
        except RunLockedError as exc:
            if opening is not None and run_id not in self._starting:
                # A key's run whose claimer (another process) executes it and has not
                # written its start yet: started elsewhere, as a start delivered twice.
                opening.finish(_started_elsewhere(run_id))
            await self._locked_out(actor, first, exc)
        except RunNotFoundError as exc:  # gone from this host's storage (a worker's, say)
            self.log.warning("run_not_found", run_id=run_id)
            actor.error = exc
        except WorkflowNotRegisteredError as exc:
            self._unhosted.add(run_id)  # left to the processes with its code
            self.log.warning("run_not_hosted", run_id=run_id, error=str(exc))
        except StorageError as exc:
            actor.error = self._errors[run_id] = exc
            self._notify(run_id)
            self._retry_later(run_id)
        except Exception as exc:  # a bug: its waiters hear of it, the supervisor's exit too
            if isinstance(exc, ConflictError) and opening is not None and opening.done:
                # Its start lost to another writer's (a start delivered twice): nothing of
                # this execution was written; the starter hears it from the opening.
                self.log.info("run_started_elsewhere", run_id=run_id)
                return
            self.log.error("actor_crashed", run_id=run_id, error=repr(exc))
            actor.error = self._errors[run_id] = exc
            self._notify(run_id)
            raise
        finally:
            if opening is not None:  # not written (the activation failed first): say why
                ended = OwnerStopped(f"run {run_id!r}: its execution ended before its start")
                opening.finish(actor.error or ended)
            if item is not None:
                item[1](actor.error)

    async def _locked_out(self, actor: RunActor, first: Derive | None, exc: RunLockedError) -> None:
        """The run is executed elsewhere (another process): write its command, if any,
        beside its owner."""
        if first is not None:
            try:
                await self._engine.append_beside(actor.run_id, first)
            except RunLockedError as locked:
                actor.error = locked

    def _after_rest(self, actor: RunActor) -> None:
        state = actor.state
        if state is None:
            return
        if state.continued_to is not None:
            self._continue(state.continued_to)
        now = self.clock.now()
        for run_id in self._engine.tree.handed(state):  # its parent, its cancelled children
            if self._owns(run_id):
                self._schedule(run_id, now)
        if state.finished:
            self._failures.pop(actor.run_id, None)
            self._recent[actor.run_id] = state
            if len(self._recent) > _RECENT:
                self._recent.popitem(last=False)
            self._notify(actor.run_id)
        elif state.status is RunStatus.SUSPENDED:
            self._failures.pop(actor.run_id, None)
            due = state.next_due()
            if state.wake_pending:
                due = self.clock.now()
            self._rested_in_poll.add(actor.run_id)
            if due is not None:
                self._schedule(actor.run_id, due, replace=True)  # what it rested on

    def _continue(self, run_id: str) -> None:
        """Host a run that another run made: the successor a run just continued as, or a
        child it started or waits for (if this host owns it; else, or when closing, it
        stays due, for its owner or the next host)."""
        fresh = run_id in self._engine.begun
        self._engine.begun.discard(run_id)
        if run_id in self._actors or self._closing or not self._owns(run_id):
            return
        self._spawn(run_id, fresh=fresh)

    def _notify(self, run_id: str) -> None:
        """Wake whoever waits in ``result()`` for this run."""
        event = self._finished.pop(run_id, None)
        if event is not None:
            event.set()

    def _retry_later(self, run_id: str) -> None:
        failures = self._failures[run_id] = self._failures.get(run_id, 0) + 1
        delay = min(0.1 * 2 ** (failures - 1), 30.0)
        self.log.error("actor_failed", run_id=run_id, retry_in=delay, failures=failures)
        self._schedule(run_id, self.clock.now() + timedelta(seconds=delay))

    # -- timers ---------------------------------------------------------------------------
    def _schedule(self, run_id: str, due: datetime, *, replace: bool = False) -> None:
        """Wake ``run_id`` at ``due``: the earliest of its entries wins, unless ``replace``
        (the run just rested: its own state says when it is due)."""
        known = self._timer_due.get(run_id)
        if known is not None and known <= due and not replace:
            return
        self._timer_due[run_id] = due
        heapq.heappush(self._timers, (due, run_id))
        if self._sleep is not None and (self._sleep_until is None or due < self._sleep_until):
            self._sleep.cancel()  # the timer service sleeps too long now: wake it

    def _poll_soon(self) -> None:
        """Read the due index at once (e.g. partitions were just assigned to this host)."""
        self._poll_due = True
        if self._sleep is not None:
            self._sleep.cancel()

    async def _timer_service(self) -> None:
        """Wakes runs when due, and fires schedules. Invariant: every suspended run this
        process knows of with a timer has an entry in ``_timers`` (passivation adds it), and
        the storage's due index, read every poll interval, adds those that others made due;
        ``_schedule_due`` is the earliest due time of the schedules read at the last poll or
        firing (schedules made since are read at the next poll)."""
        next_poll = self.clock.now()
        while True:
            now = self.clock.now()
            if now >= next_poll or self._poll_due:
                self._poll_due = False
                await self._poll(now)
                await self._fire_schedules()
                next_poll = now + timedelta(seconds=self.poll_interval)
            elif self._schedule_due is not None and self._schedule_due <= now:
                await self._fire_schedules()
            while self._timers and self._timers[0][0] <= self.clock.now():
                due, run_id = heapq.heappop(self._timers)
                if self._timer_due.get(run_id) != due:
                    continue  # superseded by an earlier entry
                del self._timer_due[run_id]
                if run_id in self._actors or run_id in self._starting or self._closing:
                    continue
                if self._owns(run_id):
                    await self._wake(run_id)
            target = min(next_poll, self._timers[0][0]) if self._timers else next_poll
            if self._schedule_due is not None:
                target = min(target, self._schedule_due)
            with anyio.CancelScope() as self._sleep:
                self._sleep_until = target
                await self.clock.wait_until(target)
            self._sleep = self._sleep_until = None

    async def _poll(self, now: datetime) -> None:
        horizon = now + timedelta(seconds=self.poll_interval)
        self._rested_in_poll.clear()
        try:
            due = await self.storage.due_runs(horizon, limit=_POLL_LIMIT)
        except StorageError as exc:
            self.log.warning("due_runs_failed", error=repr(exc))
            return
        # A run that rested while the index was read has its own, newer timer already.
        skip = self._rested_in_poll | self._unhosted | self._starting | self._engine.begun
        for when, run_id in due:
            if run_id in self._actors or run_id in skip or not self._owns(run_id):
                continue
            self._schedule(run_id, when)

    async def _fire_schedules(self) -> None:
        """Fire the due schedules whose runs this host owns (see ``_scheduling``)."""
        if self._closing:
            return
        try:
            self._schedule_due = await self._firer.tick(self._owns)
        except StorageError as exc:  # looked at again at the next poll
            self.log.warning("schedules_failed", error=repr(exc))
            self._schedule_due = None

    # -- helpers --------------------------------------------------------------------------
    def _check_open(self) -> None:
        if self._tg is None or self._closing:
            msg = "the Supervisor is not running: use it inside `async with Supervisor(...)`"
            raise ConfigurationError(msg)


async def outcome_of(storage: StorageBackend, run: WorkflowRun) -> Any:
    """A finished run's value, or the error it ended with (WorkflowFailedError for a failed
    run, WorkflowCancelledError for a cancelled one)."""
    if run.status is RunStatus.FAILED:
        raise WorkflowFailedError(run.run_id, run.error_type or "?", run.error_message or "")
    if run.status is RunStatus.CANCELLED:
        raise WorkflowCancelledError(run.run_id, run.cancellation_reason)
    events = await storage.read(run.run_id, after=max(run.last_sequence - 1, 0))
    last = events[-1] if events else None
    if not isinstance(last, WorkflowCompleted):
        return run.result
    wf = registry.workflow(run.workflow_name)
    if wf is None:
        return msgspec.json.decode(last.result)
    return wf.codec.decode_result(last.result)


def outcome_of_state(state: RunState) -> Any:
    """``outcome_of`` for a run whose final state is at hand (it ended in this process)."""
    if state.status is RunStatus.FAILED:
        error_type, message = state.error or ("?", "")
        raise WorkflowFailedError(state.run_id, error_type, message)
    if state.status is RunStatus.CANCELLED:
        raise WorkflowCancelledError(state.run_id, state.cancel_reason)
    wf = registry.workflow(state.workflow_name)
    if state.result is None:
        return None
    if wf is None:
        return msgspec.json.decode(state.result)
    return wf.codec.decode_result(state.result)


def _started_elsewhere(run_id: str) -> OwnerStopped:
    """What an opening ends with when another writer starts the run (``Engine.opened``
    answers False: the run is someone else's to execute)."""
    cause = ConflictError(f"run {run_id!r} is being started by another process")
    stopped = OwnerStopped(str(cause))
    stopped.__cause__ = cause
    return stopped
