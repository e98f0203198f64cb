"""The context of the run being executed: the only state held in a ContextVar.

A :class:`RunContext` lives for one execution of a durable workflow (from the top until it
completes, fails or suspends). It hands out checkpoint identities in call order, passes the
workflow's requests to the run's owner (``_owner.py``, the only writer of the log), and knows
whether the run must stop at its next checkpoint (cancellation, suspension,
non-determinism). Workflow code never touches storage.

Write-ahead rule: an event is durable before anything that depends on it happens outside
the process. ``step_started`` is written before the step's body runs, ``hook_created``
before ``on_created`` sees the token, and the run's suspension or end before the call
returns. A step's *outcome* is queued without waiting: the owner's next group commit writes
it, together with whatever else is ready (on the sequential path, the next step's
``step_started``: one write per step), and never later than anything queued after it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Generator, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar, Token
from datetime import datetime
from typing import TYPE_CHECKING, Any, NoReturn, Protocol

import anyio

from .._core._codec import Codec
from .._core._events import Event, WorkflowStarted
from .._core._replay import Checkpoint, Kind, RunState
from .._exceptions import (
    CancellationError,
    ConfigurationError,
    NonDeterminismError,
    WorkflowError,
)
from ._drafts import Derive, Draft
from ._signals import SuspendSignal

if TYPE_CHECKING:
    from .._core._events import Event
    from .._core._records import RunStatus
    from ..storage import StorageBackend
    from ._clock import Clock
    from ._owner import RunOwner

__all__ = [
    "ChildRuntime",
    "RunContext",
    "StepView",
    "TransientContext",
    "current_context",
    "detached",
    "enter_step",
    "is_shielded",
    "restore_run",
    "running",
    "shield_depth",
    "shielded",
    "step_view",
]


class ChildRuntime(Protocol):
    """What the host of a run (the engine) does for child workflows (``_children``);
    workflow code asks, the host does the I/O."""

    storage: StorageBackend
    clock: Clock

    async def start_child(self, started: WorkflowStarted) -> bool:
        """Append the child's start, idempotently; whether this call wrote it."""
        ...

    async def settle_child(self, child_id: str) -> Event | None:
        """Have the child run as the host runs runs; its terminal event if it ended."""
        ...

    async def cancel_child(self, child_id: str, reason: str | None) -> None:
        """Request the child's cancellation (a no-op once it ended)."""
        ...

    async def child_status(self, child_id: str) -> RunStatus:
        """The child's status now (a live read)."""
        ...


class TransientContext:
    """Marks a transient (``durable=False``) run: steps and sleeps run with no log."""

    __slots__ = ("clock", "log", "step_context")

    def __init__(self, clock: Clock, log: Any) -> None:
        self.clock = clock
        self.log = log
        self.step_context: Any = None
        """The StepContext set by ``set_step_context`` (not recorded: no log)."""


