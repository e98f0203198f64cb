"""A backend that folds only some partitions of the events topic (a worker's: the ones it
owns): what it reads, what it drops, and what it refuses."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from aiokafka.partitioner import murmur2

from pyworkflow import ConfigurationError, ConflictError, RunStatus, StorageError
from pyworkflow._core._events import StepStarted, WorkflowCompleted
from pyworkflow.storage import KafkaStorageBackend
from tests.storage.helpers import History, raw, started

from .conftest import MakeBackend

PARTITIONS = 4
FAR = datetime(2999, 1, 1, tzinfo=UTC)


def _in(partition: int, start: datetime | None = None) -> History:
    """A history whose run lands in ``partition``."""
    while True:
        h = History() if start is None else History(start=start)
        if (murmur2(h.run_id.encode()) & 0x7FFFFFFF) % PARTITIONS == partition:
            return h


async def test_a_scoped_backend_folds_reads_and_drops_only_its_partitions(
    make_backend: MakeBackend, kafka_bootstrap: str, kafka_topic_prefix: str
) -> None:
    writer = await make_backend(partitions=PARTITIONS)
    runs = {p: _in(p) for p in range(PARTITIONS)}
    for h in runs.values():
        await writer.append(h.run_id, [started(h)], expected_sequence=0)

    scoped = KafkaStorageBackend(
        kafka_bootstrap, topic_prefix=kafka_topic_prefix, partitions=PARTITIONS
    )
    try:
        await scoped.fold_partitions({1})  # before start: the start-up reads only these
        assert [r.run_id for r in (await scoped.list_runs()).runs] == [runs[1].run_id]
        assert await scoped.read(runs[1].run_id) == runs[1].events
        with pytest.raises(StorageError, match=r"partition 0 of topic .*does not fold"):
            await scoped.read(runs[0].run_id)

        await scoped.fold_partitions({1, 2})  # added: read from their start
        assert await scoped.read(runs[2].run_id) == runs[2].events
        step = runs[2].step(StepStarted, 1, "s")
        await scoped.append(runs[2].run_id, [step], expected_sequence=1)  # writes go on
        assert len(await writer.read(runs[2].run_id)) == 2

        await scoped.fold_partitions({2})  # removed: dropped
        assert {r.run_id for r in (await scoped.list_runs()).runs} == {runs[2].run_id}
        with pytest.raises(StorageError, match="partition 1"):
            await scoped.get_run(runs[1].run_id)
        due = [run_id for _, run_id in await scoped.due_runs(FAR, limit=10)]
        assert due == [runs[2].run_id]  # running: due at once; only its own partitions

        await scoped.fold_partitions(None)  # all again
        assert len((await scoped.list_runs()).runs) == PARTITIONS
        assert len(await scoped.read(runs[2].run_id)) == 2  # folded once, not twice

        with pytest.raises(ConfigurationError, match=r"partitions 0-3; \[9\]"):
            await scoped.fold_partitions({1, 9})
    finally:
        await scoped.aclose()


async def test_a_partition_is_folded_from_its_newest_checkpoint(
    make_backend: MakeBackend, kafka_bootstrap: str, kafka_topic_prefix: str
) -> None:
    """A checkpoint holds the partition's live runs and lately finished ones at an offset;
    a backend that folds the partition later starts from it: the live runs read in full,
    a finished run is not folded (its start again is refused as a start of a known run),
    and what was appended after the checkpoint is folded on top."""
    writer = await make_backend(partitions=PARTITIONS)
    now = datetime.now(UTC)  # runs finished lately (not past the horizon) are remembered
    live, done, later = _in(1, now), _in(1, now), _in(1, now)
    for h in (live, done):
        await writer.append(h.run_id, [started(h)], expected_sequence=0)
    step = live.step(StepStarted, 1, "s")
    await writer.append(live.run_id, [step], expected_sequence=1)
    end = done.add(WorkflowCompleted, result=raw(1))
    await writer.append(done.run_id, [end], expected_sequence=1)
    await writer.fold_partitions({1})
    offset = await writer.checkpoint(1)
    assert offset is not None and await writer.checkpoint(1) is None  # nothing new
    await writer.append(later.run_id, [started(later)], expected_sequence=0)

    reader = KafkaStorageBackend(
        kafka_bootstrap, topic_prefix=kafka_topic_prefix, partitions=PARTITIONS
    )
    try:
        await reader.fold_partitions(())
        await reader.fold_partitions({1})
        assert await reader.read(live.run_id) == live.events
        assert await reader.read(later.run_id) == later.events
        assert await reader.read(done.run_id) == []  # finished before: not folded
        with pytest.raises(ConflictError):  # a start delivered again starts nothing
            await reader.append(done.run_id, done.events[:1], expected_sequence=0)
        due = {run_id for _, run_id in await reader.due_runs(FAR, limit=10)}
        assert due == {live.run_id, later.run_id}
        run = await reader.get_run(live.run_id)
        assert run is not None and run.last_sequence == 2
    finally:
        await reader.aclose()


async def test_a_checkpoint_remembers_the_finished_runs_it_is_told_to(
    make_backend: MakeBackend, kafka_bootstrap: str, kafka_topic_prefix: str
) -> None:
    """A worker passes the runs of its start commands not committed yet: only those of the
    finished runs are remembered (a start of one again starts nothing); a finished run whose
    start was committed is forgotten (its start never comes again)."""
    writer = await make_backend(partitions=PARTITIONS)
    now = datetime.now(UTC)
    pending, committed = _in(1, now), _in(1, now)
    for h in (pending, committed):
        await writer.append(h.run_id, [started(h)], expected_sequence=0)
        end = h.add(WorkflowCompleted, result=raw(1))
        await writer.append(h.run_id, [end], expected_sequence=1)
    await writer.fold_partitions({1})
    assert await writer.checkpoint(1, remember={pending.run_id}) is not None

    reader = KafkaStorageBackend(
        kafka_bootstrap, topic_prefix=kafka_topic_prefix, partitions=PARTITIONS
    )
    try:
        await reader.fold_partitions(())
        await reader.fold_partitions({1})
        with pytest.raises(ConflictError):
            await reader.append(pending.run_id, pending.events[:1], expected_sequence=0)
        assert await reader.read(committed.run_id) == []  # forgotten
    finally:
        await reader.aclose()


async def test_a_scoped_backend_keeps_only_the_id_and_last_record_of_a_finished_run(
    make_backend: MakeBackend,
) -> None:
    """A worker's backend (scoped) works on what is live: a run's log, steps and hooks are
    dropped once it finished; its id is kept so that its start again starts nothing, and
    its last record among the 10,000 runs that ended most lately (a worker's schedules
    count their outcomes). The log still holds it for every backend that folds all."""
    scoped = await make_backend(partitions=PARTITIONS)
    await scoped.fold_partitions({1})
    h = _in(1, datetime.now(UTC))
    await scoped.append(h.run_id, [started(h)], expected_sequence=0)
    assert len(await scoped.read(h.run_id)) == 1  # live: kept
    await scoped.append(h.run_id, [h.add(WorkflowCompleted, result=raw(1))], expected_sequence=1)
    assert await scoped.read(h.run_id) == []
    run = await scoped.get_run(h.run_id)
    assert run is not None and run.status is RunStatus.COMPLETED
    core = scoped._core
    assert core is not None and h.run_id not in core.views.runs  # not among the live ones
    with pytest.raises(ConflictError):
        await scoped.append(h.run_id, h.events[:1], expected_sequence=0)
    everything = await make_backend(partitions=PARTITIONS)
    assert await everything.read(h.run_id) == h.events


async def test_a_linked_start_again_finds_a_finished_run_a_worker_dropped(
    make_backend: MakeBackend,
) -> None:
    """A parent recovered on a worker starts its child again (idempotent, derived id): the
    child finished meanwhile and the worker's backend dropped its log. The start finds the
    run there (its record) and starts nothing, instead of calling the id a stranger's."""
    from pyworkflow._execution._linked import start_linked

    scoped = await make_backend(partitions=PARTITIONS)
    await scoped.fold_partitions({1})
    h = _in(1, datetime.now(UTC))
    first = started(h)
    assert await start_linked(scoped, first, lambda _: True) is True
    await scoped.append(h.run_id, [h.add(WorkflowCompleted, result=raw(1))], expected_sequence=1)
    assert await scoped.read(h.run_id) == []  # dropped: finished
    assert await start_linked(scoped, first, lambda _: True) is False
