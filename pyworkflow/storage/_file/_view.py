"""The projection of each run's log, kept exact in memory: what lets record files lag.

The event log is the only file written on every append. Record files are caches of its
projection, written at flush points (see ``_file_store``). A :class:`Live` is this backend
instance's knowledge of one run: the projection of its log up to a :class:`LogMark`, and
the step and hook records that changed since the record files were last written.

Invariants (``F`` is the ``last_sequence`` of the run file ``runs/{run_id}.json``, ``E`` its
``log_end``: the run file is the projection of the log's bytes ``[0, E)``, events ``1..F``):

I1. Flush order: a flush writes the step and hook files first and the run file last. So
    every step or hook file reflects its record at sequence ``F`` or later, never earlier.
I2. Complete flushes: a flush writes every record that changed since the previous flush
    (the flusher's ``Live.steps``/``hooks`` hold at least those; a fresh ``Live`` starts
    from the run file and its tail, so it holds at least what changed after ``F``).
    Hence a step id with no event after ``F`` has its current record on disk, or has none.
I3. Overlap is harmless: step and hook records are folds where each event sets some fields
    from its own data (last writer wins per field). Folding events ``F+1..N`` onto a file
    that already reflects some of them gives the same record as folding onto the record at
    ``F``. The run record is not like that (``step_count`` adds up), which is why it is
    folded from exactly ``E``.

So the exact records of a log at sequence ``N`` are: the run file folded with the events
after ``E``; for a step or hook, its file (or nothing) folded with the events after ``E``
that touch it. :meth:`View.current` computes exactly that, and then keeps it up to date by
folding only the bytes appended since (logs only grow within an inode, see ``_file_log``).
A run file that does not fit its log (missing, corrupt, from an older version, or ahead of
a log that lost its tail to a power loss) is ignored: the whole log is folded again and the
run is marked ``overdue``, so its records are rewritten at the next chance.

Callers hold the run's append lock (shared to read, exclusive to append), so no flush runs
while a ``Live`` is built or read. A ``Live`` in the cache is changed in place only under the
exclusive lock; readers, which may run in several threads at once, put a new one instead.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..._core._events import (
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
    WorkflowContinuedAsNew,
    WorkflowFailed,
    WorkflowResumed,
    WorkflowSuspended,
)
from ..._core._projection import Projection, project
from ..._core._records import HookRecord, StepRecord, WorkflowRun
from ..._exceptions import CorruptRecordError
from ._io import Offload
from ._log import LogMark, ends_a_line, read_log
from ._paths import Layout
from ._records import HOOK, STEP, Lru, load_record, load_run

__all__ = ["FLUSH_BYTES", "INLINE_READ", "RUN_FLUSH", "Live", "View"]

RUN_FLUSH = (
    WorkflowSuspended,
    WorkflowResumed,
    WorkflowCompleted,
    WorkflowFailed,
    WorkflowCancelled,
    WorkflowContinuedAsNew,
    CancellationRequested,
)
"""Events that change a run's status or cancellation flag: they flush all of its records.
Not ``workflow_started``: a run has no run file until its first flush point (its suspension
or end, or ``FLUSH_BYTES`` of log), which spares each short run a file write; readers fold
its log, which is short until then (``View.rebuild`` with ``expected=True``)."""
HOOK_EVENTS = (HookCreated, HookReceived, HookExpired)
STEP_EVENTS = (StepStarted, StepCompleted, StepFailed, StepRetrying)
FLUSH_BYTES = 64 * 1024
"""A run's records are also flushed once its log grew this much past the run file's
``log_end``: it bounds what a cold reader folds and what a ``Live`` holds."""
INLINE_READ = 1 << 20
"""Reads up to this size run on the event loop (page cache: well under a millisecond;
decoding holds the GIL in a worker thread too); bigger ones go to a thread."""

Prior = tuple[dict[str, StepRecord], dict[str, HookRecord]]


@dataclass(slots=True)
class Live:
    """One run's projection up to ``mark``, and what of it is not yet in record files."""

    mark: LogMark
    run: WorkflowRun
    steps: dict[str, StepRecord]
    """Step records changed after ``flushed``: their files may be behind (I2)."""
    hooks: dict[str, HookRecord]
    """Hook records changed after ``flushed`` whose files were not written since."""
    flushed: int
    """The log offset the run file on disk was projected up to (its ``log_end``), as far as
    this instance knows (another process may have flushed later: harmless, see I3)."""
    overdue: bool
    """A flush point passed without a flush (a crash, a failed write, a rebuilt run)."""
    lost_tail: bool = False
    """Folded from the whole log because the run file was ahead of it: the log lost its
    tail, and step files of the lost events may linger until the next flush."""