class RunContext:
    """One execution of a durable run."""

    def __init__(
        self,
        *,
        owner: RunOwner,
        clock: Clock,
        log: Any,
        prelude: Derive | None = None,
        children: ChildRuntime | None = None,
    ) -> None:
        self.owner = owner
        self.children = children
        """The host's side of child workflows (None: a host that has none, e.g. a test's)."""
        self.run_id = owner.run_id
        self.clock = clock
        self.log = log
        self.debug: bool = log.enabled(10)
        """Whether debug lines are written (a step's line is skipped without a call)."""
        self.suspending = False
        self.fatal: WorkflowError | None = None
        self.blocked: list[int] = []
        self.step_context: Any = None
        """The StepContext last set by this execution (replay sets it again, in order)."""
        # Written with the first request of this execution (e.g. workflow_resumed), so an
        # execution that stops before writing anything (non-determinism) leaves no trace.
        self._prelude = prelude
        self._counter = 0
        self._inflight = 0
        self._idle: anyio.Event | None = None

    @property
    def state(self) -> RunState:
        """The run's folded state (the owner's: it may be replaced after a failed write)."""
        return self.owner.state

    # -- identity -------------------------------------------------------------------
    def next_checkpoint(self, kind: Kind, name: str) -> tuple[int, Checkpoint | None]:
        """The next checkpoint's index and its recorded outcome, checked against the log."""
        if self.fatal is not None:
            raise self.fatal
        self._counter += 1
        index = self._counter
        recorded = self.owner.state.checkpoints.get(index)
        if recorded is not None and (recorded.kind is not kind or recorded.name != name):
            msg = (
                f"workflow {self.state.workflow_name!r} run {self.run_id!r} is not "
                f"deterministic: checkpoint {index} was recorded as {recorded.kind} "
                f"{recorded.name!r} but the code now calls {kind} {name!r}. Workflow code "
                "must call the same steps, sleeps and hooks in the same order on every "
                "replay; keep old code paths for runs started before the change."
            )
            self.fatal = NonDeterminismError(msg)
            raise self.fatal
        return index, recorded

    def resolve(self, codec: Codec) -> None:
        """Resolve a step's annotations at its first call; one that can't be resolved is a
        code error, like non-determinism: the execution stops and nothing is written."""
        try:
            codec.resolve()
        except ConfigurationError as exc:
            self.fatal = exc
            raise

    def raise_if_fatal(self) -> None:
        if self.fatal is not None:
            raise self.fatal

    # -- stopping points --------------------------------------------------------------
    def check_cancelled(self, state: RunState | None = None, *, shield: bool | None = None) -> None:
        """Raise CancellationError if a cancellation was requested and the asking task is
        not inside ``shield()`` (``shield`` given: as captured when the request was made)."""
        state = state or self.state
        if state.cancel_requested and not (is_shielded() if shield is None else shield):
            raise CancellationError(state.cancel_reason)

    def now(self) -> datetime:
        return self.clock.now()

    async def suspend(self, index: int) -> NoReturn:
        """Stop the run at checkpoint ``index`` until its timer or hook resolves.

        Steps already started in concurrent branches (their ``step_started`` requested,
        written or not) finish and have their outcomes queued first; no new step starts
        once a suspension is under way.
        """
        self.blocked.append(index)
        self.suspending = True
        await self.idle()
        raise SuspendSignal

    async def idle(self) -> None:
        """Wait until no step of this execution is in flight."""
        while self._inflight:
            self._idle = self._idle or anyio.Event()
            await self._idle.wait()

    def step_started(self) -> None:
        """A step is about to request its start: a suspension waits until ``step_done``."""
        self._inflight += 1

    def step_done(self) -> None:
        self._inflight -= 1
        if not self._inflight and self._idle is not None:
            self._idle.set()
            self._idle = None

    # -- asking the owner ---------------------------------------------------------------
    def opening(self, index: int, cls: type[Any], fields: dict[str, Any], shield: bool) -> Derive:
        """The request that records checkpoint ``index``'s first event (``cls(**fields)``):
        nothing once the checkpoint is in the log; a cancellation folded in since the call
        (and not shielded then) is raised instead."""

        def derive(state: RunState) -> Sequence[Draft]:
            if index in state.checkpoints:
                return ()
            self.check_cancelled(state, shield=shield)
            return (Draft(cls, fields),)

        return derive

    def ask(self, derive: Derive) -> Awaitable[None]:
        """Have the owner write what ``derive`` returns (after this execution's prelude):
        await the result. (The owner's own coroutine: one frame less on every step.)"""
        if self.fatal is not None:
            raise self.fatal
        return self.owner.ask(derive if self._prelude is None else self._with_prelude(derive))

    def record(self, derive: Derive) -> Awaitable[None]:
        """Record a step's outcome (called while the step still counts as in flight): await
        the result.

        With other steps in flight (concurrent branches) it is written now, with whatever
        else is ready, so that it is never held back while a sibling still runs. Else it
        is queued and rides with the run's next request: on the sequential path the next
        step's start (one write per step), at the latest the run's rest or end (and the
        awaitable is done at once: no coroutine on the sequential path)."""
        self.owner.submit(derive if self._prelude is None else self._with_prelude(derive))
        if self._inflight > 1:
            return self.owner.flush()
        return _READY

    def _with_prelude(self, derive: Derive) -> Derive:
        prelude = self._prelude
        if prelude is None:
            return derive
        self._prelude = None

        def with_prelude(state: RunState) -> Sequence[Draft | Event]:
            return [*prelude(state), *derive(state)]

        return with_prelude


