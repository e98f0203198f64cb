"""Fold checkpoints: one partition's fold state at an offset, in ``{prefix}.checkpoints``.

A worker that takes a partition of ``{prefix}.events`` (and any other backend, unless
``fold_history=True``) restores the newest checkpoint of it and folds on from the
checkpoint's offset, instead of from the partition's start: a takeover costs what is live
(the runs not finished, with their events) plus what was appended since the checkpoint,
not the partition's history.

A checkpoint (:class:`Snapshot`) holds: the offset of the next record to fold; the
partition's fence (epoch and holder); every event of each run not finished at that offset,
and where each of them starts in the partition (offset and epoch, for ``{prefix}.runs``);
and the ids of the finished runs whose start command may be delivered again, so that it
finds its run started and starts nothing: a worker names them (its start commands not
committed yet), else every run finished within :data:`FINISHED_HORIZON` (the commands topic
keeps a command a week). Other finished runs are forgotten: an append to one of them would
start past sequence 1 and is rejected as headless (``_views``).

The fold is a function of the log, so a checkpoint of a partition is as good whoever wrote
it: the complete one with the highest offset wins.

On the wire (a compacted topic with the events topic's partition count; partition = the
events partition): the snapshot is msgpack (each event as its ``{prefix}.events`` value),
cut into chunks of at most :data:`CHUNK_BYTES`. Chunk ``i`` of ``n`` is the value
``CHECKPOINT_VERSION + msgpack([snapshot id, i, n, bytes])`` keyed ``"{partition}:{slot}:{i}"``.
A writer alternates between slots 0 and 1, so a checkpoint cut short (the writer died
mid-way) never overwrites the last complete one; stale chunks of an older snapshot are told
apart by their id.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import msgspec
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from ..._core._events import Event
from ..._exceptions import CorruptRecordError
from ._codec import EventRecord, body_of, decode_event_record, encode_event_record
from ._settings import KafkaSettings

if TYPE_CHECKING:
    from ._views import Views

__all__ = [
    "CHECKPOINT_VERSION",
    "CHUNK_BYTES",
    "FINISHED_HORIZON",
    "Assembler",
    "CheckpointBook",
    "Snapshot",
    "encode_snapshot",
    "read_newest",
    "recent",
    "snapshot_events",
    "snapshot_runs",
    "write_snapshot",
]

CHECKPOINT_VERSION = 1
_VERSION_BYTE = bytes([CHECKPOINT_VERSION])
CHUNK_BYTES = 512 * 1024
"""Well under a broker's default ``message.max.bytes`` (1 MiB)."""
CHUNK_HEADROOM = 4096
"""A chunk record's framing, within ``max_append_bytes``."""
FINISHED_HORIZON = timedelta(days=8)
"""How long a finished run's id stays in checkpoints: longer than the commands topic keeps
a command (7 days), which may be delivered again until then."""


class Snapshot(msgspec.Struct, frozen=True, array_like=True):
    """A partition's fold state at ``offset`` (every record before it folded)."""

    partition: int
    offset: int
    epoch: int
    holder: str
    runs: list[list[bytes]]
    """Each live run's events, each as its ``{prefix}.events`` value."""
    finished: list[tuple[str, datetime]]
    """Runs that finished lately: id and when."""
    starts: dict[str, tuple[int, int]] = msgspec.field(default_factory=dict)
    """Each live run's start: the offset of its first record and the epoch there (absent
    from checkpoints written before it was added)."""


class _Chunk(msgspec.Struct, frozen=True, array_like=True):
    snapshot: str
    index: int
    count: int
    data: bytes


_ENCODER = msgspec.msgpack.Encoder()
_SNAPSHOT = msgspec.msgpack.Decoder(Snapshot)
_CHUNK = msgspec.msgpack.Decoder(_Chunk)


def snapshot_events(run_events: Iterable[Sequence[Event]]) -> list[list[bytes]]:
    """The live runs' events as ``{prefix}.events`` values (see :class:`Snapshot`)."""
    return [
        [encode_event_record(EventRecord("checkpoint", 0, 0, 1, e)) for e in events]
        for events in run_events
    ]


def snapshot_runs(snapshot: Snapshot, where: str) -> list[list[Event]]:
    """Decode the live runs' events of a snapshot."""
    runs: list[list[Event]] = []
    for values in snapshot.runs:
        events: list[Event] = []
        for value in values:
            record = decode_event_record(value, where)
            if not isinstance(record, EventRecord):
                raise CorruptRecordError(f"{where}: a fence among a checkpoint's events")
            events.append(record.event)
        runs.append(events)
    return runs


def encode_snapshot(
    snapshot: Snapshot, slot: int, chunk_bytes: int = CHUNK_BYTES
) -> list[tuple[bytes, bytes]]:
    """The records (key, value) of ``snapshot`` written to ``slot`` (0 or 1), each with at
    most ``chunk_bytes`` of it."""
    body = _ENCODER.encode(snapshot)
    size = max(1, chunk_bytes)
    pieces = [body[i : i + size] for i in range(0, len(body), size)] or [b""]
    snapshot_id = uuid.uuid4().hex
    return [
        (
            f"{snapshot.partition}:{slot}:{i}".encode(),
            _VERSION_BYTE + _ENCODER.encode(_Chunk(snapshot_id, i, len(pieces), piece)),
        )
        for i, piece in enumerate(pieces)
    ]


