"""The storage port: the one narrow interface every backend implements.

Its heart is :meth:`StorageBackend.append`, an atomic append with optimistic concurrency:
it fails with :class:`~pyworkflow.ConflictError` when the log is no longer at
``expected_sequence`` (another writer appended first). That single rule gives one writer per
run on every backend. Run, step and hook records are projections of the log computed by
``pyworkflow._core._projection.project``; a backend persists them, it never invents them.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from datetime import datetime
from typing import Protocol, runtime_checkable

from .._core._events import Event
from .._core._records import HookRecord, RunPage, RunStatus, StepRecord, WorkflowRun
from .._core._schedule import Schedule
from .._exceptions import ConfigurationError, ConflictError

__all__ = [
    "StorageBackend",
    "check_after",
    "check_append",
    "check_due_query",
    "check_schedule_write",
]


@runtime_checkable
class StorageBackend(Protocol):
    """What the engine needs from a storage backend."""

    async def append(self, run_id: str, events: Sequence[Event], *, expected_sequence: int) -> None:
        """Append ``events`` to the run's log, all or nothing.

        ``expected_sequence`` is the sequence of the last event the writer has seen (0 for a
        new run); the events carry sequences ``expected_sequence + 1 ...``.

        Raises:
            ConflictError: the log has moved past ``expected_sequence``; nothing is written.
            TransientStorageError: a failure that a retry may cure (a broker or disk briefly
                unavailable, a timeout). The append may have landed (an uncertain write):
                re-read the log before retrying; the run's owner does.
            StorageError: any other failure is permanent: retrying the call won't help.
        """
        ...

    async def read(self, run_id: str, *, after: int = 0) -> list[Event]:
        """The run's events with a sequence greater than ``after`` (>= 0), in order."""
        ...

    async def get_run(self, run_id: str) -> WorkflowRun | None:
        """The run's record, or None for an unknown id."""
        ...

    async def list_runs(
        self,
        *,
        status: RunStatus | None = None,
        workflow_name: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> RunPage:
        """Runs, newest first; ``cursor`` is a previous page's ``next_cursor``."""
        ...

    async def get_step(self, step_id: str) -> StepRecord | None:
        """A step checkpoint's latest record."""
        ...

    async def get_hook(self, hook_id: str) -> HookRecord | None:
        """A hook's record, by hook id."""
        ...

    async def list_hooks(self, run_id: str | None = None) -> list[HookRecord]:
        """Hooks of one run (or of all runs), oldest first."""
        ...

    async def get_children(self, run_id: str) -> list[WorkflowRun]:
        """The records of the child runs that ``run_id`` started (``start_child_workflow``
        in its workflow code), in the order it started them; empty for none or an unknown
        run. Every backend answers it from the parent's log (``storage._children``)."""
        ...

    async def claim_idempotency_key(self, key: str, run_id: str) -> str:
        """Claim ``key`` for ``run_id`` atomically; return the run id that holds it."""
        ...

    async def due_runs(self, until: datetime, *, limit: int = 1000) -> list[tuple[datetime, str]]:
        """Unfinished runs that need an executor by ``until``: ``(due, run_id)``, earliest first
        (then by run id), at most ``limit``.

        A projection of the log, exact after every append like ``get_run`` (whoever appended,
        in any process), with the rule of ``pyworkflow._core._projection.due_at``: a running
        run is due since it became running, a suspended run at its timer or at once when a
        hook payload or cancellation arrived, a finished run never. Its cost grows with the
        runs due by ``until``, not with the number of runs. ``due`` is in UTC.

        Raises:
            ConfigurationError: ``until`` is not an aware datetime, or ``limit`` is not a
                positive int.
        """
        ...

    async def get_schedule(self, schedule_id: str) -> Schedule | None:
        """A schedule's record, or None for an unknown id."""
        ...

    async def list_schedules(self) -> list[Schedule]:
        """Every schedule's record, by schedule id."""
        ...

    async def save_schedule(self, schedule: Schedule) -> None:
        """Write a schedule's record if the stored one is at ``schedule.revision - 1``
        (0: none is stored; a compare-and-set, atomic like ``append``).

        Raises:
            ConflictError: the stored revision differs (another writer saved or deleted it
                first; re-read and retry), or a create (revision 1) found the id taken.
        """
        ...

    async def delete_schedule(self, schedule_id: str) -> bool:
        """Remove a schedule's record; False if there was none. Its runs stay."""
        ...

    def lock_run(self, run_id: str) -> AbstractAsyncContextManager[None]:
        """Hold the exclusive right to execute ``run_id`` (released if the holder dies).

        Raises:
            RunLockedError: someone else holds it now.
        """
        ...

    async def aclose(self) -> None:
        """Release resources (connections, file handles)."""
        ...


def check_after(after: int) -> None:
    """Validate ``read(after=...)`` (shared by all backends)."""
    if not isinstance(after, int) or isinstance(after, bool) or after < 0:
        msg = f"read(after={after!r}): pass the sequence of the last event seen, >= 0"
        raise ConfigurationError(msg)


def check_due_query(until: datetime, limit: int) -> None:
    """Validate ``due_runs(until, limit=...)`` (shared by all backends)."""
    if not isinstance(until, datetime) or until.utcoffset() is None:
        msg = (
            f"due_runs(until={until!r}): pass an aware datetime, e.g. datetime.now(UTC) "
            "(a naive one has no time zone to compare due times with)"
        )
        raise ConfigurationError(msg)
    if not isinstance(limit, int) or isinstance(limit, bool) or limit < 1:
        msg = f"due_runs(limit={limit!r}): pass a positive int"
        raise ConfigurationError(msg)


def check_append(
    run_id: str, events: Sequence[Event], expected_sequence: int, current_sequence: int
) -> None:
    """Validate an append against the log's current sequence (shared by all backends)."""
    if expected_sequence != current_sequence:
        msg = (
            f"append to run {run_id!r} expected the log at sequence {expected_sequence}, "
            f"but it is at {current_sequence}: another writer appended first; re-read and retry"
        )
        raise ConflictError(msg)
    for offset, event in enumerate(events, start=1):
        if event.run_id != run_id or event.sequence != expected_sequence + offset:
            msg = (
                f"event {event.type.value!r} (run {event.run_id!r}, sequence {event.sequence}) "
                f"does not follow run {run_id!r} at sequence {expected_sequence + offset - 1}"
            )
            raise ConfigurationError(msg)


def check_schedule_write(schedule: Schedule, stored: Schedule | None) -> None:
    """Validate ``save_schedule`` against the stored record (shared by all backends)."""
    current = stored.revision if stored is not None else 0
    if schedule.revision != current + 1:
        if stored is None:
            state = "there is none (deleted, or never created)"
        else:
            state = f"it is at revision {current}"
        msg = (
            f"saving schedule {schedule.schedule_id!r} at revision {schedule.revision} "
            f"expected the stored record at revision {schedule.revision - 1}, but {state}: "
            "another writer changed it first; re-read it and retry"
        )
        raise ConflictError(msg)
