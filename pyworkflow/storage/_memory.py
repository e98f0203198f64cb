"""InMemoryStorageBackend: dicts in one process; fastest, for tests and development."""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

from .._events import Event
from .._exceptions import RunLockedError
from .._projection import project
from .._records import HookRecord, RunPage, RunStatus, StepRecord, WorkflowRun
from ._paging import page_runs
from ._port import check_after, check_append

__all__ = ["InMemoryStorageBackend"]


class InMemoryStorageBackend:
    """Keeps every log and record in memory; nothing survives the process.

    All mutations happen under one lock with no await inside, so each append is atomic
    for tasks and threads alike.
    """

    def __init__(self) -> None:
        self._mutex = threading.Lock()
        self._events: dict[str, list[Event]] = {}
        self._runs: dict[str, WorkflowRun] = {}
        self._steps: dict[str, StepRecord] = {}
        self._hooks: dict[str, HookRecord] = {}
        self._keys: dict[str, str] = {}
        self._held: set[str] = set()

    async def append(self, run_id: str, events: Sequence[Event], *, expected_sequence: int) -> None:
        if not events:
            return
        with self._mutex:
            log = self._events.get(run_id)
            check_append(run_id, events, expected_sequence, len(log) if log else 0)
            change = project(self._runs.get(run_id), events, self._steps, self._hooks)
            if log is None:
                self._events[run_id] = log = []
            log.extend(events)
            self._runs[run_id] = change.run
            self._steps.update(change.steps)
            self._hooks.update(change.hooks)

    async def read(self, run_id: str, *, after: int = 0) -> list[Event]:
        check_after(after)
        log = self._events.get(run_id)
        if not log:
            return []
        return log[after:] if after > 0 else list(log)

    async def get_run(self, run_id: str) -> WorkflowRun | None:
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
            runs = list(self._runs.values())
        return page_runs(
            runs, status=status, workflow_name=workflow_name, limit=limit, cursor=cursor
        )

    async def get_step(self, step_id: str) -> StepRecord | None:
        return self._steps.get(step_id)

    async def get_hook(self, hook_id: str) -> HookRecord | None:
        return self._hooks.get(hook_id)

    async def list_hooks(self, run_id: str | None = None) -> list[HookRecord]:
        with self._mutex:
            hooks = list(self._hooks.values())
        return [h for h in hooks if run_id is None or h.run_id == run_id]

    async def claim_idempotency_key(self, key: str, run_id: str) -> str:
        with self._mutex:
            return self._keys.setdefault(key, run_id)

    @asynccontextmanager
    async def lock_run(self, run_id: str) -> AsyncIterator[None]:
        with self._mutex:
            if run_id in self._held:
                raise RunLockedError(run_id)
            self._held.add(run_id)
        try:
            yield
        finally:
            with self._mutex:
                self._held.discard(run_id)

    async def aclose(self) -> None:
        return None
