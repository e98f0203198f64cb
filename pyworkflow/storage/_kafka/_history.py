"""What a reader that folds from checkpoints can still tell of the runs before them.

A backend folds each events partition from its newest checkpoint (``_checkpoint``): its
views hold the runs live at the checkpoint and everything appended since. A run that
finished before it is answered from two sources instead of the whole log in memory:

* its record, from ``{prefix}.runs`` (:class:`RunsTable`): the compacted topic of the newest
  record of each run, read on the first such query and kept current by catching up with it
  at each one after (one ``ListOffsets`` round trip plus what was published since);
* its events, steps and hooks, from its events partition, read from the offset where the run
  starts (which its runs record names) until its end (:func:`scan_run`), and folded with the
  same rule as every reader, the partition's fences included. This costs what the partition
  received during the run's life, and a consumer's connection.

A runs record can be stale: its writer died after an append and before publishing its
projection. A record that says "not finished" for a run that is not live in the views is
such a one (every run live at the checkpoint or started after it is in the views), and the
run's events are read instead. Workers republish the last record of every run that ends in
their partitions by another writer's append (a takeover), so the records of finished runs
are complete once a checkpoint has forgotten them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError

from ..._core._records import WorkflowRun
from ..._exceptions import CorruptRecordError, WorkflowError
from ._codec import (
    EventRecord,
    Fence,
    NewerFormatError,
    RunEntry,
    decode_event_record,
    decode_run_record,
)
from ._settings import KafkaSettings
from ._views import RunStartDeletedError, Views

__all__ = ["History", "RunsTable", "scan_run"]


class History:
    """A client backend's answers about the runs before its checkpoints (loop thread)."""

    def __init__(
        self,
        settings: KafkaSettings,
        log: Any,
        translate: Callable[[str, BaseException], WorkflowError],
        partitions_for: Callable[[str], Awaitable[set[int]]],
    ) -> None:
        self.settings = settings
        self._table = RunsTable(settings, log, partitions_for)
        self._translate = translate

    async def table(self) -> RunsTable:
        """The runs table, caught up with ``{prefix}.runs`` as of now."""
        what = f"reading topic {self.settings.topics.runs!r}"
        try:
            async with asyncio.timeout(self.settings.request_timeout):
                await self._table.refresh()
        except (KafkaError, TimeoutError) as exc:
            raise self._translate(what, exc) from exc
        return self._table

    async def old_run(self, views: Views, run_id: str, partition: int) -> WorkflowRun | None:
        """The record of a run not in ``views`` (None: unknown)."""
        entry = (await self.table()).entries.get(run_id)
        if entry is not None and entry.run.status.is_finished:
            return entry.run
        old = await self.old_views(views, run_id, partition, entry)
        return None if old is None else old.runs.get(run_id)

    async def old_runs(
        self, views: Views, partition_of: Callable[[str], int]
    ) -> dict[str, WorkflowRun]:
        """Every run in the runs topic, stale records of runs not live in ``views`` read
        again from their events."""
        runs = {run_id: entry.run for run_id, entry in (await self.table()).entries.items()}
        for run_id, run in list(runs.items()):
            if run_id not in views.runs and not run.status.is_finished:
                runs[run_id] = await self.old_run(views, run_id, partition_of(run_id)) or run
        return runs

    async def old_views(
        self, views: Views, run_id: str, partition: int, entry: RunEntry | None = None
    ) -> Views | None:
        """The fold of a run not in ``views``, read from its events (None: no trace of it
        in the runs topic or among the checkpoint's finished runs)."""
        if entry is None:
            entry = (await self.table()).entries.get(run_id)
        if entry is None and run_id not in views.finished_lately:
            return None
        start = (-1, 0) if entry is None else (entry.start, entry.epoch)
        what = f"reading run {run_id!r} from {self.settings.topics.events}[{partition}]"
        try:
            return await scan_run(self.settings, partition, run_id, start)
        except (KafkaError, TimeoutError) as exc:
            raise self._translate(what, exc) from exc

    async def close(self) -> None:
        await self._table.close()


def _reader(settings: KafkaSettings) -> AIOKafkaConsumer:
    return AIOKafkaConsumer(
        **settings.common_options(),
        group_id=None,
        enable_auto_commit=False,
        fetch_max_wait_ms=settings.fetch_max_wait_ms,
        max_partition_fetch_bytes=max(1_048_576, settings.max_append_bytes + 65536),
    )