class Assembler:
    """Reassembles the snapshots of one partition's checkpoint records, read in order."""

    def __init__(self) -> None:
        self._chunks: dict[str, dict[int, bytes]] = {}
        self._counts: dict[str, int] = {}
        self._slots: dict[str, int] = {}

    def feed(self, key: bytes | None, value: bytes | None, where: str) -> None:
        if value is None or key is None:
            return  # a tombstone
        chunk = _CHUNK.decode(body_of(value, where, CHECKPOINT_VERSION))
        self._chunks.setdefault(chunk.snapshot, {})[chunk.index] = chunk.data
        self._counts[chunk.snapshot] = chunk.count
        self._slots[chunk.snapshot] = int(key.split(b":")[1])

    def newest(self, where: str) -> tuple[Snapshot, int] | None:
        """The complete snapshot with the highest offset (of two at one offset, the one
        written later), and its slot; None if none is."""
        best: tuple[Snapshot, int] | None = None
        for snapshot_id, chunks in self._chunks.items():
            count = self._counts[snapshot_id]
            if len(chunks) != count:
                continue
            body = b"".join(chunks[i] for i in range(count))
            try:
                snapshot = _SNAPSHOT.decode(body)
            except msgspec.DecodeError as exc:
                raise CorruptRecordError(f"{where}: not a pyworkflow checkpoint ({exc})") from exc
            if best is None or snapshot.offset >= best[0].offset:  # a tie: the later one
                best = snapshot, self._slots[snapshot_id]
        return best


async def read_newest(
    settings: KafkaSettings, partitions: Iterable[int]
) -> dict[int, tuple[Snapshot, int]]:
    """The newest complete checkpoint of each of these events partitions, with its slot
    (partitions without one are left out); read with a consumer of its own, all at once
    (the checkpoints topic is small: compacted)."""
    topic = settings.topics.checkpoints
    tps = [TopicPartition(topic, p) for p in partitions]
    if not tps:
        return {}
    options = settings.common_options()
    consumer = AIOKafkaConsumer(**options, group_id=None, enable_auto_commit=False)
    await consumer.start()
    try:
        consumer.assign(tps)
        consumer.pause(*tps)  # no fetch before the seeks: the offsets would wait behind it
        ends = await consumer.end_offsets(tps)
        for tp, begin in (await consumer.beginning_offsets(tps)).items():
            consumer.seek(tp, begin)
        consumer.resume(*tps)
        assemblers = {tp: Assembler() for tp in tps}
        left = {tp for tp in tps if ends[tp] > 0}
        while left:
            batches = await consumer.getmany(*left, timeout_ms=settings.fetch_max_wait_ms)
            for tp, messages in batches.items():
                for message in messages:
                    assemblers[tp].feed(message.key, message.value, f"{topic}[{tp.partition}]")
            left = {tp for tp in left if await consumer.position(tp) < ends[tp]}
    finally:
        await consumer.stop()
    found = {tp.partition: a.newest(f"{topic}[{tp.partition}]") for tp, a in assemblers.items()}
    return {partition: newest for partition, newest in found.items() if newest is not None}


async def write_snapshot(
    producer: AIOKafkaProducer, topic: str, partition: int, records: list[tuple[bytes, bytes]]
) -> None:
    """Produce a snapshot's records (``encode_snapshot``) to ``partition`` and wait for
    every one."""
    deliveries = [
        await producer.send(topic, value=value, key=key, partition=partition)
        for key, value in records
    ]
    await asyncio.gather(*deliveries)


def recent(finished: Iterable[tuple[str, datetime]], now: datetime) -> list[tuple[str, datetime]]:
    """The finished runs still within the horizon."""
    return [(run_id, at) for run_id, at in finished if now - at < FINISHED_HORIZON]


class CheckpointBook:
    """One backend's record of its events partitions' checkpoints: those it was folded from
    (``restored``), and the offset and slot of the newest it knows of each (restored or
    written by it)."""

    def __init__(self, settings: KafkaSettings, log: Any) -> None:
        self.settings = settings
        self.log = log
        self.offsets: dict[int, int] = {}
        self.slots: dict[int, int] = {}
        self.restored: set[int] = set()
        """Partitions folded from a checkpoint: their runs finished before it are not in
        the views (see ``_history``)."""

    async def newest(
        self, tps: list[TopicPartition], begins: dict[TopicPartition, int]
    ) -> dict[int, tuple[Snapshot, int]]:
        """The newest checkpoint of each partition, if it starts past the log start (one
        before it would miss what retention deleted since)."""
        newest = await read_newest(self.settings, [tp.partition for tp in tps])
        return {
            tp.partition: newest[tp.partition]
            for tp in tps
            if tp.partition in newest and newest[tp.partition][0].offset >= begins[tp]
        }

    def restore(
        self, views: Views, partition: int, begin: int, found: dict[int, tuple[Snapshot, int]]
    ) -> int:
        """Fold the checkpoint found for ``partition`` into ``views``, if any; the offset to
        fold on from (else ``begin``)."""
        checkpoint = found.get(partition)
        if checkpoint is None:
            return begin
        snapshot, slot = checkpoint
        views.restore(snapshot, f"{self.settings.topics.checkpoints}[{partition}]")
        self.restored.add(partition)
        self.offsets[partition] = snapshot.offset
        self.slots[partition] = slot
        self.log.info(
            "kafka_checkpoint_restored", partition=partition, offset=snapshot.offset,
            runs=len(snapshot.runs),
        )  # fmt: skip
        return snapshot.offset

    async def write(self, producer: AIOKafkaProducer, snapshot: Snapshot) -> None:
        """Write ``snapshot`` to the slot that does not hold the newest complete one."""
        partition = snapshot.partition
        slot = 1 - self.slots.get(partition, 1)
        chunk = self.settings.max_append_bytes - CHUNK_HEADROOM
        records = encode_snapshot(snapshot, slot, chunk)
        await write_snapshot(producer, self.settings.topics.checkpoints, partition, records)
        self.offsets[partition] = snapshot.offset
        self.slots[partition] = slot
