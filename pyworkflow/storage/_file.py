"""FileStorageBackend: the seed's folder layout, crash-safe and safe across processes.

Design (see ``_file_paths.Layout`` for the folders):

* **The event log is the truth.** ``events/{run_id}.jsonl`` gets whole lines with one
  ``O_APPEND`` write per ``append`` call; that write is the commit point. Run, step and hook
  records are written after it (temp file + ``os.replace``) and are projections that can
  always be rebuilt from the log: a run record that is missing or behind the log (a crash
  between the two writes) is rebuilt, with the run's step and hook records, by the next
  ``get_run`` or ``append`` of the run.
* **Torn writes.** Bytes after a log's last newline come from a writer that died mid-write;
  such an append was never acknowledged. Readers ignore them; the next writer cuts them off
  (under the append lock, so no live writer can be cut) and keeps them in
  ``events/.{run_id}.jsonl.torn``. A complete line that does not decode is skipped with a
  warning. A write that fails half-way (disk full) is truncated back before raising.
  Limit: a process killed inside a multi-page write can leave the first whole lines of its
  batch before the torn one, so a multi-event append is then only partly in the log (the
  engine's multi-event appends, ``sleep_started`` + ``sleep_completed`` and ``step_failed``
  + ``step_retrying``, replay correctly from any prefix).
* **Corrupt records.** ``get_run``/``get_step``/``get_hook`` raise ``CorruptRecordError``
  naming the file and the remedy (delete it: it is rebuilt from the log); ``list_runs``
  and ``list_hooks()`` skip such a file with a warning; an ``append`` rebuilds the run's
  records from its log, so a corrupt record never blocks a run.
* **Locks** (``flock``, released by the OS when a process dies):
  ``.locks/{run_id}.append.lock`` is held exclusively around check-sequence-then-write and
  shared by readers, so ``append`` is atomic across processes and readers never see half
  an append; ``.locks/{run_id}.lock`` is ``lock_run``'s execution right, taken without
  waiting. Lock files are never deleted (deleting a lock file in use breaks flock).
* **Caches** (bounded LRUs, per backend instance): for each run the log's inode, mtime,
  end offset and last sequence, checked with one ``fstat`` under the lock; if another
  process appended, only the new tail is read. The run record is cached with the log state
  it matches. So an append costs O(size of the appended events), not O(log).
  ``list_runs`` keeps the parsed run records keyed by (inode, mtime, size) of their files.
* **Durability** (``durability=``): ``"always"`` (default) fsyncs the log before ``append``
  returns, and the record files and their folders; ``"batch"`` fsyncs only at boundaries
  (a run suspends, finishes, receives a hook payload or a cancellation), then everything
  written for the run since the previous boundary; ``"none"`` never fsyncs. Every mode
  survives a killed process (the OS has the data); the modes differ on power loss / OS crash.
* **Blocking I/O** runs inline on the event loop when it is short and cannot block (no
  fsync, uncontended lock, small read); anything else goes to ``anyio.to_thread``.
"""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar, get_args

import anyio

from .._events import Event, encode_event
from .._exceptions import ConfigurationError, StorageError
from .._logging import make_logger
from .._projection import project
from .._records import HookRecord, RunPage, RunStatus, StepRecord, WorkflowRun
from ._file_io import Offload
from ._file_paths import Layout, check_id
from ._file_records import HOOK, STEP, Claim
from ._file_store import BOUNDARIES, Durability, FileStore
from ._paging import check_limit, page_runs

__all__ = ["Durability", "FileStorageBackend"]

T = TypeVar("T")

_DURABILITIES: tuple[str, ...] = get_args(Durability)


