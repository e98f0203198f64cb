"""The materialized views of one topic prefix: a pure, synchronous fold of the topics.

Every backend instance folds the same records in the same (per-partition) order with the
same rules, so every instance reaches the same views. Nothing here touches Kafka.

Acceptance rule for ``{prefix}.events`` (per partition, in offset order): the records of one
append arrive as one contiguous record batch (``index`` 0..``count``-1). A complete append
is *accepted* iff its events belong to one run, their sequences continue that run's last
accepted sequence (``last + 1, last + 2, ...``) and ``project()`` accepts them (a run starts
with ``workflow_started``). Anything else is *rejected*: it stays in the log and every
reader ignores it. Claims on ``{prefix}.idempotency``: the first claim of a key wins.

Fences (owner epochs): a worker that takes a partition appends a fence with an epoch one
above the partition's current one, and tags its appends with that epoch. A fence is
accepted iff its epoch is above the partition's current epoch; an append tagged with an
epoch below the current one is *rejected* (fenced): its writer lost the partition (a worker
paused past its session timeout, whose partition another worker took meanwhile). Untagged
appends (epoch 0: module-level calls, tools) are rejected too once a partition is fenced: its
runs belong to the workers, and only their holder writes them (no double execution beside
them). Before any fence, every writer may append (local mode, no workers).

A run whose first complete append in the partition starts past sequence 1 has lost its
start: retention deleted the segments that held it (or the topic was recreated). Nobody
can replay it, so the fold marks it *headless* and rejects every later append of it, and
``read``/``run`` raise :class:`RunStartDeletedError` instead of answering "unknown run".
(A writer appends at sequence n > 1 only after reading 1..n-1 from the log, so a run that
is unknown here but appended at n > 1 had its start in the log once.)
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from ..._core._events import Event
from ..._core._projection import Projection, due_at, project
from ..._core._records import HookRecord, RunPage, RunStatus, StepRecord, WorkflowRun
from ..._exceptions import CorruptRecordError
from .._due import DueIndex
from .._paging import page_runs
from ._checkpoint import FINISHED_HORIZON, Snapshot, recent, snapshot_events, snapshot_runs
from ._codec import Claim, EventRecord, Fence

__all__ = ["ENDED_KEPT", "RunStartDeletedError", "Verdict", "Views"]

ENDED_KEPT = 10_000
"""How many finished runs' last records a backend that evicts them keeps (~1 KB each)."""


class RunStartDeletedError(CorruptRecordError):
    """A run's first events are no longer in the events topic (retention deleted them)."""


@dataclass(frozen=True, slots=True)
class Verdict:
    """How the fold decided one complete append."""

    record: EventRecord
    """The append's first record (names its writer and batch)."""
    run_id: str
    last_sequence: int
    """The run's last accepted sequence after the decision."""
    change: Projection | None = None
    """The records the append changed; None when it was rejected."""
    error: CorruptRecordError | None = None
    """Why ``project()`` refused it (rejected for a reason other than a sequence race)."""
    fenced: int = 0
    """The partition's epoch, when the append was rejected for carrying an older one."""
    start: tuple[int, int] = (-1, 0)
    """Where the run starts: the offset of its first record and the partition's epoch
    there (-1: not known, a run restored from a checkpoint written before they were)."""

    @property
    def accepted(self) -> bool:
        return self.change is not None

    def ended_within(self, window: timedelta) -> bool:
        """Whether the append ended its run less than ``window`` ago."""
        run = self.change.run if self.change is not None else None
        if run is None or not run.status.is_finished:
            return False
        return datetime.now(UTC) - (run.completed_at or run.updated_at) < window


