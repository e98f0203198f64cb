"""FaultyStorage: a storage backend wrapper whose appends yield, pause and fail on cue.

Concurrency bugs hide on the in-memory backend, whose ``append`` never awaits. Wrapped in
:class:`FaultyStorage`, any backend's ``append`` becomes a real scheduling point (``delay``
checkpoints before it writes), can be held at a :class:`Gate` until the test releases it (to
force one interleaving instead of hoping for it), and can fail on a programmed schedule:

* ``fail_appends(2, 5)``: appends number 2 and 5 (counted from 1 over this wrapper's life,
  every call counts, including failed and conflicting ones) raise before anything is written;
* ``fail_appends(3, when="after")``: append 3 is written, then raises (an uncertain write: the
  caller can't tell whether it landed);
* ``fail_when(step_started("ship"))``: the next append holding that event fails;
* ``fail_reads(1)``: the first ``read`` fails.

The injected error is ``pyworkflow.TransientStorageError`` when the package exports it, else
``pyworkflow.StorageError``; pass ``error=`` to choose. Every append is recorded in
``history`` with what happened to it.

An append, once called, runs to its end even if the calling task is cancelled (``shield=True``,
the default): the file backend's write runs in a worker thread that cancellation can't stop,
and the in-memory backend's append has no await at all.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import Any, Literal

import anyio

import pyworkflow
from pyworkflow import (
    ConflictError,
    Event,
    EventType,
    HookRecord,
    RunPage,
    RunStatus,
    StepRecord,
    WorkflowRun,
)
from pyworkflow.storage import StorageBackend

__all__ = [
    "DEFAULT_ERROR",
    "AppendRecord",
    "FaultyStorage",
    "Gate",
    "Match",
    "When",
    "has",
    "step_started",
]

DEFAULT_ERROR: type[Exception] = getattr(
    pyworkflow, "TransientStorageError", pyworkflow.StorageError
)

When = Literal["before", "after"]
Match = Callable[[Sequence[Event]], bool]
"""Selects appends by the events they carry."""


def has(*types: EventType | str) -> Match:
    """Match an append that carries an event of one of ``types``."""
    wanted = {EventType(t) for t in types}
    return lambda events: any(e.type in wanted for e in events)


def step_started(step_name: str) -> Match:
    """Match an append that carries ``step_started`` for the step named ``step_name``."""
    return lambda events: any(
        e.type is EventType.STEP_STARTED and e.data.get("step_name") == step_name for e in events
    )


class Gate:
    """Holds the first append that matches, after its delay and before it writes, until
    :meth:`release`. A gate released before it is reached lets its append straight through.

    A gate never released lets its append go after ``at_most`` seconds of real time (and sets
    ``timed_out``), so that a test whose interleaving cannot happen fails instead of hanging.
    """

    def __init__(self, match: Match, at_most: float = 30.0) -> None:
        self.match = match
        self.at_most = at_most
        self.timed_out = False
        self.reached = anyio.Event()
        """Set when the held append arrives at the gate."""
        self.held: tuple[Event, ...] = ()
        self._released = anyio.Event()

    def release(self) -> None:
        self._released.set()

    @property
    def released(self) -> bool:
        return self._released.is_set()

    async def _hold(self, events: Sequence[Event]) -> None:
        self.held = tuple(events)
        self.reached.set()
        with anyio.move_on_after(self.at_most) as scope:
            await self._released.wait()
        self.timed_out = scope.cancelled_caught


@dataclass(slots=True)
class AppendRecord:
    """One call of ``append`` and what became of it."""

    number: int
    run_id: str
    expected_sequence: int
    types: tuple[str, ...]
    outcome: str = "in flight"
    """``written``, ``conflict``, ``failed before writing``, ``failed after writing``."""


@dataclass(slots=True)
class _Fault:
    when: When
    error: type[Exception]
    match: Match | None = None
    times: int = 1


@dataclass(slots=True)
class _Schedule:
    by_number: dict[int, _Fault] = field(default_factory=dict)
    by_match: list[_Fault] = field(default_factory=list)

    def take(self, number: int, events: Sequence[Event]) -> _Fault | None:
        fault = self.by_number.pop(number, None)
        if fault is not None:
            return fault
        for rule in self.by_match:
            if rule.times > 0 and rule.match is not None and rule.match(events):
                rule.times -= 1
                return rule
        return None


class FaultyStorage:
    """Wraps ``inner`` (any :class:`~pyworkflow.storage.StorageBackend`); see the module
    docstring.

    Args:
        inner: the real backend every call is delegated to.
        delay: checkpoints (``anyio.lowlevel.checkpoint()``) every append awaits before
            it writes.
        read_delay: the same for every ``read``.
        error: the exception class injected failures raise.
        shield: an append runs to its end even if its caller is cancelled meanwhile.
    """

    def __init__(
        self,
        inner: StorageBackend,
        *,
        delay: int = 1,
        read_delay: int = 0,
        error: type[Exception] = DEFAULT_ERROR,
        shield: bool = True,
    ) -> None:
        self.inner = inner
        self.delay = delay
        self.read_delay = read_delay
        self.error = error
        self.shield = shield
        self.appends = 0
        self.reads = 0
        self.history: list[AppendRecord] = []
        self._appends = _Schedule()
        self._read_faults: dict[int, type[Exception]] = {}
        self._gates: list[Gate] = []

    def __repr__(self) -> str:
        return f"FaultyStorage({self.inner!r})"

    def __getattr__(self, name: str) -> Any:
        # Anything beyond the port (base_path, durability, ...) comes from the real backend.
        if name == "inner":
            raise AttributeError(name)
        return getattr(self.inner, name)

    # -- programming it -----------------------------------------------------------------
    def fail_appends(
        self, *numbers: int, when: When = "before", error: type[Exception] | None = None
    ) -> None:
        """Make these appends (1-based, over this wrapper's life) fail ``when``."""
        for number in numbers:
            self._appends.by_number[number] = _Fault(when, error or self.error)

    def fail_when(
        self,
        match: Match,
        *,
        when: When = "before",
        times: int = 1,
        error: type[Exception] | None = None,
    ) -> None:
        """Make the next ``times`` appends that ``match`` fail ``when``."""
        self._appends.by_match.append(_Fault(when, error or self.error, match, times))

    def fail_reads(self, *numbers: int, error: type[Exception] | None = None) -> None:
        """Make these reads (1-based, over this wrapper's life) fail before reading."""
        for number in numbers:
            self._read_faults[number] = error or self.error

    def stop_failing(self) -> None:
        """Drop every failure not injected yet."""
        self._appends = _Schedule()
        self._read_faults.clear()

    def pause(self, match: Match, at_most: float = 30.0) -> Gate:
        """Hold the next append that ``match``es at a gate (call inside the event loop)."""
        gate = Gate(match, at_most)
        self._gates.append(gate)
        return gate

    def written(self) -> list[AppendRecord]:
        return [r for r in self.history if r.outcome == "written"]

    # -- the port -----------------------------------------------------------------------
    async def append(self, run_id: str, events: Sequence[Event], *, expected_sequence: int) -> None:
        self.appends += 1
        record = AppendRecord(
            self.appends, run_id, expected_sequence, tuple(e.type.value for e in events)
        )
        self.history.append(record)
        fault = self._appends.take(record.number, events)
        gate = next((g for g in self._gates if g.match(events)), None)
        if gate is not None:
            self._gates.remove(gate)
        with anyio.CancelScope(shield=self.shield):
            for _ in range(self.delay):
                await anyio.lowlevel.checkpoint()
            if gate is not None:
                await gate._hold(events)
            if fault is not None and fault.when == "before":
                record.outcome = "failed before writing"
                raise fault.error(self._message(record))
            try:
                await self.inner.append(run_id, events, expected_sequence=expected_sequence)
            except ConflictError:
                record.outcome = "conflict"
                raise
            if fault is not None:
                record.outcome = "failed after writing"
                raise fault.error(self._message(record))
            record.outcome = "written"

    async def read(self, run_id: str, *, after: int = 0) -> list[Event]:
        self.reads += 1
        error = self._read_faults.pop(self.reads, None)
        for _ in range(self.read_delay):
            await anyio.lowlevel.checkpoint()
        if error is not None:
            raise error(f"injected storage failure at read #{self.reads} of run {run_id!r}")
        return await self.inner.read(run_id, after=after)

    async def get_run(self, run_id: str) -> WorkflowRun | None:
        return await self.inner.get_run(run_id)

    async def list_runs(
        self,
        *,
        status: RunStatus | None = None,
        workflow_name: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> RunPage:
        return await self.inner.list_runs(
            status=status, workflow_name=workflow_name, limit=limit, cursor=cursor
        )

    async def get_step(self, step_id: str) -> StepRecord | None:
        return await self.inner.get_step(step_id)

    async def get_hook(self, hook_id: str) -> HookRecord | None:
        return await self.inner.get_hook(hook_id)

    async def list_hooks(self, run_id: str | None = None) -> list[HookRecord]:
        return await self.inner.list_hooks(run_id)

    async def claim_idempotency_key(self, key: str, run_id: str) -> str:
        return await self.inner.claim_idempotency_key(key, run_id)

    def lock_run(self, run_id: str) -> AbstractAsyncContextManager[None]:
        return self.inner.lock_run(run_id)

    async def aclose(self) -> None:
        await self.inner.aclose()

    @staticmethod
    def _message(record: AppendRecord) -> str:
        return (
            f"injected storage failure at append #{record.number} of run {record.run_id!r} "
            f"({', '.join(record.types)}), {record.outcome}"
        )