class FileStorageBackend:
    """Stores runs as human-readable files under ``base_path`` (folders made on first use).

    Several processes may share one folder: appends are serialized per run with file
    locks, ``lock_run`` gives one executor per run, idempotency keys are claimed
    atomically. POSIX only (``fcntl.flock``), on a local file system (not NFS).

    Costs: ``append`` O(appended bytes) plus one small record file per touched record;
    ``read`` one sequential read of the log (only the new tail when reading after the last
    sequence this instance saw); ``get_run`` one ``fstat`` when cached, else one small file
    and the log's last line; ``get_step``/``get_hook``/``claim_idempotency_key`` one small
    file; ``list_runs`` one ``stat`` per run plus a parse of the run files changed since the
    last listing (a run record may lag its log after a crash until the run is next read or
    appended to); ``list_hooks(run_id)`` one read of that run's log; ``list_hooks()`` reads
    every hook file.

    Args:
        base_path: the storage folder, e.g. ``"./workflow_data"``.
        durability: when data is fsynced. ``"always"`` (default): ``append`` returns once
            the events are on stable storage, so an acknowledged event survives power loss;
            costs one fsync of the log plus one per record file and folder written, per
            append. ``"batch"``: fsync only at boundaries (suspend, finish, hook payload,
            cancellation); after a power loss a run may lose the events since its last
            boundary and re-run those steps (at-least-once widens to them). ``"none"``:
            never fsync; the OS writes back within seconds; a power loss can lose recent
            events of any run. A killed process loses nothing acknowledged in every mode.
            Idempotency claims are fsynced unless ``"none"``.

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
            StorageError: the write failed; nothing was written.
        """
        check_id("run id", run_id)
        if not events:
            return
        payload = b"".join(encode_event(event) + b"\n" for event in events)
        sync = self.durability == "always" or (
            self.durability == "batch" and any(isinstance(e, BOUNDARIES) for e in events)
        )
        append = functools.partial(self._store.append, run_id, events, expected_sequence)
        await self._call(f"append to run {run_id!r}", append, payload, sync, inline=not sync)

    async def read(self, run_id: str, *, after: int = 0) -> list[Event]:
        """The run's events with a sequence greater than ``after`` (one sequential read)."""
        check_id("run id", run_id)
        if not isinstance(after, int) or isinstance(after, bool) or after < 0:
            msg = f"read(after={after!r}): pass a sequence number >= 0"
            raise ConfigurationError(msg)
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
        """Runs, newest first. A corrupt run record is skipped (with a warning logged)."""
        check_limit(limit)
        runs = await self._call("list runs", self._store.list_runs, inline=False)
        return page_runs(
            runs, status=status, workflow_name=workflow_name, limit=limit, cursor=cursor
        )

    async def get_step(self, step_id: str) -> StepRecord | None:
        """A step's latest record (``steps/{step_id}.json``)."""
        path = self._layout.step(step_id)
        return await self._call(f"read step {step_id!r}", self._store.load, path, STEP)

    async def get_hook(self, hook_id: str) -> HookRecord | None:
        """A hook's record (``hooks/{hook_id}.json``)."""
        path = self._layout.hook(hook_id)
        return await self._call(f"read hook {hook_id!r}", self._store.load, path, HOOK)

    async def list_hooks(self, run_id: str | None = None) -> list[HookRecord]:
        """Hooks of one run (projected from its log), or of all runs, oldest first."""
        if run_id is None:
            return await self._call("list hooks", self._store.all_hooks, inline=False)
        events = await self.read(run_id)
        return list(project(None, events).hooks.values()) if events else []

    async def claim_idempotency_key(self, key: str, run_id: str) -> str:
        """Claim ``key`` for ``run_id`` (first claim wins, across processes); return the
        run id holding it."""
        path = self._layout.claim(key)
        check_id("run id", run_id)
        claim = functools.partial(self._store.claim, path, Claim(key=key, run_id=run_id))
        return await self._call("claim an idempotency key", claim, inline=self.durability == "none")

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
    async def _call(self, op: str, fn: Callable[..., T], *args: Any, inline: bool = True) -> T:
        """Run ``fn`` inline if it can't block, else in a worker thread; OSError becomes
        StorageError."""
        try:
            if inline:
                try:
                    return fn(*args, inline=True)
                except Offload:
                    pass
            return await anyio.to_thread.run_sync(functools.partial(fn, *args, inline=False))
        except OSError as exc:
            where = f" ({exc.filename})" if exc.filename else ""
            msg = (
                f"FileStorageBackend at {str(self._layout.base)!r} could not {op}: "
                f"{exc.strerror or exc}{where}; check that the folder exists, is writable "
                "and that the disk is not full"
            )
            raise StorageError(msg) from exc
