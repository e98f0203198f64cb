"""One append to a run's log, in phases, so that a group commit can run between them.

``FileStore.append`` builds an :class:`AppendTx`; the backend drives it:

1. :meth:`AppendTx.begin`: take the run's append lock (held until :meth:`finish` or
   :meth:`abort`), check the expected sequence, fold the events (``project()``), make the
   run's new ``.due/`` entry and its ``.created/`` line if the append needs them (the
   indexes' invariant I1: before the log line). Their paths go to ``pre``.
2. barrier over ``pre`` (``_commit.GroupCommit``), if not empty.
3. :meth:`AppendTx.write`: write the log lines (the commit point) and, at a flush point,
   the record files' contents to temp files beside them. Their paths go to ``post``.
4. barrier over ``post``, if the durability setting asks for it: the append is durable.
5. :meth:`AppendTx.publish`: rename the step and hook temp files into place; their folders
   go to ``names``. 6. barrier over ``names``. 7. :meth:`AppendTx.finish`: rename the run
   file into place (the step and hook files it vouches for are durable before it:
   ``_view``'s I1 survives a power loss), update the caches, unlock, and remove the run's
   old ``.due/`` entry (I1: last).

A failure up to step 4 undoes the append (:meth:`AppendTx.abort`: the log cut back, temp
files and the new due entry removed): it was never acknowledged. A failure after it leaves
the record files behind the log, which is harmless: the run is marked ``overdue`` and its
records are written again later (``_view``). The run file's rename is not waited for: if a
power loss drops it, readers fold the log from the older run file (or from the top).

``durability="none"`` (and an append that needs no barrier) runs all phases in one call.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Sequence
from contextlib import suppress
from datetime import datetime
from typing import TYPE_CHECKING, NamedTuple

from ..._core._events import Event, WorkflowStarted
from ..._core._projection import DUE_EVENTS, Projection, due_at
from .._port import check_append
from ._io import Offload, SyncSet, try_flock, write_all, write_temp
from ._log import LogMark
from ._records import encode_record, encode_run
from ._view import Live

if TYPE_CHECKING:
    from ._store import FileStore

__all__ = ["AppendTx", "Due", "Move", "RecordFlush", "move_of", "open_log"]

_INLINE_FILES = 8
"""A flush writing more record files than this runs in a worker thread."""


def open_log(path: str, *, create: bool = False, write: bool = True) -> int | None:
    flags = (os.O_RDWR | os.O_APPEND if write else os.O_RDONLY) | os.O_CLOEXEC
    try:
        return os.open(path, flags | (os.O_CREAT if create else 0), 0o644)
    except FileNotFoundError:
        return None


class Due(NamedTuple):
    """The record files an append makes due."""

    full: bool
    """All changed records and the run file (a flush point)."""
    steps: tuple[str, ...]
    hooks: tuple[str, ...]

    def files(self, move: Move | None = None) -> int:
        return (
            len(self.steps)
            + len(self.hooks)
            + self.full
            + (move is not None and move[1] is not None)
        )

    def blocks(self, move: Move | None = None, *, fsync: bool) -> bool:
        """Whether writing these files (and a due entry) may block the event loop: many
        files, or (``fsync``) any file synced in place."""
        files = self.files(move)
        return files > _INLINE_FILES or (files > 0 and fsync)


Move = tuple[datetime | None, datetime | None]
"""A run's due time before and after an append that changes it."""


def move_of(live: Live | None, change: Projection, events: Sequence[Event]) -> Move | None:
    """How the append of ``events`` moves the run in the due index; None: it doesn't."""
    if not any(isinstance(event, DUE_EVENTS) for event in events):
        return None  # steps and timers never move it: the hot path pays nothing
    before = due_at(live.run) if live is not None else None
    after = due_at(change.run)
    return None if before == after else (before, after)


