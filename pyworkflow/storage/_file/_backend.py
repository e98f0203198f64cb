"""FileStorageBackend: the seed's folder layout, crash-safe and safe across processes.

Design (see ``_file_paths.Layout`` for the folders):

* **The event log is the truth, and the only file an append always writes.**
  ``events/{run_id}.jsonl`` gets the append's lines with one ``O_APPEND`` write under the
  run's append lock; that write is the commit point. An append costs a lock, an ``fstat``,
  that ``write`` and an in-memory fold (``project()``) of its events: O(appended bytes).
* **Record files are caches of the log's projection, written at flush points** (in
  ``_file_store``): when an event changes the run's status or cancellation flag
  (``workflow_suspended``, ``_resumed``, ``_completed``, ``_failed``, ``_cancelled``,
  ``cancellation_requested``) all of the run's changed step and hook records are written,
  then ``runs/{run_id}.json``. Not at ``workflow_started``: a run that has not reached its
  first flush point has no run file (readers fold its log, short until then), which spares
  every run one file write, and a run that starts and ends in one go writes its files once.
  A hook's creation writes its file at once (``get_hook`` finds a hook by its id, and
  the file names its run; the hook's later events wait for the next flush point, like a
  step's); and a run whose log grew ``FLUSH_BYTES`` (64 KiB)
  past its run file is flushed too. So a step's file is written once, with its state at
  the next flush point, not twice per step; while a run is suspended or finished every
  file is current, and the run file's status always is. Why: on ext4 creating or replacing
  a small file costs 0.02-0.6 ms (inode allocation; on the benchmark VM it dominates),
  an appended line microseconds.
* **Reads are exact**, though files lag between flush points: ``get_run``, ``get_step``,
  ``get_hook``, ``list_runs`` and ``list_hooks`` return the projection of the whole log.
  The run file stores ``log_end``, the log offset it was projected up to; a reader folds
  the log after it (at most ~``FLUSH_BYTES``) onto the files, and keeps the result in
  memory (``_file_view.View``), folding only new lines later. ``_file_view`` states the
  invariants that make this exact. ``list_runs`` finds runs by their logs (a run exists once
  its log does, run file or not) and re-projects only logs that changed since it last looked.
  One gap, as before: ``get_hook`` and ``list_hooks()`` find a hook by its file, so a hook
  whose ``hook_created`` was written by a process killed before it wrote the hook's file
  (that append was never acknowledged) is found once the run's next flush writes it.
* **Torn writes.** Bytes after a log's last newline come from a writer that died mid-write;
  such an append was never acknowledged. Readers ignore them; the next writer cuts them off
  (under the append lock, so no live writer can be cut) and keeps them in
  ``events/.{run_id}.jsonl.torn``. A complete line that does not decode is skipped with a
  warning. A write that fails half-way (disk full) is truncated back before raising, so
  the append can be retried: it raises ``TransientStorageError`` for an ``OSError`` a retry
  can cure (``ENOSPC``, ``EDQUOT``, ``EAGAIN``, ...; ``EIO`` is permanent: see
  ``storage._errors``), and a permanent ``StorageError`` if the cut itself failed.
  Limit: a process killed inside a multi-page write can leave the first whole lines of its
  batch before the torn one, so a multi-event append is then only partly in the log (the
  engine's multi-event appends, ``sleep_started`` + ``sleep_completed`` and ``step_failed``
  + ``step_retrying``, replay correctly from any prefix).
* **Crashes and corrupt records.** A process killed between the log write and a flush
  leaves files behind the log: reads still fold the log; the next flush point of the run
  (or, if the missed one was a flush point, the next ``get_run``) writes them. A record
  file that fails to write is logged and retried likewise. A run file that does not fit
  its log (missing, from an older version, ahead of a log that lost its tail to a power
  loss) is ignored and the whole log folded. ``get_run``/``get_step``/``get_hook`` raise
  ``CorruptRecordError`` for a record file that does not decode, naming the file and the
  remedy (delete it: it is rebuilt from the log); ``list_runs`` and ``list_hooks()`` skip
  such a run or hook with a warning; an ``append`` rebuilds the run's records from its log,
  so a corrupt record never blocks a run.
* **The due index** (``.due/``, see ``_file_due``): an empty file per unfinished run that
  needs an executor, named by its due time and run id, in a folder per minute. Made and
  removed only by appends that move the run's due time (never by a step), the new entry
  before the log write and the old one after, so a crash leaves a superset; ``due_runs``
  lists only the minutes up to ``until`` and checks what it returns against the log.
* **Locks** (``flock``, released by the OS when a process dies):
  ``.locks/{run_id}.append.lock`` is held exclusively around check-sequence-then-write
  and flushes, and shared by readers, so ``append`` is atomic across processes and readers
  never see half an append or half a flush; ``.locks/{run_id}.lock`` is ``lock_run``'s
  execution right, taken without waiting. Lock files are never deleted (deleting a lock
  file in use breaks flock).
* **Caches** (bounded LRUs, per backend instance): for each run the log's inode, mtime,
  end offset and last sequence, checked with one ``fstat`` under the lock (if another
  process appended, only the new lines are read), and the run's projection (``Live``).
* **Durability** (``durability=``, see the class docstring for what each costs).
  ``"always"`` (default): an append returns only after a barrier that began after its
  write made it durable (the commit point). Barriers are group commits (``_commit``): the
  appends ready at the same moment, of concurrent runs or concurrent branches, share one
  (``syncfs`` and a folder fsync on Linux 5.8+, else an fdatasync per file), led by the
  first to ask in a worker thread. ``"batch"``: the log is synced only by appends with a
  boundary (a run suspends or finishes, a hook payload, a cancellation). In both, index
  entries are made durable before the log line that needs them, and record files at flush
  points: their contents before their names, the step and hook files' names before the run
  file's (``_append``), so after a power loss the files on disk are whole and none is
  missing that the run file counts on. ``"none"``: never fsync. Every mode survives a
  killed process (the OS has the data); they differ on power loss / OS crash.
* **Blocking I/O** runs inline on the event loop when it is short and cannot block (no
  fsync, an uncontended lock, a read under 1 MiB, a flush of at most 8 files); anything
  else goes to ``anyio.to_thread``.
"""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar, get_args

