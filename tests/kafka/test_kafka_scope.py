"""A backend that folds only some partitions of the events topic (a worker's: the ones it
owns): what it reads, what it drops, and what it refuses."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from aiokafka.partitioner import murmur2

from pyworkflow import ConfigurationError, StorageError
from pyworkflow._core._events import StepStarted
from pyworkflow.storage import KafkaStorageBackend
from tests.storage.helpers import History, started

from .conftest import MakeBackend

PARTITIONS = 4
FAR = datetime(2999, 1, 1, tzinfo=UTC)


def _in(partition: int) -> History:
    """A history whose run lands in ``partition``."""
    while True:
        h = History()
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