class _Ready:
    """An awaitable that is done at once."""

    __slots__ = ()

    def __await__(self) -> Generator[Any, None, None]:
        return
        yield


_READY = _Ready()


_current: ContextVar[RunContext | TransientContext | StepView | None] = ContextVar(
    "pyworkflow_current_run", default=None
)
"""What the calling task runs: a run's code (its context), a step's body (the step's view:
the run is hidden there), or neither. One variable, so that entering a step's body is one
``set`` (a context variable's set copies the task's context: ~0.2 µs each)."""


_shield_depth: ContextVar[int] = ContextVar("pyworkflow_shield_depth", default=0)


def is_shielded() -> bool:
    """Whether the calling task is inside ``shield()`` (a task, not the whole run)."""
    return _shield_depth.get() > 0


shield_depth: Callable[[], int] = _shield_depth.get
"""How many ``shield()`` blocks the calling task is in (> 0: shielded), without a call
of ours around the context variable's ``get`` (a step asks at every call)."""


@contextmanager
def shielded() -> Iterator[None]:
    """Mark the calling task (and tasks it starts inside the block) as shielded."""
    token = _shield_depth.set(_shield_depth.get() + 1)
    try:
        yield
    finally:
        _shield_depth.reset(token)


run_or_step: Callable[[], RunContext | TransientContext | StepView | None] = _current.get
"""What the calling task runs (see ``_current``): the context variable's own ``get``, for
a step's call, which asks at every call (a wrapper would double its cost)."""


def current_context() -> RunContext | TransientContext | None:
    """The run being executed by this task, if any (None inside a step's body)."""
    current = _current.get()
    return None if isinstance(current, StepView) else current


class StepView:
    """What a step's body sees of its run: a snapshot of the step context, read-only, and
    what ``start_child_workflow`` needs there (the run, the step, the host)."""

    __slots__ = ("_run", "context", "started", "step_id")

    def __init__(
        self,
        context: Any,
        run: RunContext | None = None,
        step_id: str | None = None,
    ) -> None:
        self.context = context
        self._run = run
        self.step_id = step_id
        self.started = 0
        """Children started by this attempt of the step so far (their call order)."""

    # Read from the run when asked (rarely: a child started in a step), not at every step.
    @property
    def run_id(self) -> str | None:
        return self._run.run_id if self._run is not None else None

    @property
    def depth(self) -> int:
        return self._run.state.nesting_depth if self._run is not None else 0

    @property
    def children(self) -> ChildRuntime | None:
        return self._run.children if self._run is not None else None


_Hidden = Token[RunContext | TransientContext | StepView | None]


def step_view() -> StepView | None:
    """The step whose body the calling task runs, if any."""
    current = _current.get()
    return current if isinstance(current, StepView) else None


def enter_step(ctx: RunContext | TransientContext, step_id: str | None = None) -> _Hidden:
    """Hide ``ctx``'s run while a step's body runs (it is ordinary code there), leaving it
    the run's step context as it is now (and, for step ``step_id`` of a durable run, what
    starting a child there needs). The caller knows its run: nothing to look up on every
    step's path."""
    durable = ctx if isinstance(ctx, RunContext) else None
    return _current.set(StepView(ctx.step_context, durable, step_id))


def restore_run(token: _Hidden) -> None:
    _current.reset(token)


@contextmanager
def detached() -> Iterator[None]:
    """Run another run from inside this one's code (a parent hosting its child): none of
    this run's context (the current run, a step's view, ``shield()``) leaks into it."""
    token = _current.set(None)
    shield = _shield_depth.set(0)
    try:
        yield
    finally:
        _shield_depth.reset(shield)
        restore_run(token)


class running:
    """Make ``ctx`` the current run for the code inside the block. (A class, not a
    generator: every activation enters one.)"""

    __slots__ = ("_ctx", "_token")

    def __init__(self, ctx: RunContext | TransientContext | None) -> None:
        self._ctx = ctx

    def __enter__(self) -> None:
        self._token = _current.set(self._ctx)

    def __exit__(self, *exc: object) -> None:
        _current.reset(self._token)