class RecordFlush:
    """Writing a run's due record files: contents to temp files, then the step and hook
    files renamed into place, then the run file (``_view``'s I1)."""

    def __init__(self, store: FileStore, run_id: str, live: Live, due: Due) -> None:
        self.store, self.run_id, self.live, self.due = store, run_id, live, due
        self.steps = [(s, live.steps[s]) for s in due.steps if s in live.steps]
        self.hooks = [(h, live.hooks[h]) for h in due.hooks if h in live.hooks]
        self.end = live.mark.end
        self.temps: list[tuple[str, str]] = []
        self.run_temp: tuple[str, str] | None = None

    def __bool__(self) -> bool:
        return bool(self.steps or self.hooks or self.due.full)

    def stage(self, sync: SyncSet | None) -> None:
        """Write every file's content to a temp file beside it; with ``sync``, add the temp
        files to it (their data must be durable before their names are)."""
        layout = self.store.layout
        files = [(layout.step(i), encode_record(step)) for i, step in self.steps]
        files += [(layout.hook(i), encode_record(hook)) for i, hook in self.hooks]
        if self.due.full:
            files.append((layout.run(self.run_id), encode_run(self.live.run, self.end)))
        try:
            for path, data in files:
                self.temps.append((write_temp(path, data, sync=False), path))
        except BaseException:
            self.discard()
            raise
        if self.due.full:
            self.run_temp = self.temps.pop()
        if sync is not None:
            sync.files |= {temp for temp, _ in self.temps}
            if self.run_temp is not None:
                sync.files.add(self.run_temp[0])

    def publish_records(self, sync: SyncSet | None) -> bool:
        """Rename the step and hook files into place; with ``sync``, add their folders.
        False (logged, the run ``overdue``) if that failed."""
        try:
            while self.temps:
                temp, path = self.temps[-1]
                os.replace(temp, path)
                self.temps.pop()
                if sync is not None:
                    sync.folders.add(os.path.dirname(path))
        except OSError as exc:
            self.failed(exc)
            return False
        return True

    def publish_run(self) -> None:
        """Rename the run file into place and mark the records flushed (after the step and
        hook files it vouches for are durable, when the setting asks for it)."""
        live = self.live
        try:
            if self.run_temp is not None:
                os.replace(*self.run_temp)
                self.run_temp = None
            if self.due.full and live.lost_tail:
                self.store.drop_lost_steps(self.run_id, live)
        except OSError as exc:
            self.failed(exc)
            return
        for step_id, step in self.steps:
            if live.steps.get(step_id) is step:
                del live.steps[step_id]
        for hook_id, hook in self.hooks:
            if live.hooks.get(hook_id) is hook:
                del live.hooks[hook_id]
        if self.due.full:
            live.flushed, live.overdue = self.end, False

    def failed(self, exc: OSError) -> None:
        """The records stay behind the log: the next append or read writes them again."""
        self.discard()
        self.live.overdue = True
        self.store.log.error("record_write_failed", run_id=self.run_id, error=str(exc))

    def discard(self) -> None:
        temps = [temp for temp, _ in self.temps]
        if self.run_temp is not None:
            temps.append(self.run_temp[0])
        self.temps, self.run_temp = [], None
        for temp in temps:
            with suppress(OSError):
                os.unlink(temp)


