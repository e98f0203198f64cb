"""A client's backend folds each events partition from its newest checkpoint: the runs that
finished before it are answered from ``{prefix}.runs`` and from their own events, read from
where each run starts, never by folding the partition's history."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from aiokafka.partitioner import murmur2

from pyworkflow import CorruptRecordError, RunStatus
from pyworkflow._core._events import StepCompleted, StepStarted, WorkflowCompleted
from pyworkflow._core._records import WorkflowRun
from pyworkflow.storage import KafkaStorageBackend
from pyworkflow.storage._kafka._codec import decode_record
from tests.storage.helpers import History, full_history, raw, started

from .conftest import MakeBackend
from .helpers import delete_records, records

PARTITIONS = 2


def _in(partition: int) -> History:
    while True:
        h = History(start=datetime.now(UTC))
        if (murmur2(h.run_id.encode()) & 0x7FFFFFFF) % PARTITIONS == partition:
            return h


async def _write(writer: KafkaStorageBackend, h: History, events: list) -> None:  # type: ignore[type-arg]
    for i, event in enumerate(events):
        await writer.append(h.run_id, [event], expected_sequence=i)


def _folded(backend: KafkaStorageBackend) -> dict:  # type: ignore[type-arg]
    core = backend._core  # what the backend holds in memory
    assert core is not None
    return core.views.logs


async def test_a_client_answers_runs_finished_before_the_checkpoint_without_folding_them(
    make_backend: MakeBackend, kafka_bootstrap: str, kafka_topic_prefix: str
) -> None:
    writer = await make_backend(partitions=PARTITIONS)
    done, live, later = _in(1), _in(1), _in(1)
    events, hook_id = full_history(done)
    await _write(writer, done, events)
    await _write(writer, live, [started(live), live.step(StepStarted, 1, "s")])
    assert await writer.checkpoint(1) is not None
    await _write(writer, later, [started(later)])
    everything = await make_backend(partitions=PARTITIONS, fold_history=True)
    await writer.aclose()  # its projections are flushed to the runs topic

    client = await make_backend(partitions=PARTITIONS)  # the default: from checkpoints
    assert set(_folded(client)) == {live.run_id, later.run_id}  # not the finished run
    assert await client.read(done.run_id) == events
    assert await client.read(done.run_id, after=5) == events[5:]
    assert await client.get_run(done.run_id) == await everything.get_run(done.run_id)
    step_id = done.step_id(2)
    assert await client.get_step(step_id) == await everything.get_step(step_id)
    assert await client.list_hooks(done.run_id) == await everything.list_hooks(done.run_id)
    assert [h.hook_id for h in await client.list_hooks(done.run_id)] == [hook_id]
    assert await client.wait_finished(done.run_id) == await everything.get_run(done.run_id)
    page, full = await client.list_runs(), await everything.list_runs()
    assert [r.run_id for r in page.runs] == [r.run_id for r in full.runs]
    assert page.runs == full.runs
    assert (await client.list_runs(status=RunStatus.COMPLETED)).runs == [
        await everything.get_run(done.run_id)
    ]
    assert await client.get_run(_in(1).run_id) is None  # unknown stays unknown
    assert set(_folded(client)) == {live.run_id, later.run_id}  # nothing folded by reading
    assert set(_folded(everything)) == {done.run_id, live.run_id, later.run_id}


async def test_a_stale_runs_record_is_read_again_from_the_runs_events(
    make_backend: MakeBackend,
) -> None:
    """A writer that died between an append and its projection leaves a stale record in
    the runs topic ("running" for a finished run): a client reads the run's events."""
    writer = await make_backend(partitions=PARTITIONS)
    core = writer._core
    assert core is not None
    queue = core._publisher.queue

    def lose_the_last(sequence: int, change, start) -> None:  # type: ignore[no-untyped-def]
        if not change.run.status.is_finished:
            queue(sequence, change, start)

    core._publisher.queue = lose_the_last  # type: ignore[method-assign]
    h = _in(0)
    events = [started(h), h.step(StepStarted, 1, "s"), h.step(StepCompleted, 1, "s", result=raw(2))]
    events.append(h.add(WorkflowCompleted, result=raw(2)))
    await _write(writer, h, events)
    assert await writer.checkpoint(0) is not None
    await writer.aclose()

    client = await make_backend(partitions=PARTITIONS)
    assert h.run_id not in _folded(client)
    run = await client.get_run(h.run_id)
    assert run is not None and run.status is RunStatus.COMPLETED and run.result == 2
    (listed,) = (await client.list_runs()).runs
    assert listed.status is RunStatus.COMPLETED
    assert await client.read(h.run_id) == events


async def test_a_run_whose_events_retention_deleted_is_an_explicit_error(
    make_backend: MakeBackend, kafka_bootstrap: str
) -> None:
    """Its record still answers; its events raise RunStartDeletedError (a
    CorruptRecordError), never an empty list."""
    writer = await make_backend(partitions=PARTITIONS)
    h = _in(0)
    events = [started(h), h.add(WorkflowCompleted, result=raw(1))]
    await _write(writer, h, events)
    assert await writer.checkpoint(0) is not None
    await writer.aclose()
    await delete_records(kafka_bootstrap, f"{writer.topic_prefix}.events", 0, before=2)

    client = await make_backend(partitions=PARTITIONS)
    run = await client.get_run(h.run_id)
    assert run is not None and run.status is RunStatus.COMPLETED
    with pytest.raises(CorruptRecordError, match=r"retention deleted its events"):
        await client.read(h.run_id)


async def test_fold_history_folds_every_partition_from_its_start(
    make_backend: MakeBackend,
) -> None:
    writer = await make_backend(partitions=PARTITIONS)
    h = _in(0)
    await _write(writer, h, [started(h), h.add(WorkflowCompleted, result=raw(1))])
    assert await writer.checkpoint(0) is not None
    audit = await make_backend(partitions=PARTITIONS, fold_history=True)
    assert h.run_id in _folded(audit)
    assert await audit.read(h.run_id) == h.events


async def test_a_worker_taking_a_partition_republishes_runs_ended_lately_by_another(
    make_backend: MakeBackend, kafka_bootstrap: str
) -> None:
    """The owner that ended a run may die before publishing its last record: the worker
    that takes the partition over publishes it again (runs ended in the last 10 minutes;
    older ones were republished by the takeover after their end)."""
    writer = await make_backend(partitions=PARTITIONS)
    core = writer._core
    assert core is not None
    core._publisher.queue = lambda sequence, change, start: None  # type: ignore[method-assign]
    lately, long_ago = _in(0), History(start=datetime(2020, 1, 1, tzinfo=UTC))
    while (murmur2(long_ago.run_id.encode()) & 0x7FFFFFFF) % PARTITIONS != 0:
        long_ago = History(start=datetime(2020, 1, 1, tzinfo=UTC))
    for h in (lately, long_ago):
        await _write(writer, h, [started(h), h.add(WorkflowCompleted, result=raw(1))])
    await writer.aclose()  # published nothing: as if it died

    taker = KafkaStorageBackend(
        kafka_bootstrap, topic_prefix=writer.topic_prefix, partitions=PARTITIONS
    )
    await taker.fold_partitions(())  # a worker's: folds nothing until the group assigns
    await taker.fold_partitions({0})
    await taker.aclose()  # flushes its projections
    published = {
        m.key.decode(): decode_record(m.value, WorkflowRun, "runs")[1]
        for m in await records(kafka_bootstrap, f"{writer.topic_prefix}.runs")
    }
    assert published[lately.run_id].status is RunStatus.COMPLETED
    assert long_ago.run_id not in published
