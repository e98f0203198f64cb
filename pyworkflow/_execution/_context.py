"""The context of the run being executed: the only state held in a ContextVar.

A :class:`RunContext` lives for one execution of a durable workflow (from the top until it
completes, fails or suspends). It hands out checkpoint identities in call order, appends
events with optimistic concurrency, and knows whether the run must stop at its next
checkpoint (cancellation, suspension, non-determinism).

Write-ahead rule: an event is durable before anything that depends on it happens outside
the process. ``step_started`` is appended before the step's body runs, ``hook_created``
before ``on_created`` sees the token, and the run's suspension or end is appended before
the call returns. A step's *outcome* (``step_completed``, a ``step_failed`` with no timer)
is deferred: it is written together with the run's next append (usually the next step's
``step_started``), which halves the writes per step. A crash in that window re-runs the step,
exactly as a crash in the middle of it would (at-least-once for the step in flight).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar, Token
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, NoReturn

import anyio

from .._core._events import CancellationRequested, Event, HookReceived
from .._core._replay import Checkpoint, Kind, RunState
from .._exceptions import (
    CancellationError,
    ConflictError,
    NonDeterminismError,
    RunLockedError,
    WorkflowError,
)
from ._signals import SuspendSignal

if TYPE_CHECKING:
    from ..storage import StorageBackend
    from ._clock import Clock

__all__ = [
    "Draft",
    "RunContext",
    "TransientContext",
    "current_context",
    "hide_run",
    "restore_run",
    "running",
]

# Events other writers may append while a run executes: they wake or stop it.
_EXTERNAL = (CancellationRequested, HookReceived)


@dataclass(slots=True, frozen=True)
class Draft:
    """An event to append, before it gets its run id, sequence and timestamp."""

    cls: type[Any]
    fields: dict[str, Any]


class TransientContext:
    """Marks a transient (``durable=False``) run: steps and sleeps run with no log."""

    __slots__ = ("clock", "log")

    def __init__(self, clock: Clock, log: Any) -> None:
        self.clock = clock
        self.log = log


class RunContext:
    """One execution of a durable run."""

    def __init__(
        self,
        *,
        state: RunState,
        storage: StorageBackend,
        clock: Clock,
        log: Any,
        prelude: Sequence[Draft] = (),
    ) -> None:
        self.run_id = state.run_id
        self.state = state
        self.storage = storage
        self.clock = clock
        self.log = log
        self.shield_depth = 0
        self.suspending = False
        self.fatal: WorkflowError | None = None
        self.blocked: list[int] = []
        self.woken = False
        # Written with the first append of this execution (e.g. workflow_resumed), so an
        # execution that stops before writing anything (non-determinism) leaves no trace.
        self._prelude = list(prelude)
        self._deferred: list[Draft] = []
        """An external event (hook payload, cancellation) was folded in during execution."""
        self._counter = 0
        self._lock = _Mutex()
        self._inflight = 0
        self._idle: anyio.Event | None = None

    # -- identity -------------------------------------------------------------------
    def next_checkpoint(self, kind: Kind, name: str) -> tuple[int, Checkpoint | None]:
        """The next checkpoint's index and its recorded outcome, checked against the log."""
        self.raise_if_fatal()
        self._counter += 1
        index = self._counter
        recorded = self.state.checkpoints.get(index)
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

    def raise_if_fatal(self) -> None:
        if self.fatal is not None:
            raise self.fatal

    # -- stopping points --------------------------------------------------------------
    def check_cancelled(self) -> None:
        """Raise CancellationError if a cancellation was requested and we are not shielded."""
        if self.state.cancel_requested and self.shield_depth == 0:
            raise CancellationError(self.state.cancel_reason)

    def now(self) -> datetime:
        return self.clock.now()

    async def suspend(self, index: int) -> NoReturn:
        """Stop the run at checkpoint ``index`` until its timer or hook resolves.

        Steps already running in concurrent branches finish and record first; no new step
        starts once a suspension is under way.
        """
        self.blocked.append(index)
        self.suspending = True
        while self._inflight:
            self._idle = self._idle or anyio.Event()
            await self._idle.wait()
        raise SuspendSignal

    def step_started(self) -> None:
        """A step's body is about to run: a suspension waits until ``step_done``."""
        self._inflight += 1

    def step_done(self) -> None:
        self._inflight -= 1
        if not self._inflight and self._idle is not None:
            self._idle.set()
            self._idle = None

    # -- writing ------------------------------------------------------------------------
    def defer(self, draft: Draft) -> None:
        """Write a step's outcome with the next append (see the write-ahead rule above)."""
        self._deferred.append(draft)

    async def append(self, *drafts: Draft, recheck: Callable[[], None] | None = None) -> None:
        """Append events (after any prelude and deferred outcomes), folding in what other
        writers appended meanwhile.

        Only cancellations and hook payloads may come from elsewhere; anything else means
        two executors ran the same run, and the run stops with ConflictError. When such
        events were folded in, ``recheck`` runs before the append is retried: it may raise
        (e.g. CancellationError) so that nothing starts after a cancellation was recorded.
        """
        async with self._lock:
            self.raise_if_fatal()
            while True:
                batch = (*self._prelude, *self._deferred, *drafts)
                seq = self.state.last_sequence
                ts = self.clock.now()
                events = [
                    d.cls(run_id=self.run_id, sequence=seq + i, timestamp=ts, **d.fields)
                    for i, d in enumerate(batch, start=1)
                ]
                try:
                    await self.storage.append(self.run_id, events, expected_sequence=seq)
                except RunLockedError:
                    raise
                except ConflictError:
                    await self._absorb(seq)
                    if recheck is not None:
                        recheck()
                    continue
                self._prelude.clear()
                self._deferred.clear()
                for event in events:
                    self.state.apply(event)
                return

    async def _absorb(self, seq: int) -> None:
        newer: Sequence[Event] = await self.storage.read(self.run_id, after=seq)
        if not newer:
            raise ConflictError(f"run {self.run_id!r}: append conflict with no newer events")
        for event in newer:
            if not isinstance(event, _EXTERNAL):
                msg = (
                    f"run {self.run_id!r} was advanced by another executor "
                    f"({event.type.value!r} at sequence {event.sequence}); this execution stops"
                )
                self.fatal = ConflictError(msg)
                raise self.fatal
            self.state.apply(event)
            self.woken = True
            self.log.info("external_event", event_type=event.type.value, seq=event.sequence)


