"""The synchronous core of FileStorageBackend: every file operation, under the right lock.

Each public method takes ``inline``: True when called on the event loop, where it must not
block (a contended lock or a large read raises :class:`Offload` before any side effect, and
the backend calls it again in a worker thread with ``inline=False``).
"""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Callable, Sequence
from contextlib import suppress
from pathlib import Path
from typing import Any, Literal, TypeVar

from .._events import (
    CancellationRequested,
    Event,
    HookCreated,
    HookExpired,
    HookReceived,
    StepCompleted,
    StepFailed,
    StepRetrying,
    StepStarted,
    WorkflowCancelled,
    WorkflowCompleted,
    WorkflowFailed,
    WorkflowSuspended,
)
from .._exceptions import CorruptRecordError, RunLockedError
from .._projection import Projection, project
from .._records import HookRecord, StepRecord, WorkflowRun
from ._file_io import (
    Offload,
    flocked,
    fsync_dir,
    fsync_file,
    try_flock,
    write_all,
    write_atomic,
    write_exclusive,
)
from ._file_log import LogMark, read_log, sync_mark
from ._file_paths import Layout
from ._file_records import (
    CLAIM,
    HOOK,
    RUN,
    STEP,
    Claim,
    Lru,
    RecordType,
    RunListing,
    encode_record,
    load_record,
)
from ._port import check_append

__all__ = ["BOUNDARIES", "Durability", "FileStore"]

Durability = Literal["always", "batch", "none"]
T = TypeVar("T")

BOUNDARIES = (
    WorkflowSuspended,
    WorkflowCompleted,
    WorkflowFailed,
    WorkflowCancelled,
    HookReceived,
    CancellationRequested,
)
"""Events after which ``durability="batch"`` syncs: a run stops, or news came from outside."""

_STEP_EVENTS = (StepStarted, StepCompleted, StepFailed, StepRetrying)
_INLINE_READ = 256 * 1024
_CACHE_SIZE = 4096
_fdatasync: Callable[[int], None] = getattr(os, "fdatasync", os.fsync)


class _Stale(Exception):
    """The run record is missing or behind the log: rebuild it under the exclusive lock."""


def _open_log(path: Path, *, create: bool = False, write: bool = True) -> int | None:
    flags = (os.O_RDWR | os.O_APPEND if write else os.O_RDONLY) | os.O_CLOEXEC
    try:
        return os.open(path, flags | (os.O_CREAT if create else 0), 0o644)
    except FileNotFoundError:
        return None