class AppendTx:
    """One append of ``events`` to ``run_id``'s log (see the module docstring)."""

    def __init__(
        self,
        store: FileStore,
        run_id: str,
        events: Sequence[Event],
        expected: int,
        payload: bytes,
        sync: bool,
    ) -> None:
        self.store, self.run_id, self.events = store, run_id, events
        self.expected, self.payload = expected, payload
        self.sync = sync
        """The log must be durable before the append returns."""
        self.grouped = store.durability != "none"
        """Index entries and record files are made durable too (by barriers)."""
        # "none" never fills them: one empty set stands for all three
        self.pre = SyncSet()
        self.post = SyncSet() if self.grouped else self.pre
        self.names = SyncSet() if self.grouped else self.pre
        self.inline = True
        self.done = False
        self._lock: int | None = None
        self._fd: int | None = None
        self._live: Live | None = None
        self._change: Projection | None = None
        self._start = 0
        self._written = False
        self._created = False
        self._entry: datetime | None = None
        self._move: Move | None = None
        self._flush: RecordFlush | None = None

    # -- phases ---------------------------------------------------------------------------
    def begin(self, *, inline: bool) -> None:
        """Lock, check, fold and make the index entries; with no barrier needed, do the
        whole append (``done``).

        Raises:
            Offload: ``inline`` and it would block (a held lock, a long read, many files),
                before any side effect.
        """
        store, run_id, events = self.store, self.run_id, self.events
        store.ensure_layout()
        self.inline = inline
        lock = os.open(
            store.layout.append_lock(run_id), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644
        )
        try:
            if not try_flock(lock, exclusive=True, wait=not inline):
                raise Offload
            self._fd = fd = open_log(store.layout.log(run_id))
            mark = store.sync_log_mark(fd, run_id, repair=True) if fd is not None else None
            check_append(run_id, events, self.expected, mark.last_sequence if mark else 0)
            live, self._change = store.project_append(run_id, fd, mark, events, inline=inline)
            self._live = live
            self._start = mark.end if mark is not None else 0
            due = store.due_records(
                run_id, live, self._change, events, self._start + len(self.payload)
            )
            self._move = move = move_of(live, self._change, events)
            if inline and due.blocks(move, fsync=False):
                raise Offload
        except BaseException:
            self._close()
            os.close(lock)
            raise
        self._lock = lock
        self._due = due
        try:
            self._index()
            if self.pre or self.sync or (self.grouped and due.files()):
                return  # the backend runs the barriers and the next phases
            self.write()
        except BaseException:
            self.abort()
            raise
        self.publish()
        self.finish()

    def _index(self) -> None:
        store, run_id, events = self.store, self.run_id, self.events
        later = self.pre if self.grouped else None
        move = self._move
        if move is not None and move[1] is not None:  # I1: the new entry first
            store.index.add(move[1], run_id, sync=self.grouped, later=later)
            self._entry = move[1]
        # a new log, or one left empty by a failed first append
        self._created = self._fd is None or self._start == 0
        if self._created and isinstance(events[0], WorkflowStarted):  # _created's I1
            first = events[0]
            store.created.add(
                first.timestamp, run_id, first.workflow_name, sync=self.sync, later=later
            )

    def write(self, *, inline: bool = True) -> None:
        """Write the log lines and stage the record files (paths to make durable: ``post``)."""
        store = self.store
        if self._fd is None:
            self._fd = open_log(store.layout.log(self.run_id), create=True)
            assert self._fd is not None
        self._written = True
        try:
            write_all(self._fd, self.payload)
        except BaseException:
            self._cut()
            self._written = False
            raise
        if self.sync:
            self.post.files.add(store.layout.log(self.run_id))
            if self._created:
                self.post.folders.add(store.layout.events)
        st = os.fstat(self._fd)
        mark = LogMark(st.st_ino, st.st_mtime_ns, st.st_size, self.events[-1].sequence)
        assert self._change is not None
        # The caches learn the append now; abort() forgets the run if it is undone.
        store.remember_mark(self.run_id, mark)
        self._live = live = store.view.commit(self.run_id, self._live, self._change, mark)
        due = self._due
        flush = (
            RecordFlush(store, self.run_id, live, due)
            if due.full or due.steps or due.hooks
            else None
        )
        if flush:
            try:
                flush.stage(self.post if self.grouped else None)
            except OSError as exc:  # the append stands: only its records lag
                flush.failed(exc)
            else:
                self._flush = flush

    def publish(self, *, inline: bool = True) -> None:
        """The append is durable: rename the step and hook files into place."""
        flush = self._flush
        if flush is not None and not flush.publish_records(self.names if self.grouped else None):
            self._flush = None

    def records_failed(self, exc: OSError) -> None:
        """The barrier over the step and hook files' names failed: the run file must not
        vouch for them."""
        if self._flush is not None:
            self._flush.failed(exc)
            self._flush = None

    def finish(self, *, inline: bool = True) -> None:
        """Rename the run file into place, unlock, and drop the run's old due entry."""
        try:
            if self._flush is not None:
                self._flush.publish_run()
        finally:
            self._release()
        self.done = True
        move = self._move
        if move is not None and move[0] is not None:  # I1: the old entry last
            self.store.unindex(self.run_id, move[0])

    def abort(self) -> None:
        """Undo an append that failed before it was durable, and unlock."""
        try:
            if self._flush is not None:
                self._flush.discard()
            if self._written:
                self._cut()
            if self._entry is not None:
                with suppress(OSError):
                    self.store.index.remove(self._entry, self.run_id)
        finally:
            if self._written:
                self.store.forget_run(self.run_id)
            self._release()

    # -- plumbing ---------------------------------------------------------------------------
    def _cut(self) -> None:
        """Cut the append off the log (it was not acknowledged: leave no trace). If that
        fails the log may end with part of it: raised as ``EIO``, which the backend reports
        as permanent."""
        assert self._fd is not None
        try:
            os.ftruncate(self._fd, self._start)
        except OSError as failed:
            msg = (
                f"an append could not be cut off the log ({failed.strerror or failed}); "
                "the log may end with part of it"
            )
            raise OSError(errno.EIO, msg) from failed

    def _close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def _release(self) -> None:
        self._close()
        if self._lock is not None:
            os.close(self._lock)  # closing the only descriptor releases the flock
            self._lock = None