_current: ContextVar[RunContext | TransientContext | None] = ContextVar(
    "pyworkflow_current_run", default=None
)


def current_context() -> RunContext | TransientContext | None:
    """The run being executed by this task, if any (None inside a step's body)."""
    return _current.get()


class _Mutex:
    """A lock with no scheduling point when free (appends are serialized per execution,
    and the uncontended case is the hot path of every step)."""

    __slots__ = ("_held", "_waiters")

    def __init__(self) -> None:
        self._held = False
        self._waiters: deque[anyio.Event] = deque()

    async def __aenter__(self) -> None:
        while self._held:
            event = anyio.Event()
            self._waiters.append(event)
            try:
                await event.wait()
            except BaseException:
                if event in self._waiters:
                    self._waiters.remove(event)
                elif self._waiters and not self._held:
                    self._waiters.popleft().set()  # pass on the wake-up we were given
                raise
        self._held = True

    async def __aexit__(self, *exc_info: object) -> None:
        self._held = False
        if self._waiters:
            self._waiters.popleft().set()


def hide_run() -> Token[RunContext | TransientContext | None]:
    """Hide the current run while a step's body runs (it is ordinary code there)."""
    return _current.set(None)


def restore_run(token: Token[RunContext | TransientContext | None]) -> None:
    _current.reset(token)


@contextmanager
def running(ctx: RunContext | TransientContext | None) -> Iterator[None]:
    """Make ``ctx`` the current run for the code inside the block."""
    token = _current.set(ctx)
    try:
        yield
    finally:
        _current.reset(token)


