"""The synchronous core of FileStorageBackend: every file operation, under the right lock.

Each public method takes ``inline``: True when called on the event loop, where it must not
block (a contended lock, a large read, an fsync or a big flush raises :class:`Offload`
before any side effect, and the backend calls it again in a worker thread).

An append, the hot path: :class:`~._append.AppendTx` (take the run's append lock, ``fstat``
the log to check the expected sequence against the cached :class:`LogMark`, fold the events
into the run's :class:`Live`, ``write`` the lines, unlock), driven by the backend so that
appends ready at the same moment share their fsyncs (``_commit``). Record files are written
only at flush points, never per step. An append that moves the run's due time (a status
change, a hook payload or cancellation while suspended) also makes the new ``.due/`` entry
before its write and removes the old one after (``_file_due``, invariant I1).
"""

from __future__ import annotations

import functools
import os
from collections.abc import Sequence
from contextlib import AbstractContextManager
from datetime import datetime
from typing import Any, Literal, TypeVar

from ..._core._events import (
    CHILD_OUTCOMES,
    CancellationRequested,
    Event,
    HookCreated,
    HookReceived,
    WorkflowCancelled,
    WorkflowCompleted,
    WorkflowContinuedAsNew,
    WorkflowFailed,
    WorkflowStarted,
    WorkflowSuspended,
)
from ..._core._projection import Projection, due_at, project
from ..._core._records import HookRecord, RunPage, RunStatus, StepRecord, WorkflowRun
from ..._exceptions import CorruptRecordError
from .._paging import cut_page, parse_cursor
from ._append import AppendTx, Due, RecordFlush, open_log
from ._commit import GroupCommit
from ._created import CreatedIndex
from ._due import DueFolder
from ._io import Offload, SyncSet, flocked, fsync_dir
from ._listing import RunListing
from ._locks import publish_claim, read_claim, release_run_lock, take_run_lock
from ._log import LogMark, read_log, sync_mark
from ._paths import Layout, is_id, step_owner
from ._records import HOOK, STEP, Claim, Lru, load_lines, load_record
from ._view import FLUSH_BYTES, INLINE_READ, RUN_FLUSH, Live, View

__all__ = ["BOUNDARIES", "Durability", "FileStore"]

Durability = Literal["always", "batch", "none"]
T = TypeVar("T")

BOUNDARIES = (
    WorkflowSuspended,
    WorkflowCompleted,
    WorkflowFailed,
    WorkflowCancelled,
    WorkflowContinuedAsNew,
    HookReceived,
    CancellationRequested,
    *CHILD_OUTCOMES,
)
"""Events after which ``durability="batch"`` syncs: a run stops, or news came from outside."""

_CACHE_SIZE = 4096
_LIVE_RUNS = 1024
"""Runs whose projection is kept in memory (each holds at most ~FLUSH_BYTES of changed
records); an evicted one is rebuilt from its run file and log when used again."""