class View:
    """The :class:`Live` of recently used runs (a bounded LRU), built and kept exact."""

    def __init__(self, layout: Layout, log: Any, size: int) -> None:
        self.layout = layout
        self.log = log
        self._lives: Lru[str, Live] = Lru(size)

    def forget(self) -> None:
        self._lives.clear()

    def pop(self, run_id: str) -> None:
        self._lives.pop(run_id)

    def current(
        self, run_id: str, fd: int, mark: LogMark, *, strict: bool, inline: bool
    ) -> Live | None:
        """The run's projection at ``mark`` (the log's current state); None for a log with
        no events. The caller holds the run's append lock.

        Raises:
            CorruptRecordError: the run file is corrupt and ``strict``, or the log itself
                does not start with ``workflow_started``.
            Offload: ``inline`` and more than ``INLINE_READ`` bytes to read.
        """
        if not mark.last_sequence:
            return None
        live = self._lives.get(run_id)
        if live is not None and live.mark == mark:
            return live
        fresh: Live | None
        if live is not None and mark.extends(live.mark):
            fresh = self._advance(run_id, fd, live, mark, inline=inline)
        else:
            fresh = self._load(run_id, fd, mark, strict=strict, inline=inline)
        if fresh is not None:
            self._lives.put(run_id, fresh)
        return fresh

    def rebuild(
        self,
        run_id: str,
        fd: int,
        mark: LogMark,
        *,
        inline: bool,
        lost_tail: bool = False,
        expected: bool = False,
    ) -> Live | None:
        """Fold the whole log again, ignoring the record files; the run is ``overdue``.

        ``expected``: the run has no run file, which is its normal state until its first
        flush point; if the log has not passed one, the run is not overdue (and nothing is
        reported)."""
        if inline and mark.end > INLINE_READ:
            raise Offload
        scan = read_log(fd, run_id, start=0, size=mark.end, after=0, base=0)
        self.report(run_id, scan.garbage, 0)
        if not scan.events:
            return None
        change = project(None, scan.events)
        overdue = not (expected and not _passed_flush_point(scan.events, mark.end))
        live = Live(mark, change.run, change.steps, change.hooks, 0, overdue, lost_tail)
        self._lives.put(run_id, live)
        if overdue:
            self.log.warning("run_records_rebuilt", run_id=run_id, events=len(scan.events))
        return live

    def commit(self, run_id: str, live: Live | None, change: Projection, mark: LogMark) -> Live:
        """Fold an append (``change``, now in the log up to ``mark``) into the run's Live.
        The caller holds the exclusive append lock."""
        if live is None:
            live = Live(mark, change.run, dict(change.steps), dict(change.hooks), 0, False)
        else:
            live.mark, live.run = mark, change.run
            live.steps.update(change.steps)
            live.hooks.update(change.hooks)
        self._lives.put(run_id, live)
        return live

    def prior(self, live: Live | None, events: Sequence[Event], *, files: bool) -> Prior | None:
        """The current step/hook records that ``events`` update, from ``live`` or (with
        ``files``) from their files; None if a file is corrupt, or a hook that must exist is
        not found (the caller then folds the whole log). Checks every id before anything is
        written. ``files`` is False when ``live`` holds every record of the run (it was
        folded from the whole log and not flushed since: no file is trusted)."""
        steps: dict[str, StepRecord] = {}
        hooks: dict[str, HookRecord] = {}
        seen: set[str] = set()
        try:
            for event in events:
                if isinstance(event, STEP_EVENTS):
                    step_id = event.step_id
                    if step_id in seen:
                        continue
                    seen.add(step_id)
                    path = self.layout.step(step_id)
                    step = live.steps.get(step_id) if live is not None else None
                    if step is None and files:
                        step = load_record(path, STEP)
                    if step is not None:
                        steps[step_id] = step
                elif isinstance(event, HOOK_EVENTS):
                    hook_id = event.hook_id
                    path = self.layout.hook(hook_id)
                    if hook_id in seen or isinstance(event, HookCreated):
                        seen.add(hook_id)
                        continue
                    seen.add(hook_id)
                    hook = live.hooks.get(hook_id) if live is not None else None
                    if hook is None and files:
                        hook = load_record(path, HOOK)
                    if hook is None:
                        return None
                    hooks[hook_id] = hook
        except CorruptRecordError as exc:
            self.log.warning("corrupt_record_rebuilt", error=str(exc))
            return None
        return steps, hooks

    def report(self, run_id: str, garbage: int, torn: int) -> None:
        if garbage:
            self.log.warning("event_log_garbage_skipped", run_id=run_id, lines=garbage)
        if torn:
            self.log.warning("event_log_torn_tail_ignored", run_id=run_id, bytes=torn)

    # -- building ---------------------------------------------------------------------------
    def _advance(self, run_id: str, fd: int, live: Live, mark: LogMark, *, inline: bool) -> Live:
        """``live`` plus the lines appended since (by another process or instance)."""
        if inline and mark.end - live.mark.end > INLINE_READ:
            raise Offload
        base = live.mark.last_sequence
        scan = read_log(fd, run_id, start=live.mark.end, size=mark.end, after=0, base=base)
        self.report(run_id, scan.garbage, 0)
        prior = self.prior(live, scan.events, files=live.flushed > 0)
        if prior is None:
            rebuilt = self.rebuild(run_id, fd, mark, inline=inline)
            assert rebuilt is not None  # the log has events: mark.last_sequence > 0
            return rebuilt
        change = project(live.run, scan.events, *prior)
        steps = {**live.steps, **change.steps}
        hooks = {**live.hooks, **change.hooks}
        return Live(mark, change.run, steps, hooks, live.flushed, live.overdue, live.lost_tail)

    def _load(
        self, run_id: str, fd: int, mark: LogMark, *, strict: bool, inline: bool
    ) -> Live | None:
        """A Live from the run file and the log after its ``log_end``, or from the whole log."""
        missing = False  # no run file at all (not a corrupt one)
        try:
            stored = load_run(self.layout.run(run_id))
            missing = stored is None
        except CorruptRecordError as exc:
            if strict:
                raise
            self.log.warning("corrupt_run_record_rebuilt", run_id=run_id, error=str(exc))
            stored = None
        lost_tail = False
        if stored is not None:
            live = self._from_file(run_id, fd, mark, *stored, inline=inline)
            if live is not None:
                return live
            run, log_end = stored
            lost_tail = run.last_sequence > mark.last_sequence or log_end > mark.end
        return self.rebuild(run_id, fd, mark, inline=inline, lost_tail=lost_tail, expected=missing)

    def _from_file(
        self, run_id: str, fd: int, mark: LogMark, run: WorkflowRun, log_end: int, *, inline: bool
    ) -> Live | None:
        """The run file folded with the log's tail after ``log_end``; None if they don't fit
        together (then the caller folds the whole log)."""
        seq = run.last_sequence
        if log_end == -1 and seq == mark.last_sequence:
            # Written by a version that rewrote every record on each append: a run file
            # at the log's last event vouches for the step and hook files as well.
            log_end = mark.end
        if (
            run.run_id != run_id
            or not 0 < log_end <= mark.end
            or not 0 < seq <= mark.last_sequence
            or not ends_a_line(fd, log_end)
        ):
            return None
        if inline and mark.end - log_end > INLINE_READ:
            raise Offload
        scan = read_log(fd, run_id, start=log_end, size=mark.end, after=0, base=seq)
        first = scan.events[0].sequence if scan.events else seq + 1
        if first != seq + 1 or scan.last_sequence != mark.last_sequence:
            return None
        self.report(run_id, scan.garbage, 0)
        prior = self.prior(None, scan.events, files=True)
        if prior is None:
            return None
        change = project(run, scan.events, *prior)
        overdue = mark.end - log_end >= FLUSH_BYTES or any(
            isinstance(event, RUN_FLUSH) for event in scan.events
        )
        return Live(mark, change.run, change.steps, change.hooks, log_end, overdue)


def _passed_flush_point(events: Sequence[Event], end: int) -> bool:
    """Whether a run's log (``events``, ``end`` bytes) has passed a point where its writer
    flushes the records (so a run file should exist)."""
    return end >= FLUSH_BYTES or any(isinstance(event, RUN_FLUSH) for event in events)