class FileStore:
    """Files of one storage folder, with the caches that make appends O(1)."""

    def __init__(self, layout: Layout, durability: Durability, log: Any) -> None:
        self.layout = layout
        self.durability = durability
        self.log = log
        self._ready = False
        self._marks: Lru[str, LogMark] = Lru(_CACHE_SIZE)
        self._runs: Lru[str, tuple[LogMark, WorkflowRun]] = Lru(_CACHE_SIZE)
        self._listing = RunListing(layout.runs, log)
        self._dirty: dict[str, set[Path]] = {}
        self._dirty_mutex = threading.Lock()

    def forget(self) -> None:
        self._marks.clear()
        self._runs.clear()

    def ensure_layout(self) -> None:
        if self._ready:
            return
        for folder in self.layout.folders:
            folder.mkdir(parents=True, exist_ok=True)
        if self.durability != "none":
            fsync_dir(self.layout.base)
        self._ready = True

    def _sync_mark(self, fd: int, run_id: str, *, repair: bool) -> LogMark:
        """The log's current mark; with ``repair`` (exclusive lock held) a torn tail is cut."""
        keep = self.layout.torn(run_id) if repair else None
        mark, torn = sync_mark(fd, run_id, self._marks.get(run_id), keep=keep)
        if torn and keep is not None:
            self.log.warning("event_log_torn_tail_cut", run_id=run_id, bytes=torn, kept=str(keep))
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
        *,
        inline: bool,
    ) -> None:
        """Check the sequence, write ``payload`` (the encoded events), then the records."""
        self.ensure_layout()
        path = self.layout.log(run_id)
        with flocked(self.layout.append_lock(run_id), exclusive=True, wait=not inline):
            fd = _open_log(path)
            try:
                mark = self._sync_mark(fd, run_id, repair=True) if fd is not None else None
                check_append(run_id, events, expected, mark.last_sequence if mark else 0)
                change = self._project(run_id, fd, mark, events)
                created = fd is None
                if fd is None:
                    fd = _open_log(path, create=True)
                    assert fd is not None
                start = mark.end if mark is not None else 0
                self._write_log(fd, start, payload, sync=sync, created=created)
                st = os.fstat(fd)
            finally:
                if fd is not None:
                    os.close(fd)
            new_mark = LogMark(st.st_ino, st.st_mtime_ns, st.st_size, events[-1].sequence)
            self._marks.put(run_id, new_mark)
            self._store(run_id, new_mark, change, sync=sync)

    def _write_log(self, fd: int, start: int, payload: bytes, *, sync: bool, created: bool) -> None:
        """Append ``payload`` and make it durable per policy, or undo it and raise."""
        try:
            write_all(fd, payload)
            if sync:
                _fdatasync(fd)
                if created:
                    fsync_dir(self.layout.events)
        except BaseException:
            with suppress(OSError):
                os.ftruncate(fd, start)  # not acknowledged: leave no trace
            raise

    def _project(
        self, run_id: str, fd: int | None, mark: LogMark | None, events: Sequence[Event]
    ) -> Projection:
        """Fold ``events`` onto the run's current records (rebuilding them if needed)."""
        run = None
        if fd is not None and mark is not None and mark.last_sequence:
            run = self._settled_run(run_id, fd, mark, rebuild=True)
        previous = self._previous(events)
        if previous is None:
            if fd is None or mark is None or not mark.last_sequence:
                return project(run, events)  # nothing to rebuild from: let project judge
            rebuilt = self._rebuild(run_id, fd, mark)
            run, previous = rebuilt.run, (rebuilt.steps, rebuilt.hooks)
        return project(run, events, *previous)

    def _previous(
        self, events: Sequence[Event]
    ) -> tuple[dict[str, StepRecord], dict[str, HookRecord]] | None:
        """The step/hook records ``events`` update; None if one is corrupt or missing.

        Also checks every id the events carry before anything is written.
        """
        steps: dict[str, StepRecord] = {}
        hooks: dict[str, HookRecord] = {}
        seen: set[str] = set()
        try:
            for event in events:
                if isinstance(event, _STEP_EVENTS) and event.step_id not in seen:
                    seen.add(event.step_id)
                    step = load_record(self.layout.step(event.step_id), STEP)
                    if step is not None:
                        steps[event.step_id] = step
                elif isinstance(event, HookCreated):
                    seen.add(event.hook_id)
                    self.layout.hook(event.hook_id)
                elif isinstance(event, HookReceived | HookExpired) and event.hook_id not in seen:
                    seen.add(event.hook_id)
                    hook = load_record(self.layout.hook(event.hook_id), HOOK)
                    if hook is None:
                        return None
                    hooks[event.hook_id] = hook
        except CorruptRecordError as exc:
            self.log.warning("corrupt_record_rebuilt", error=str(exc))
            return None
        return steps, hooks

    def _settled_run(self, run_id: str, fd: int, mark: LogMark, *, rebuild: bool) -> WorkflowRun:
        """The run record matching the log at ``mark``.

        Raises:
            _Stale: it is missing or behind and ``rebuild`` is False.
            CorruptRecordError: it is corrupt and ``rebuild`` is False.
        """
        cached = self._runs.get(run_id)
        if cached is not None and cached[0] == mark:
            return cached[1]
        try:
            record = load_record(self.layout.run(run_id), RUN)
        except CorruptRecordError as exc:
            if not rebuild:
                raise
            self.log.warning("corrupt_run_record_rebuilt", run_id=run_id, error=str(exc))
            record = None
        if record is not None and record.last_sequence == mark.last_sequence:
            self._runs.put(run_id, (mark, record))
            return record
        if not rebuild:
            raise _Stale
        return self._rebuild(run_id, fd, mark).run

    def _rebuild(self, run_id: str, fd: int, mark: LogMark) -> Projection:
        """Project the whole log again and rewrite every record of the run."""
        scan = read_log(fd, run_id, start=0, size=mark.end, after=0, base=0)
        self._report(run_id, scan.garbage, scan.torn)
        change = project(None, scan.events)
        self._store(run_id, mark, change, sync=self.durability == "always")
        self.log.warning("run_records_rebuilt", run_id=run_id, events=len(scan.events))
        return change

    def _store(self, run_id: str, mark: LogMark, change: Projection, *, sync: bool) -> None:
        """Write the records of ``change`` (the run's last). They are projections of the log,
        already committed: a failure here is logged and repaired by the next read."""
        layout = self.layout
        writes = [(layout.step(i), encode_record(r)) for i, r in change.steps.items()]
        writes += [(layout.hook(i), encode_record(r)) for i, r in change.hooks.items()]
        writes.append((layout.run(run_id), encode_record(change.run)))
        folders = {path.parent for path, _ in writes}
        try:
            if self.durability == "batch" and sync:
                with self._dirty_mutex:
                    dirty = self._dirty.pop(run_id, set())
                for path in dirty:
                    fsync_file(path)
                folders |= {layout.events, layout.steps, layout.hooks}
            for path, data in writes:
                write_atomic(path, data, sync=sync)
            if sync:
                for folder in folders:
                    fsync_dir(folder)
            elif self.durability == "batch":
                with self._dirty_mutex:
                    self._dirty.setdefault(run_id, set()).update(path for path, _ in writes)
        except OSError as exc:
            self._runs.pop(run_id)
            self.log.error("record_write_failed", run_id=run_id, error=str(exc))
            return
        self._runs.put(run_id, (mark, change.run))

    # -- reading ------------------------------------------------------------------------
    def _report(self, run_id: str, garbage: int, torn: int) -> None:
        if garbage:
            self.log.warning("event_log_garbage_skipped", run_id=run_id, lines=garbage)
        if torn:
            self.log.warning("event_log_torn_tail_ignored", run_id=run_id, bytes=torn)

    def read(self, run_id: str, after: int, *, inline: bool) -> list[Event]:
        """Events after ``after``: reads only the new tail when ``after`` is at our mark."""
        fd = _open_log(self.layout.log(run_id), write=False)
        if fd is None:
            return []
        try:
            self.ensure_layout()  # e.g. a folder copied without its .locks/
            with flocked(self.layout.append_lock(run_id), exclusive=False, wait=not inline):
                st = os.fstat(fd)
                mark = self._marks.get(run_id)
                start = base = 0
                if mark is not None and after >= mark.last_sequence:
                    if mark.current(st):
                        return []
                    if mark.ino == st.st_ino and mark.end <= st.st_size:
                        start, base = mark.end, mark.last_sequence
                if inline and st.st_size - start > _INLINE_READ:
                    raise Offload
                scan = read_log(fd, run_id, start=start, size=st.st_size, after=after, base=base)
                self._report(run_id, scan.garbage, scan.torn)
                self._marks.put(
                    run_id, LogMark(st.st_ino, st.st_mtime_ns, scan.end, scan.last_sequence)
                )
                return scan.events
        finally:
            os.close(fd)

    def get_run(self, run_id: str, *, inline: bool) -> WorkflowRun | None:
        """The run record, checked against the log's last sequence (rebuilt if behind)."""
        fd = _open_log(self.layout.log(run_id), write=False)
        if fd is None:
            return None
        try:
            self.ensure_layout()
            with flocked(self.layout.append_lock(run_id), exclusive=False, wait=not inline):
                mark = self._sync_mark(fd, run_id, repair=False)
                if not mark.last_sequence:
                    return None
                try:
                    return self._settled_run(run_id, fd, mark, rebuild=False)
                except _Stale:
                    pass
        finally:
            os.close(fd)
        # Missing or behind the log (a crash between log and record): rebuild it.
        with flocked(self.layout.append_lock(run_id), exclusive=True, wait=not inline):
            fd = _open_log(self.layout.log(run_id))
            if fd is None:
                return None
            try:
                mark = self._sync_mark(fd, run_id, repair=True)
                if not mark.last_sequence:
                    return None
                return self._settled_run(run_id, fd, mark, rebuild=True)
            finally:
                os.close(fd)

    def load(self, path: Path, kind: RecordType[T], *, inline: bool) -> T | None:
        return load_record(path, kind)

    def list_runs(self, *, inline: bool) -> list[WorkflowRun]:
        return self._listing.records()

    def all_hooks(self, *, inline: bool) -> list[HookRecord]:
        """Every readable hook record, oldest first (corrupt ones skipped and reported)."""
        hooks: list[HookRecord] = []
        try:
            names = os.listdir(self.layout.hooks)
        except FileNotFoundError:
            return []
        for name in names:
            if name.startswith(".") or not name.endswith(".json"):
                continue
            try:
                hook = load_record(self.layout.hooks / name, HOOK)
            except CorruptRecordError as exc:
                self.log.warning("corrupt_hook_record_skipped", error=str(exc))
                continue
            if hook is not None:
                hooks.append(hook)
        return sorted(hooks, key=lambda h: (h.created_at, h.hook_id))

    # -- claims and locks ---------------------------------------------------------------
    def claim(self, path: Path, claim: Claim, *, inline: bool) -> str:
        """Publish ``claim`` at ``path`` unless a claim is there; return the holder."""
        held = self._read_claim(path, claim.key)
        if held is not None:
            return held
        self.ensure_layout()
        sync = self.durability != "none"
        if write_exclusive(path, encode_record(claim), sync=sync):
            if sync:
                fsync_dir(path.parent)
            return claim.run_id
        held = self._read_claim(path, claim.key)
        assert held is not None  # published whole by os.link, never deleted by us
        return held

    def _read_claim(self, path: Path, key: str) -> str | None:
        claim = load_record(path, CLAIM)
        if claim is None:
            return None
        if claim.key != key:
            msg = f"idempotency claim {path} holds key {claim.key!r}, not {key!r}"
            raise CorruptRecordError(msg)
        return claim.run_id

    def lock(self, run_id: str, *, inline: bool) -> int:
        """Take the run's execution lock without waiting; return the descriptor holding it.

        Raises:
            RunLockedError: held by someone else (named from the lock file's content).
        """
        self.ensure_layout()
        path = self.layout.run_lock(run_id)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            if not try_flock(fd, exclusive=True, wait=False):
                raise RunLockedError(run_id, holder=_holder(fd, path))
            os.ftruncate(fd, 0)
            os.pwrite(fd, _whoami().encode(), 0)
        except BaseException:
            os.close(fd)
            raise
        return fd

    @staticmethod
    def unlock(fd: int) -> None:
        with suppress(OSError):
            os.ftruncate(fd, 0)
        os.close(fd)


def _whoami() -> str:
    return f"pid {os.getpid()} on {socket.gethostname()}"


def _holder(fd: int, path: Path) -> str:
    text = os.pread(fd, 200, 0).decode("utf-8", "replace").strip()
    if text == _whoami():
        return f"another task of this process (lock file {path})"
    return f"{text or 'another process'} (lock file {path})"