class FileStore:
    """Files of one storage folder, with the caches that make appends O(1)."""

    def __init__(self, layout: Layout, durability: Durability, log: Any) -> None:
        self.layout = layout
        self.durability = durability
        self.log = log
        self.view = View(layout, log, _LIVE_RUNS)
        self._listing = RunListing(layout, functools.partial(self.project_run, inline=False), log)
        self._ready = False
        self._marks: Lru[str, LogMark] = Lru(_CACHE_SIZE)
        self.index = DueFolder(layout.due)
        self._indexed = False
        self.created = CreatedIndex(layout.created)
        self.commit = GroupCommit(str(layout.base))

    def forget(self) -> None:
        self._marks.clear()
        self.view.forget()
        self.commit.close()

    def ensure_layout(self) -> None:
        if self._ready:
            self.commit.open()  # before any write it covers (see _commit)
            return
        for folder in self.layout.folders:
            os.makedirs(folder, exist_ok=True)
        self.index.ensure(self.layout.events, sync=self.durability != "none")
        self.created.ensure(self.layout.events, sync=self.durability != "none")
        if self.durability != "none":
            fsync_dir(str(self.layout.base))
        self.commit.open()
        self._ready = True

    def _sync_mark(self, fd: int, run_id: str, *, repair: bool) -> LogMark:
        """The log's current mark; with ``repair`` (exclusive lock held) a torn tail is cut."""
        keep = self.layout.torn(run_id) if repair else None
        mark, torn = sync_mark(fd, run_id, self._marks.get(run_id), keep=keep)
        if torn and keep is not None:
            self.log.warning("event_log_torn_tail_cut", run_id=run_id, bytes=torn, kept=keep)
        elif torn:
            self.log.warning("event_log_torn_tail_ignored", run_id=run_id, bytes=torn)
        self._marks.put(run_id, mark)
        return mark

    # -- appending ----------------------------------------------------------------------
    def append(
        self,
        run_id: str,
        events: Sequence[Event],
        expected: int,
        payload: bytes,
        sync: bool,
    ) -> AppendTx:
        """An append of ``payload`` (the encoded ``events``), for the backend to drive
        through its phases (``_append``)."""
        return AppendTx(self, run_id, events, expected, payload, sync)

    def sync_log_mark(self, fd: int, run_id: str, *, repair: bool) -> LogMark:
        return self._sync_mark(fd, run_id, repair=repair)

    def remember_mark(self, run_id: str, mark: LogMark) -> None:
        self._marks.put(run_id, mark)

    def forget_run(self, run_id: str) -> None:
        """Drop what the caches know of the run (an append to it was undone)."""
        self._marks.pop(run_id)
        self.view.pop(run_id)

    def project_append(
        self,
        run_id: str,
        fd: int | None,
        mark: LogMark | None,
        events: Sequence[Event],
        *,
        inline: bool,
    ) -> tuple[Live | None, Projection]:
        """The run's Live before the append, and what ``events`` change."""
        live = None
        if fd is not None and mark is not None:
            live = self.view.current(run_id, fd, mark, strict=False, inline=inline)
        prior = self.view.prior(live, events, files=live is not None and live.flushed > 0)
        if prior is None:
            if fd is None or mark is None or not mark.last_sequence:
                return live, project(None, events)  # nothing to rebuild from: let project judge
            live = self.view.rebuild(run_id, fd, mark, inline=inline)
            assert live is not None
            prior = live.steps, live.hooks
        return live, project(live.run if live is not None else None, events, *prior)

    def due_records(
        self,
        run_id: str,
        live: Live | None,
        change: Projection,
        events: Sequence[Event],
        end: int,
    ) -> Due:
        """Which record files the append of ``events`` (ending the log at ``end``) writes.

        All of the run's changed records and its run file at a flush point: an event that
        changes the run's status or cancellation flag (not its start: a new run has no run
        file until its first flush point), a log grown ``FLUSH_BYTES`` past the run file, or
        an ``overdue`` run. Otherwise only the files of the hooks the events create
        (``get_hook`` finds a hook by its id alone, through its file) and of steps whose id
        does not name this run (a reader could not find their run). A hook's later events
        (received, expired) wait for the next flush point, like a step's: its file names
        its run, whose Live folds them (``_file_view``'s I2). A delivered payload is
        followed by the run's resumption, a flush point, so that spares writing the hook's
        file twice (a temp file and a rename, 0.1-0.5 ms on the benchmark VM's disk).
        """
        flushed = live.flushed if live is not None else 0
        full = (
            (live.overdue if live is not None else not isinstance(events[0], WorkflowStarted))
            or end - flushed >= FLUSH_BYTES
            or any(isinstance(event, RUN_FLUSH) for event in events)
        )
        if full:
            steps = set(change.steps) | (set(live.steps) if live else set())
            hooks = set(change.hooks) | (set(live.hooks) if live else set())
            return Due(True, tuple(steps), tuple(hooks))
        foreign = tuple(s for s in change.steps if step_owner(s) != run_id)
        created = tuple(e.hook_id for e in events if isinstance(e, HookCreated))
        return Due(False, foreign, tuple(h for h in created if h in change.hooks))

    def unindex(self, run_id: str, due: datetime) -> None:
        """Remove a run's entry that is no longer its due time; a failure leaves a stale
        entry, which ``due_runs`` removes when it comes due."""
        try:
            self.index.remove(due, run_id)
        except OSError as exc:
            self.log.warning("due_entry_remove_failed", run_id=run_id, error=str(exc))

    def drop_lost_steps(self, run_id: str, live: Live) -> None:
        """Delete the run's step files that its log no longer backs: the log lost its tail
        (a power loss with durability "batch" or "none") after they were written. Its Live
        was folded from the whole log, so it holds every step the log has."""
        prefix = f"{run_id}."
        for entry in os.scandir(self.layout.steps):
            step_id = entry.name[: -len(".json")]
            if (
                step_id.startswith(prefix)
                and entry.name.endswith(".json")
                and step_owner(step_id) == run_id
                and step_id not in live.steps
            ):
                os.unlink(entry.path)
                self.log.warning("lost_step_record_deleted", run_id=run_id, step_id=step_id)
        live.lost_tail = False

    # -- reading ------------------------------------------------------------------------
    def read(self, run_id: str, after: int, *, inline: bool) -> list[Event]:
        """Events after ``after``: reads only the new tail when ``after`` is at our mark."""
        fd = open_log(self.layout.log(run_id), write=False)
        if fd is None:
            return []
        try:
            with self._shared(run_id, inline=inline):
                st = os.fstat(fd)
                mark = self._marks.get(run_id)
                start = base = 0
                if mark is not None and after >= mark.last_sequence:
                    if mark.current(st):
                        return []
                    if mark.ino == st.st_ino and mark.end <= st.st_size:
                        start, base = mark.end, mark.last_sequence
                if inline and st.st_size - start > INLINE_READ:
                    raise Offload
                # From the top: the run file tells how many lines it was projected from,
                # which spares counting them (_file_log); a few µs against ~150.
                hint = load_lines(self.layout.run(run_id), run_id) if not start else None
                scan = read_log(
                    fd, run_id, start=start, size=st.st_size, after=after, base=base, hint=hint
                )
                self.view.report(run_id, scan.garbage, scan.torn)
                self._marks.put(
                    run_id, LogMark(st.st_ino, st.st_mtime_ns, scan.end, scan.last_sequence)
                )
                return scan.events
        finally:
            os.close(fd)

    def _shared(self, run_id: str, *, inline: bool) -> AbstractContextManager[int]:
        """The run's append lock, shared: no append or flush of the run is under way (its
        writer holds it exclusively until the append is durable, or undone). Makes the
        folders only if ``.locks/`` is missing (a folder copied without it): a reader
        writes nothing else."""
        path = self.layout.append_lock(run_id)
        return flocked(path, exclusive=False, wait=not inline, make=self.ensure_layout)

    def _live(self, run_id: str, *, strict: bool, inline: bool) -> Live | None:
        """The run's current Live, under the shared append lock; None: no such run."""
        fd = open_log(self.layout.log(run_id), write=False)
        if fd is None:
            return None
        try:
            with self._shared(run_id, inline=inline):
                mark = self._sync_mark(fd, run_id, repair=False)
                return self.view.current(run_id, fd, mark, strict=strict, inline=inline)
        finally:
            os.close(fd)

    def get_run(self, run_id: str, *, inline: bool) -> WorkflowRun | None:
        """The run's record: its projection of the whole log (see ``_file_view``)."""
        live = self._live(run_id, strict=True, inline=inline)
        if live is None:
            return None
        run = live.run
        if live.overdue:
            self._repair(run_id, inline=inline)
        return run

    def _repair(self, run_id: str, *, inline: bool) -> None:
        """Flush an ``overdue`` run's records (a crash or failed write left them behind a
        flush point), under the exclusive lock."""
        self.ensure_layout()  # before the flush's writes (see _commit)
        with flocked(self.layout.append_lock(run_id), exclusive=True, wait=not inline):
            fd = open_log(self.layout.log(run_id))
            if fd is None:
                return
            try:
                mark = self._sync_mark(fd, run_id, repair=True)
                live = self.view.current(run_id, fd, mark, strict=False, inline=inline)
            finally:
                os.close(fd)
            if live is None or not live.overdue:
                return
            due = Due(True, tuple(live.steps), tuple(live.hooks))
            if inline and due.blocks(fsync=self.durability != "none"):
                raise Offload
            self._flush_now(run_id, live, due)

    def _flush_now(self, run_id: str, live: Live, due: Due) -> None:
        """Write the record files ``due`` names in this thread, with blocking barriers."""
        flush = RecordFlush(self, run_id, live, due)
        if not flush:
            return
        paths = SyncSet() if self.durability != "none" else None
        try:
            flush.stage(paths)
            if paths:
                self.commit.barrier(paths)
        except OSError as exc:
            flush.failed(exc)
            return
        names = SyncSet() if paths is not None else None
        if not flush.publish_records(names):
            return
        if names:
            try:
                self.commit.barrier(names)
            except OSError as exc:
                flush.failed(exc)
                return
        flush.publish_run()

    def get_step(self, step_id: str, *, inline: bool) -> StepRecord | None:
        """A step's record: from the run's Live if it changed since the last flush, else
        its file (invariant I2 of ``_file_view``)."""
        path = self.layout.step(step_id)
        run_id = step_owner(step_id)
        live = self._live(run_id, strict=False, inline=inline) if run_id else None
        if live is not None and (step_id in live.steps or not live.flushed):
            return live.steps.get(step_id)  # not flushed: no file is trusted (a rebuilt run)
        return load_record(path, STEP)

    def get_hook(self, hook_id: str, *, inline: bool) -> HookRecord | None:
        """A hook's record: its file names its run; that run's Live has it if it changed
        since its file was written."""
        path = self.layout.hook(hook_id)
        hook = load_record(path, HOOK)
        if hook is None or not is_id(hook.run_id):
            return hook
        live = self._live(hook.run_id, strict=False, inline=inline)
        if live is None:
            return hook
        if hook_id in live.hooks or not live.flushed:
            return live.hooks.get(hook_id)
        return load_record(path, HOOK)

    def project_run(self, run_id: str, *, inline: bool) -> WorkflowRun | None:
        """For ``list_runs``: the run's record, without repairs.

        Raises:
            CorruptRecordError: its run file is corrupt.
        """
        live = self._live(run_id, strict=True, inline=inline)
        return live.run if live is not None else None

    def list_runs(
        self,
        status: RunStatus | None,
        workflow_name: str | None,
        limit: int,
        cursor: str | None,
        *,
        inline: bool,
    ) -> RunPage:
        """One page, newest first, from the creation index (``_created``): reads the
        page's runs and the index's minute files up to them, not every run."""
        before = parse_cursor(cursor)
        self.ensure_layout()
        self.created.build(self._listing.records, sync=self.durability != "none")
        runs: list[WorkflowRun] = []
        for line in self.created.newest(before):
            if workflow_name is not None and line.workflow != workflow_name:
                continue
            try:
                run = self.project_run(line.run_id, inline=False)
            except CorruptRecordError as exc:
                self.log.warning("corrupt_run_record_skipped", run_id=line.run_id, error=str(exc))
                continue
            if run is None or (status is not None and run.status != status):
                continue  # I1: a line whose start was never written
            runs.append(run)
            if len(runs) > limit:
                break
        return cut_page(runs, limit)

    def all_hooks(self, *, inline: bool) -> list[HookRecord]:
        """Every readable hook record, oldest first (corrupt ones skipped and reported)."""
        hooks: list[HookRecord] = []
        try:
            names = os.listdir(self.layout.hooks)
        except FileNotFoundError:
            return []
        for name in names:
            hook_id = name[: -len(".json")]
            if not name.endswith(".json") or not is_id(hook_id):
                continue  # temp files of writes in progress
            try:
                hook = self.get_hook(hook_id, inline=inline)
            except CorruptRecordError as exc:
                self.log.warning("corrupt_hook_record_skipped", error=str(exc))
                continue
            if hook is not None:
                hooks.append(hook)
        return sorted(hooks, key=lambda h: (h.created_at, h.hook_id))

    # -- the due index ------------------------------------------------------------------
    def due_runs(self, until: datetime, limit: int, *, inline: bool) -> list[tuple[datetime, str]]:
        """Runs due by ``until``, earliest first: the ``.due/`` entries up to ``until``, each
        checked against its run's projection (``_file_due``, invariant I2)."""
        self.ensure_layout()
        if not self._indexed:
            if not self.index.built():
                self._build_index()
            self._indexed = True
        found: dict[str, datetime] = {}
        for due, run_id in self.index.scan(until):
            if len(found) >= limit:
                break
            if found.get(run_id) == due:
                continue
            try:
                live = self._live(run_id, strict=False, inline=inline)
                current = due_at(live.run) if live is not None else None
                if current != due:
                    current = self._reindex(run_id, due, inline=inline, report=True)
            except CorruptRecordError as exc:
                self.log.warning("due_entry_skipped", run_id=run_id, error=str(exc))
                continue
            if current is not None and current <= due:  # a later one is met further on
                found[run_id] = current
        return sorted((due, run_id) for run_id, due in found.items())[:limit]

    def _reindex(
        self, run_id: str, stale: datetime | None, *, inline: bool, report: bool
    ) -> datetime | None:
        """Under the run's exclusive append lock: give the run its current entry, and remove
        the one at ``stale`` unless that is it. Returns the run's due time."""
        with flocked(self.layout.append_lock(run_id), exclusive=True, wait=not inline):
            fd = open_log(self.layout.log(run_id), write=False)
            live = None
            if fd is not None:
                try:
                    mark = self._sync_mark(fd, run_id, repair=False)
                    live = self.view.current(run_id, fd, mark, strict=False, inline=inline)
                finally:
                    os.close(fd)
            current = due_at(live.run) if live is not None else None
            if current is not None and not self.index.has(current, run_id):
                self.index.add(current, run_id, sync=self.durability != "none")
                if report:  # I1 was broken: a power loss with durability "none"?
                    self.log.warning("due_entry_restored", run_id=run_id, due=str(current))
            if stale is not None and stale != current:
                self.index.remove(stale, run_id)
                self.log.info("stale_due_entry_removed", run_id=run_id, due=str(stale))
        return current

    def _build_index(self) -> None:
        """Index every run in ``events/`` (a storage folder from a version without the
        index): once per folder, then ``.due/.built`` says it is done."""
        runs = 0
        for name in os.listdir(self.layout.events):
            run_id = name[: -len(".jsonl")]
            if not name.endswith(".jsonl") or not is_id(run_id):
                continue
            try:
                self._reindex(run_id, None, inline=False, report=False)
            except CorruptRecordError as exc:
                self.log.warning("due_entry_skipped", run_id=run_id, error=str(exc))
            runs += 1
        self.index.mark_built(sync=self.durability != "none")
        self.log.info("due_index_built", runs=runs)

    # -- claims and locks ---------------------------------------------------------------
    def claim(self, path: str, claim: Claim, *, inline: bool) -> str:
        """Publish ``claim`` at ``path`` unless a claim is there; return the holder."""
        held = read_claim(path, claim.key)
        if held is not None:
            return held
        self.ensure_layout()
        return publish_claim(path, claim, sync=self.durability != "none")

    def lock(self, run_id: str, *, inline: bool) -> int:
        """Take the run's execution lock without waiting; return the descriptor holding it.

        Raises:
            RunLockedError: held by someone else (named from the lock file's content).
        """
        self.ensure_layout()
        return take_run_lock(self.layout.run_lock(run_id), run_id, inline=inline)

    unlock = staticmethod(release_run_lock)