import anyio

from ..._core._events import Event, encode_event
from ..._core._projection import project
from ..._core._records import HookRecord, RunPage, RunStatus, StepRecord, WorkflowRun
from ..._core._schedule import Schedule
from ..._exceptions import ConfigurationError
from ..._logging import make_logger
from .._children import children_of
from .._errors import storage_error_from_oserror
from .._paging import check_limit
from .._port import check_after, check_due_query
from ._io import Offload, SyncSet
from ._paths import Layout, check_id
from ._records import Claim
from ._schedules import ScheduleFiles
from ._store import BOUNDARIES, Durability, FileStore

__all__ = ["Durability", "FileStorageBackend"]

T = TypeVar("T")

_DURABILITIES: tuple[str, ...] = get_args(Durability)


class FileStorageBackend:
    """Stores runs as human-readable files under ``base_path`` (folders made on first use).

    Several processes may share one folder: appends are serialized per run with file
    locks, ``lock_run`` gives one executor per run, idempotency keys are claimed
    atomically. POSIX only (``fcntl.flock``), on a local file system (not NFS).

    Costs: ``append`` O(appended bytes), plus the changed record files at flush points
    (each step's file once); ``read`` one sequential read of the log (only the new lines
    when reading after the last sequence this instance saw); ``get_run``, ``get_step`` and
    ``get_hook`` one ``fstat`` when cached, else the run file and the log after it (at
    most ~64 KiB) plus the record's file; ``list_runs`` the page's runs (a ``get_run`` each) plus
    the creation index's minute files up to them (a status filter reads runs until it has a
    page); ``list_hooks(run_id)`` one read of that
    run's log; ``list_hooks()`` reads every hook file; ``due_runs`` lists the ``.due/``
    folders of the minutes up to ``until`` and checks each run found (an ``fstat`` when
    cached), never the runs due later.

    Args:
        base_path: the storage folder, e.g. ``"./workflow_data"``.
        durability: when data is fsynced (a killed process loses nothing acknowledged in
            any mode; they differ on power loss). Costs below: a 200-step sequential run on
            ext4 in the benchmark VM (``benchmarks/bench_file.py``). ``"always"``
            (default): ``append`` returns once its events are on stable storage, so an
            acknowledged event survives power loss: a barrier per append, shared by the
            appends ready at the same moment (group commit: 100 concurrent runs pay ~15
            barriers between them), and at flush points two more for the record files
            (~0.5-0.7 ms a sequential step). ``"batch"``: the log is made durable only by
            appends that hold a boundary (suspend, finish, hook payload, cancellation),
            record files as with ``"always"``; after a power loss a run may lose its events
            since its last boundary and re-run those steps (at-least-once widens to them);
            ~0.4 ms a step. ``"none"``: never fsync; the OS writes back within seconds; a
            power loss can lose recent events of any run (their records are then rebuilt
            from what the log kept); 0.15-0.3 ms a step, of which ~0.09 ms is the backend
            and engine (on tmpfs) and the rest creating
            the step's record file. Idempotency claims are fsynced unless ``"none"``.

    Raises:
        ConfigurationError: a bad ``base_path`` or ``durability``, or not a POSIX system.
    """

    def __init__(
        self, base_path: str | os.PathLike[str], *, durability: Durability = "always"
    ) -> None:
        if sys.platform == "win32":
            msg = "FileStorageBackend needs POSIX file locks (fcntl); use WSL or another backend"
            raise ConfigurationError(msg)
        if durability not in _DURABILITIES:
            msg = (
                f"FileStorageBackend durability {durability!r} is not one of "
                f"{', '.join(map(repr, _DURABILITIES))}"
            )
            raise ConfigurationError(msg)
        self._layout = Layout(base_path)
        if self._layout.base.exists() and not self._layout.base.is_dir():
            msg = f"FileStorageBackend base_path {str(self._layout.base)!r} is not a folder"
            raise ConfigurationError(msg)
        self.durability: Durability = durability
        log = make_logger().bind(storage="file", base_path=str(self._layout.base))
        self._store = FileStore(self._layout, durability, log)
        self._schedules = ScheduleFiles(
            str(self._layout.base), self._layout.locks, sync=durability != "none", log=log
        )

    @property
    def base_path(self) -> Path:
        """The storage folder."""
        return self._layout.base

    def __repr__(self) -> str:
        return f"FileStorageBackend({str(self._layout.base)!r}, durability={self.durability!r})"

    # -- the port ---------------------------------------------------------------------
    async def append(self, run_id: str, events: Sequence[Event], *, expected_sequence: int) -> None:
        """Append ``events`` to the run's log, all or nothing (see ``StorageBackend``).

        Raises:
            ConflictError: the log is no longer at ``expected_sequence``; nothing written.
            TransientStorageError: the write failed in a way a retry can cure (disk full,
                quota, a busy or exhausted resource: see ``storage._errors``); nothing
                was written, so the same append may be retried.
            StorageError: the write failed for good (permissions, ``EIO``, a read-only
                file system, or a failed append that could not be cut off the log).
        """
        check_id("run id", run_id)
        if not events:
            return
        payload = b"".join(encode_event(event) + b"\n" for event in events)
        sync = self.durability == "always" or (
            self.durability == "batch" and any(isinstance(e, BOUNDARIES) for e in events)
        )
        tx = self._store.append(run_id, events, expected_sequence, payload, sync)
        op = f"append to run {run_id!r}"
        await self._call(op, tx.begin)
        if tx.done:
            return
        commit = self._store.commit
        try:
            await self._grouped(op, commit.sync, tx.pre)
            await self._call(op, tx.write, inline=tx.inline)
            await self._grouped(op, commit.sync, tx.post)
        except BaseException:
            tx.abort()
            raise
        try:
            await self._call(op, tx.publish, inline=tx.inline)
            if tx.names:
                try:
                    await commit.sync(tx.names)
                except OSError as exc:  # the log is durable: only the records lag
                    tx.records_failed(exc)
        finally:
            await self._call(op, tx.finish, inline=tx.inline)

    async def read(self, run_id: str, *, after: int = 0) -> list[Event]:
        """The run's events with a sequence greater than ``after`` (one sequential read)."""
        check_id("run id", run_id)
        check_after(after)
        return await self._call(f"read run {run_id!r}", self._store.read, run_id, after)

    async def get_run(self, run_id: str) -> WorkflowRun | None:
        """The run's record, or None for an unknown run.

        Raises:
            CorruptRecordError: ``runs/{run_id}.json`` can't be decoded (the message says
                how to rebuild it).
        """
        check_id("run id", run_id)
        return await self._call(f"read run {run_id!r}", self._store.get_run, run_id)

    async def list_runs(
        self,
        *,
        status: RunStatus | None = None,
        workflow_name: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> RunPage:
        """Runs, newest first, from the creation index ``.created/`` (see ``_created``): a
        page costs its runs, not the number of runs. A corrupt run record is skipped (with a
        warning logged)."""
        check_limit(limit)
        status = RunStatus(status) if status is not None else None
        page = functools.partial(self._store.list_runs, status, workflow_name, limit, cursor)
        return await self._call("list runs", page, inline=False)

    async def get_step(self, step_id: str) -> StepRecord | None:
        """A step's latest record (``steps/{step_id}.json`` and its run's log since).

        Raises:
            CorruptRecordError: its record file can't be decoded (the message says how to
                rebuild it).
        """
        return await self._call(f"read step {step_id!r}", self._store.get_step, step_id)

    async def get_hook(self, hook_id: str) -> HookRecord | None:
        """A hook's record (``hooks/{hook_id}.json`` and its run's log since).

        Raises:
            CorruptRecordError: its record file can't be decoded (the message says how to
                rebuild it).
        """
        return await self._call(f"read hook {hook_id!r}", self._store.get_hook, hook_id)

    async def list_hooks(self, run_id: str | None = None) -> list[HookRecord]:
        """Hooks of one run (projected from its log), or of all runs, oldest first."""
        if run_id is None:
            return await self._call("list hooks", self._store.all_hooks, inline=False)
        events = await self.read(run_id)
        return list(project(None, events).hooks.values()) if events else []

    async def get_children(self, run_id: str) -> list[WorkflowRun]:
        """The records of the child runs that ``run_id`` started with
        ``start_child_workflow`` in its workflow code, in the order it started them
        (``storage._children``)."""
        return await children_of(self, run_id)

    async def due_runs(self, until: datetime, *, limit: int = 1000) -> list[tuple[datetime, str]]:
        """Unfinished runs that need an executor by ``until``, earliest first (see
        ``StorageBackend.due_runs``), from the ``.due/`` index: lists the folders of the
        minutes up to ``until`` and checks each entry found against its run's log (a
        stale entry, left by a crash, is removed then). In a worker thread.
        """
        check_due_query(until, limit)
        find = functools.partial(self._store.due_runs, until, limit)
        return await self._call("list due runs", find, inline=False)

    async def claim_idempotency_key(self, key: str, run_id: str) -> str:
        """Claim ``key`` for ``run_id`` (first claim wins, across processes); return the
        run id holding it."""
        path = self._layout.claim(key)
        check_id("run id", run_id)
        claim = functools.partial(self._store.claim, path, Claim(key=key, run_id=run_id))
        return await self._call("claim an idempotency key", claim, inline=self.durability == "none")

    async def get_schedule(self, schedule_id: str) -> Schedule | None:
        """A schedule's record (``schedules/{schedule_id}.json``), or None.

        Raises:
            CorruptRecordError: the file can't be decoded (the message says what to do).
        """
        get = functools.partial(self._schedules.get, schedule_id)
        return await self._call(f"read schedule {schedule_id!r}", get, inline=False)

    async def list_schedules(self) -> list[Schedule]:
        """Every schedule record in ``schedules/`` (a corrupt one is skipped, logged)."""
        return await self._call("list schedules", self._schedules.all, inline=False)

    async def save_schedule(self, schedule: Schedule) -> None:
        """Compare-and-set a schedule's file (see ``StorageBackend.save_schedule``)."""
        save = functools.partial(self._schedules.save, schedule)
        await self._call(f"save schedule {schedule.schedule_id!r}", save, inline=False)

    async def delete_schedule(self, schedule_id: str) -> bool:
        """Remove ``schedules/{schedule_id}.json``; False if there was none."""
        delete = functools.partial(self._schedules.delete, schedule_id)
        return await self._call(f"delete schedule {schedule_id!r}", delete, inline=False)

    @asynccontextmanager
    async def lock_run(self, run_id: str) -> AsyncIterator[None]:
        """Hold the exclusive right to execute ``run_id`` (a non-blocking flock on
        ``.locks/{run_id}.lock``, dropped by the OS if this process dies).

        Raises:
            RunLockedError: another task or process holds it, named in the message.
        """
        check_id("run id", run_id)
        fd = await self._call(f"lock run {run_id!r}", self._store.lock, run_id)
        try:
            yield
        finally:
            self._store.unlock(fd)

    async def aclose(self) -> None:
        """Forget cached state (no files stay open between calls)."""
        self._store.forget()

    # -- plumbing -----------------------------------------------------------------------
    async def _grouped(
        self, op: str, sync: Callable[[SyncSet], Awaitable[None]], paths: SyncSet
    ) -> None:
        """A group commit over ``paths`` (``_commit``), if there are any; an OSError becomes
        a StorageError as in ``_call``."""
        if not paths:
            return
        try:
            await sync(paths)
        except OSError as exc:
            what = f"FileStorageBackend at {str(self._layout.base)!r} could not {op}"
            raise storage_error_from_oserror(what, exc, "check the disk") from exc

    async def _call(self, op: str, fn: Callable[..., T], *args: Any, inline: bool = True) -> T:
        """Run ``fn`` inline if it can't block, else in a worker thread; an OSError becomes a
        StorageError, a TransientStorageError if a retry can cure it (``_errors``)."""
        try:
            if inline:
                try:
                    return fn(*args, inline=True)
                except Offload:
                    pass
            return await anyio.to_thread.run_sync(functools.partial(fn, *args, inline=False))
        except OSError as exc:
            what = f"FileStorageBackend at {str(self._layout.base)!r} could not {op}"
            remedy = "check that the folder exists and is writable"
            raise storage_error_from_oserror(what, exc, remedy) from exc
