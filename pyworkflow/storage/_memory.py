"""InMemoryStorageBackend: dicts in one process; fastest, for tests and development."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from datetime import datetime

from .._core._events import Event, HookCreated, HookExpired, HookReceived, WorkflowStarted
from .._core._projection import DUE_EVENTS, due_at, project
from .._core._records import HookRecord, RunPage, RunStatus, StepRecord, WorkflowRun
from .._core._schedule import Schedule
from ._children import children_of
from ._due import DueIndex
from ._held import HeldRuns
from ._paging import page_runs
from ._port import check_after, check_append, check_due_query, check_schedule_write

__all__ = ["InMemoryStorageBackend"]


# Appends with these are projected at once: they are checked against the records (a log
# starts with workflow_started, only once; hook events need their hook). Step events, and a
# new log's workflow_started with what follows it but these, are projected when something
# reads a record, which keeps the per-step append (and the start) cheap.
_EAGER = frozenset({WorkflowStarted, HookCreated, HookReceived, HookExpired})
# Appends with these may move the run in the due index: due_runs projects them first.
_DUE = frozenset(DUE_EVENTS)
_NOTABLE = _EAGER | _DUE  # one test on the hot path (steps are neither)


class InMemoryStorageBackend:
    """Keeps every log and record in memory; nothing survives the process.

    All mutations happen under one lock with no await inside, so each append is atomic
    for tasks and threads alike. Records are the projection of the whole log whenever they
    are read: runs whose log grew by step events only are projected on that read. The due
    index (``due_runs``) is a heap fed by each projection; an append that may move a run in
    it (a status change) marks the run, and ``due_runs`` projects the marked runs first.
    """

    def __init__(self) -> None:
        self._mutex = threading.Lock()
        self._events: dict[str, list[Event]] = {}
        self._runs: dict[str, WorkflowRun] = {}
        self._steps: dict[str, StepRecord] = {}
        self._hooks: dict[str, HookRecord] = {}
        self._keys: dict[str, str] = {}
        self._schedules: dict[str, Schedule] = {}
        self._held = HeldRuns()
        self._dirty: set[str] = set()
        self._due = DueIndex()
        self._due_dirty: set[str] = set()
        """Runs with an unprojected event that may change their due time."""

    async def append(self, run_id: str, events: Sequence[Event], *, expected_sequence: int) -> None:
        if not events:
            return
        with self._mutex:
            log = self._events.get(run_id)
            check_append(run_id, events, expected_sequence, len(log) if log else 0)
            if log is not None and _NOTABLE.isdisjoint(map(type, events)):
                log.extend(events)
                self._dirty.add(run_id)
            elif (
                log is None
                and type(events[0]) is WorkflowStarted
                and _EAGER.isdisjoint(map(type, events[1:]))
            ):
                # A new run's start (with its first step's or its end's events, written by
                # the run's first commit) is all it takes to be valid: projected when read.
                self._events[run_id] = list(events)
                self._dirty.add(run_id)
                self._due_dirty.add(run_id)
            elif log is None or not _EAGER.isdisjoint(map(type, events)):
                self._settle(run_id, events)
            else:
                log.extend(events)
                self._dirty.add(run_id)
                self._due_dirty.add(run_id)

    def _settle(self, run_id: str, new: Sequence[Event] = ()) -> None:
        """Project the run's unprojected events (and ``new`` ones, appended if valid)."""
        run = self._runs.get(run_id)
        log = self._events.setdefault(run_id, [])
        pending = log[run.last_sequence if run else 0 :]
        change = project(run, [*pending, *new], self._steps, self._hooks)
        log.extend(new)
        self._runs[run_id] = change.run
        self._steps.update(change.steps)
        self._hooks.update(change.hooks)
        self._due.set(run_id, due_at(change.run))
        self._dirty.discard(run_id)
        self._due_dirty.discard(run_id)

    def _settle_all(self) -> None:
        for run_id in list(self._dirty):
            self._settle(run_id)

    async def read(self, run_id: str, *, after: int = 0) -> list[Event]:
        check_after(after)
        log = self._events.get(run_id)
        if not log:
            return []
        return log[after:] if after > 0 else list(log)

    async def get_run(self, run_id: str) -> WorkflowRun | None:
        with self._mutex:
            if run_id in self._dirty:
                self._settle(run_id)
            return self._runs.get(run_id)

    async def list_runs(
        self,
        *,
        status: RunStatus | None = None,
        workflow_name: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> RunPage:
        with self._mutex:
            self._settle_all()
            runs = list(self._runs.values())
        return page_runs(
            runs, status=status, workflow_name=workflow_name, limit=limit, cursor=cursor
        )

    async def get_step(self, step_id: str) -> StepRecord | None:
        with self._mutex:
            self._settle_all()
            return self._steps.get(step_id)

    async def get_hook(self, hook_id: str) -> HookRecord | None:
        return self._hooks.get(hook_id)  # hook events are projected at once

    async def list_hooks(self, run_id: str | None = None) -> list[HookRecord]:
        with self._mutex:
            hooks = list(self._hooks.values())  # hook events are projected at once
        return [h for h in hooks if run_id is None or h.run_id == run_id]

    async def get_children(self, run_id: str) -> list[WorkflowRun]:
        """The records of the child runs that ``run_id`` started with
        ``start_child_workflow`` in its workflow code, in the order it started them
        (``storage._children``)."""
        return await children_of(self, run_id)

    async def due_runs(self, until: datetime, *, limit: int = 1000) -> list[tuple[datetime, str]]:
        check_due_query(until, limit)
        with self._mutex:
            for run_id in list(self._due_dirty):
                self._settle(run_id)
            return self._due.upto(until, limit)

    async def claim_idempotency_key(self, key: str, run_id: str) -> str:
        with self._mutex:
            return self._keys.setdefault(key, run_id)

    async def get_schedule(self, schedule_id: str) -> Schedule | None:
        return self._schedules.get(schedule_id)

    async def list_schedules(self) -> list[Schedule]:
        with self._mutex:
            return [self._schedules[k] for k in sorted(self._schedules)]

    async def save_schedule(self, schedule: Schedule) -> None:
        with self._mutex:
            check_schedule_write(schedule, self._schedules.get(schedule.schedule_id))
            self._schedules[schedule.schedule_id] = schedule

    async def delete_schedule(self, schedule_id: str) -> bool:
        with self._mutex:
            return self._schedules.pop(schedule_id, None) is not None

    def lock_run(self, run_id: str) -> AbstractAsyncContextManager[None]:
        return self._held.hold(run_id)

    async def aclose(self) -> None:
        return None