class RunsTable:
    """``{prefix}.runs`` read into memory: the newest record of each run (by sequence).

    Memory: one decoded run record per run ever published (the topic is compacted to one
    record per run); no events, steps or hooks.
    """

    def __init__(
        self,
        settings: KafkaSettings,
        log: Any,
        partitions_for: Callable[[str], Awaitable[set[int]]],
    ) -> None:
        self.settings = settings
        self.log = log
        self._partitions_for = partitions_for
        """A topic's partitions (the producer's ``partitions_for``: waits for metadata)."""
        self.entries: dict[str, RunEntry] = {}
        self._consumer: AIOKafkaConsumer | None = None
        self._tps: list[TopicPartition] = []

    async def refresh(self) -> None:
        """Read what was published since the last call (the whole topic at the first)."""
        topic = self.settings.topics.runs
        consumer = self._consumer
        if consumer is None:
            consumer = self._consumer = _reader(self.settings)
            await consumer.start()
            partitions = await self._partitions_for(topic)
            self._tps = [TopicPartition(topic, p) for p in sorted(partitions)]
            consumer.assign(self._tps)
            consumer.pause(*self._tps)
            for tp, begin in (await consumer.beginning_offsets(self._tps)).items():
                consumer.seek(tp, begin)
        # Paused between calls: a ListOffsets would otherwise wait behind the connection's
        # pending long-poll fetch (up to fetch_max_wait_ms).
        ends = await consumer.end_offsets(self._tps)
        left = {tp for tp in self._tps if await consumer.position(tp) < ends[tp]}
        consumer.resume(*left)
        while left:
            batches = await consumer.getmany(*left, timeout_ms=self.settings.fetch_max_wait_ms)
            for tp, messages in batches.items():
                for message in messages:
                    self._fold(message.value, f"{topic}[{tp.partition}]@{message.offset}")
            left = {tp for tp in left if await consumer.position(tp) < ends[tp]}
        consumer.pause(*self._tps)

    def _fold(self, value: bytes | None, where: str) -> None:
        if value is None:
            return  # a tombstone
        try:
            entry = decode_run_record(value, where)
        except NewerFormatError:
            raise
        except CorruptRecordError as exc:
            self.log.warning("kafka_record_skipped", where=where, error=str(exc))
            return
        known = self.entries.get(entry.run.run_id)
        if known is None or entry.sequence >= known.sequence:
            self.entries[entry.run.run_id] = entry

    async def close(self) -> None:
        consumer, self._consumer = self._consumer, None
        if consumer is not None:
            await consumer.stop()


async def scan_run(
    settings: KafkaSettings, partition: int, run_id: str, start: tuple[int, int]
) -> Views:
    """Fold the events of ``run_id`` from events ``partition``, from ``start`` (the offset of
    its first record and the partition's epoch there; offset -1: from the partition's
    start) until the run is finished or the partition's end as of the call.

    Every fence on the way is folded too, so the verdicts are the ones every reader gave.
    Raises RunStartDeletedError when retention deleted the run's start, and TimeoutError
    when no record arrives for ``request_timeout``.
    """
    topic = settings.topics.events
    tp = TopicPartition(topic, partition)
    views = Views(topic)
    offset, epoch = start
    if offset >= 0 and epoch:
        views.epochs[partition] = epoch
    consumer = _reader(settings)
    async with asyncio.timeout(settings.request_timeout) as deadline:
        await consumer.start()
        try:
            consumer.assign([tp])
            consumer.pause(tp)  # no fetch before the seek: the offsets would wait behind it
            begin = (await consumer.beginning_offsets([tp]))[tp]
            end = (await consumer.end_offsets([tp]))[tp]
            if offset > begin or (offset >= 0 and offset == begin):
                consumer.seek(tp, offset)
            elif offset >= 0:
                msg = (
                    f"run {run_id!r} starts at offset {offset} of {topic}[{partition}], which "
                    f"now begins at {begin}: retention deleted its events (its record is "
                    "still in the runs topic)"
                )
                raise RunStartDeletedError(msg)
            else:
                consumer.seek(tp, begin)
            consumer.resume(tp)
            position = await consumer.position(tp)
            while position < end:
                batches = await consumer.getmany(tp, timeout_ms=settings.fetch_max_wait_ms)
                for message in batches.get(tp, ()):
                    _fold_one(views, partition, run_id, message)
                run = views.runs.get(run_id)
                if run is not None and run.status.is_finished:
                    break
                position = await consumer.position(tp)
                if batches:
                    now = asyncio.get_running_loop().time()
                    deadline.reschedule(now + settings.request_timeout)
        finally:
            await consumer.stop()
    return views


def _fold_one(views: Views, partition: int, run_id: str, message: Any) -> None:
    where = f"{views.topic}[{partition}]@{message.offset}"
    try:
        record = decode_event_record(message.value, where)
    except NewerFormatError:
        raise
    except CorruptRecordError:
        views.drop_partial(partition)  # skipped by every reader alike
        return
    if isinstance(record, Fence):
        views.fold_fence(partition, record)
    elif isinstance(record, EventRecord) and record.event.run_id == run_id:
        views.fold_event(partition, record, message.offset)