class Views:
    """Run logs, run/step/hook records, the due index and idempotency claims, folded from
    the topics.

    Memory: every accepted event stays decoded in ``logs`` (a few hundred bytes per event
    plus its payload), and one record per run, step and hook, and a due entry per unfinished
    run (``due``: fed by every accepted append, like the records).
    """

    def __init__(self, topic: str = "the events topic") -> None:
        self.topic = topic
        self.logs: dict[str, list[Event]] = {}
        self.runs: dict[str, WorkflowRun] = {}
        self.steps: dict[str, StepRecord] = {}
        self.hooks: dict[str, HookRecord] = {}
        self.keys: dict[str, str] = {}
        self.due = DueIndex()
        self._hooks_of_run: dict[str, list[str]] = {}
        self.evict_finished = False
        """Forget a run's log and records once it finished, keeping its id in
        ``finished_lately`` (a worker's backend: it works on what is live)."""
        self._steps_of_run: dict[str, set[str]] = {}
        """While evicting: each run's step ids."""
        self._runs_in: dict[int, set[str]] = {}
        """Each partition's runs (in ``runs`` or ``finished_lately``): checkpoints and drops
        visit those, not every run (a run id's partition is murmur2 of it: slow to redo)."""
        self._partial: dict[int, list[EventRecord]] = {}
        self._partial_at: dict[int, int] = {}
        """The offset of each half-assembled append's first record."""
        self.starts: dict[str, tuple[int, int]] = {}
        """Each folded run's start: the offset of its first record, and the epoch there."""
        self.headless: dict[str, tuple[int, int]] = {}
        """Runs whose start is gone: run id -> (partition, first sequence still in it)."""
        self.epochs: dict[int, int] = {}
        """Each partition's current fence epoch (0: never fenced)."""
        self.holders: dict[int, str] = {}
        """The writer of each partition's current fence."""
        self.ended: OrderedDict[str, WorkflowRun] = OrderedDict()
        """While evicting: the last records of the runs that finished most lately (at most
        :data:`ENDED_KEPT`), so that ``run()`` still answers for them (a worker's schedules
        count their outcomes; a command for one asks whether it is finished)."""
        self.finished_lately: dict[str, datetime] = {}
        """Runs that a restored checkpoint says finished lately (their events are not
        folded): run id -> when. A start of one is rejected as a start of a known run."""

    # -- folding ----------------------------------------------------------------------
    def fold_event(self, partition: int, record: EventRecord, offset: int = -1) -> Verdict | None:
        """Fold one record of an events partition (at ``offset``); a Verdict when it
        completes an append."""
        partial = self._partial.get(partition)
        if record.index == 0:
            partial = self._partial[partition] = [record]
            self._partial_at[partition] = offset
        elif (
            partial is None
            or partial[-1].index != record.index - 1
            or partial[0].writer != record.writer
            or partial[0].batch != record.batch
        ):
            # A fragment with no beginning: never written by this codec. Drop it.
            self._partial.pop(partition, None)
            return None
        else:
            partial.append(record)
        if len(partial) < record.count:
            return None
        del self._partial[partition]
        at = self._partial_at.pop(partition, -1)
        return self._decide(partition, partial[0], [r.event for r in partial], at)

    def fold_fence(self, partition: int, fence: Fence) -> bool:
        """Fold a fence; whether it was accepted (its epoch is the partition's now)."""
        self.drop_partial(partition)  # a fence is a batch of its own
        if fence.epoch <= self.epochs.get(partition, 0):
            return False
        self.epochs[partition] = fence.epoch
        self.holders[partition] = fence.writer
        return True

    def drop_partition(self, partition: int) -> None:
        """Forget everything folded from ``partition`` (its runs, their steps, hooks and due
        times, its fence): a worker that lost it stops folding it. Claims are kept (another
        topic)."""
        gone = self._runs_in.pop(partition, set())
        for run_id in gone:
            self._forget(run_id)
            self.finished_lately.pop(run_id, None)
            self.ended.pop(run_id, None)
        self.steps = {k: step for k, step in self.steps.items() if step.run_id not in gone}
        self.headless = {r: lost for r, lost in self.headless.items() if lost[0] != partition}
        self.epochs.pop(partition, None)
        self.holders.pop(partition, None)
        self.drop_partial(partition)

    def drop_partial(self, partition: int) -> None:
        """Forget a half-assembled append (a corrupt record interrupted it)."""
        self._partial.pop(partition, None)
        self._partial_at.pop(partition, None)

    def _decide(
        self, partition: int, first: EventRecord, events: Sequence[Event], offset: int
    ) -> Verdict:
        run_id = events[0].run_id
        log = self.logs.get(run_id)
        last = len(log) if log else 0  # sequences are 1-based and gap-free
        epoch = self.epochs.get(partition, 0)
        if first.epoch < epoch:  # its writer lost the partition, or never had it
            return Verdict(first, run_id, last, fenced=epoch)
        if run_id in self.headless:
            return Verdict(first, run_id, 0)
        if log is None and run_id in self.finished_lately:  # finished before a checkpoint
            return Verdict(first, run_id, 0)
        if log is None and events[0].sequence > 1:
            self.headless[run_id] = (partition, events[0].sequence)
            return Verdict(first, run_id, 0)
        if any(e.run_id != run_id or e.sequence != last + i for i, e in enumerate(events, start=1)):
            return Verdict(first, run_id, last)
        start = self.starts.get(run_id, (offset, epoch))
        try:
            change = self._accept(partition, run_id, events, start)
        except CorruptRecordError as exc:
            return Verdict(first, run_id, last, error=exc)
        return Verdict(first, run_id, events[-1].sequence, change=change, start=start)

    def _accept(
        self, partition: int, run_id: str, events: Sequence[Event], start: tuple[int, int]
    ) -> Projection:
        """Add accepted events to the run's log and projections (CorruptRecordError, with
        nothing changed, if ``project()`` refuses them)."""
        change = project(self.runs.get(run_id), events, self.steps, self.hooks)
        log = self.logs.get(run_id)
        if log is None:
            self.logs[run_id] = log = []
            self._runs_in.setdefault(partition, set()).add(run_id)
            self.starts[run_id] = start
        log.extend(events)
        self.runs[run_id] = change.run
        self.due.set(run_id, due_at(change.run))
        self.steps.update(change.steps)
        for hook_id, hook in change.hooks.items():
            if hook_id not in self.hooks:
                self._hooks_of_run.setdefault(hook.run_id, []).append(hook_id)
            self.hooks[hook_id] = hook
        if self.evict_finished:
            self._steps_of_run.setdefault(run_id, set()).update(change.steps)
            if change.run.status.is_finished:
                self._forget(run_id)
                self.finished_lately[run_id] = change.run.completed_at or change.run.updated_at
                self.ended[run_id] = change.run
                if len(self.ended) > ENDED_KEPT:
                    self.ended.popitem(last=False)
        return change

    def _forget(self, run_id: str) -> None:
        """Drop the run's log and records (not its id in ``finished_lately``)."""
        self.logs.pop(run_id, None)
        self.runs.pop(run_id, None)
        self.starts.pop(run_id, None)
        self.due.set(run_id, None)
        for hook_id in self._hooks_of_run.pop(run_id, ()):
            self.hooks.pop(hook_id, None)
        for step_id in self._steps_of_run.pop(run_id, ()):
            self.steps.pop(step_id, None)

    def prune_finished(
        self, partition: int, now: datetime, remember: Collection[str] | None
    ) -> None:
        """Forget the finished runs of ``partition`` whose start can't come again: those
        not in ``remember``, or (None) those past the horizon (``_checkpoint``)."""
        members = self._runs_in.get(partition, set())
        for run_id in [r for r in members if r in self.finished_lately]:
            at = self.finished_lately[run_id]
            if (remember is not None and run_id not in remember) or now - at >= FINISHED_HORIZON:
                del self.finished_lately[run_id]
                members.discard(run_id)

    # -- checkpoints ------------------------------------------------------------------
    def snapshot(
        self, partition: int, offset: int, now: datetime, remember: Collection[str] | None = None
    ) -> Snapshot | None:
        """The partition's fold state at ``offset`` (the position after the last record
        folded); None while an append of it is half-folded (no checkpoint can be cut).
        Finished runs kept: those in ``remember``, or (None) those finished lately."""
        if partition in self._partial:
            return None
        live: list[list[Event]] = []
        starts: dict[str, tuple[int, int]] = {}
        finished: list[tuple[str, datetime]] = []
        for run_id in self._runs_in.get(partition, ()):
            run = self.runs.get(run_id)
            if run is None:
                finished.append((run_id, self.finished_lately[run_id]))
            elif run.status.is_finished:
                finished.append((run_id, run.completed_at or run.updated_at))
            else:
                live.append(self.logs[run_id])
                starts[run_id] = self.starts.get(run_id, (-1, 0))
        if remember is not None:
            finished = [(run_id, at) for run_id, at in finished if run_id in remember]
        return Snapshot(
            partition,
            offset,
            self.epochs.get(partition, 0),
            self.holders.get(partition, ""),
            snapshot_events(live),
            recent(finished, now),
            starts,
        )

    def restore(self, snapshot: Snapshot, where: str) -> None:
        """Fold a checkpoint of a partition this fold holds nothing of."""
        partition = snapshot.partition
        if snapshot.epoch:
            self.epochs[partition] = snapshot.epoch
            self.holders[partition] = snapshot.holder
        for events in snapshot_runs(snapshot, where):
            run_id = events[0].run_id
            self._accept(partition, run_id, events, snapshot.starts.get(run_id, (-1, 0)))
        self.finished_lately.update(snapshot.finished)
        self._runs_in.setdefault(partition, set()).update(r for r, _ in snapshot.finished)

    def fold_claim(self, key: str, claim: Claim) -> str:
        """Fold one idempotency claim; return the run id holding ``key`` (first wins)."""
        return self.keys.setdefault(key, claim.run_id)

    # -- queries ----------------------------------------------------------------------
    def last_sequence(self, run_id: str) -> int:
        log = self.logs.get(run_id)
        return len(log) if log else 0

    def read(self, run_id: str, after: int) -> list[Event]:
        """The run's events after ``after``; RunStartDeletedError for a headless run."""
        log = self.logs.get(run_id)
        if not log:
            self.check_head(run_id)
            return []
        return log[after:] if after > 0 else list(log)

    def run(self, run_id: str) -> WorkflowRun | None:
        """The run's record (None: unknown); RunStartDeletedError for a headless run."""
        found = self.runs.get(run_id) or self.ended.get(run_id)
        if found is None:
            self.check_head(run_id)
        return found

    def check_head(self, run_id: str) -> None:
        """Raise RunStartDeletedError if the run's start is no longer in the topic."""
        lost = self.headless.get(run_id)
        if lost is None:
            return
        partition, sequence = lost
        msg = (
            f"run {run_id!r}: partition {partition} of topic {self.topic!r} holds its events "
            f"from sequence {sequence} on, but not sequences 1-{sequence - 1}: retention "
            "deleted the start of the run (retention.ms / retention.bytes of the topic), or "
            "the topic was recreated. The run can't be replayed or resumed; keep retention "
            "unlimited on the events topic (the default) for runs that must survive"
        )
        raise RunStartDeletedError(msg)

    def list_runs(
        self, status: RunStatus | None, workflow_name: str | None, limit: int, cursor: str | None
    ) -> RunPage:
        return page_runs(
            self.runs.values(),
            status=status,
            workflow_name=workflow_name,
            limit=limit,
            cursor=cursor,
        )

    def list_hooks(self, run_id: str | None) -> list[HookRecord]:
        if run_id is not None:
            if run_id not in self._hooks_of_run:
                self.check_head(run_id)
            return [self.hooks[h] for h in self._hooks_of_run.get(run_id, ())]
        return sorted(self.hooks.values(), key=lambda h: h.created_at)
