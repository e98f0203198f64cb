"""Schedule records on Kafka: the compacted topic ``{prefix}.schedules``, keyed by schedule id.

Every value is a format byte (1) and a JSON :class:`ScheduleWrite`: the writer's id, its
write number, the schedule id and the record (None: a deletion). Kafka has no conditional
write, so the compare-and-set of ``save_schedule`` is decided as appends are (``_backend``, *the log
decides*): every reader folds the topic in offset order (one schedule's records are in
one partition, by key) with one rule, and a writer waits for its own fold of its record to
learn the verdict:

* a record is accepted if no record of its id is known (the first, or the first left by
  compaction), or if its ``revision`` is the known one + 1, or if it is the known one
  exactly (a *restatement*, which changes nothing);
* after a deletion, only a revision-1 record (a new create) is accepted;
* anything else is rejected and ignored by every reader alike.

**Compaction keeps the latest record of a key**, which may be a rejected one. So a writer
whose record was rejected restates the record that won (the view's current one) before it
reports the conflict, and the latest record of a key is again an accepted state. (A writer
killed between the verdict and the restatement leaves the rejected record latest until the
next write of that schedule; a reader that starts after compaction removed the winner, in
that window, sees the loser's record.) Deletions are a write without a record, then a tombstone
once it is folded, so that compaction forgets the id.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import msgspec
from aiokafka import TopicPartition
from aiokafka.errors import KafkaError

from ..._core._schedule import Schedule
from ..._exceptions import ConflictError, CorruptRecordError
from .._port import check_schedule_write
from ._codec import body_of

if TYPE_CHECKING:
    from ._core import KafkaCore

__all__ = [
    "ScheduleStore",
    "ScheduleView",
    "ScheduleWrite",
    "conflict",
    "decode_schedule_write",
    "encode_schedule_write",
]

_VERSION = 1


class ScheduleWrite(msgspec.Struct, frozen=True, kw_only=True):
    """One value of ``{prefix}.schedules``."""

    writer: str
    number: int
    schedule_id: str
    schedule: Schedule | None = None
    """None: a deletion."""


_ENCODER = msgspec.json.Encoder()
_DECODER = msgspec.json.Decoder(ScheduleWrite)


def encode_schedule_write(write: ScheduleWrite) -> bytes:
    return bytes([_VERSION]) + _ENCODER.encode(write)


def decode_schedule_write(value: bytes | None, where: str) -> ScheduleWrite | None:
    """The write in a record's value; None for a tombstone."""
    if value is None:
        return None
    body = body_of(value, f"schedule record at {where}", _VERSION)
    try:
        return _DECODER.decode(body)
    except msgspec.DecodeError as exc:
        msg = f"schedule record at {where} does not decode: {exc}"
        raise CorruptRecordError(msg) from exc


class _Deleted:
    """The id's last write was a deletion: only a new create is accepted."""


_DELETED = _Deleted()


class ScheduleView:
    """The fold of ``{prefix}.schedules``: each schedule's accepted record (loop thread)."""

    def __init__(self, writer: str) -> None:
        self.writer = writer
        self._known: dict[str, Schedule | _Deleted] = {}
        self._waiters: dict[int, asyncio.Future[bool]] = {}
        self._counter = 0

    def get(self, schedule_id: str) -> Schedule | None:
        known = self._known.get(schedule_id)
        return known if isinstance(known, Schedule) else None

    def all(self) -> list[Schedule]:
        return [s for _, s in sorted(self._known.items()) if isinstance(s, Schedule)]

    def expect(self) -> tuple[int, asyncio.Future[bool]]:
        """A number for a write of ours, and the future its verdict is set on."""
        self._counter += 1
        waiter: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._waiters[self._counter] = waiter
        return self._counter, waiter

    def forget(self, number: int) -> None:
        self._waiters.pop(number, None)

    def fail(self, error: BaseException) -> None:
        for waiter in self._waiters.values():
            if not waiter.done():
                waiter.set_exception(error)

    def fold(self, key: bytes | None, value: bytes | None, where: str) -> None:
        """Fold one record (see the module docstring); raises CorruptRecordError."""
        write = decode_schedule_write(value, where)
        if write is None:  # a tombstone after a deletion
            if key is not None:
                self._known.pop(key.decode(errors="replace"), None)
            return
        accepted = self._accept(write)
        waiter = self._waiters.get(write.number) if write.writer == self.writer else None
        if waiter is not None and not waiter.done():
            waiter.set_result(accepted)

    def _accept(self, write: ScheduleWrite) -> bool:
        schedule = write.schedule
        if schedule is None:
            existed = isinstance(self._known.get(write.schedule_id), Schedule)
            self._known[write.schedule_id] = _DELETED
            return existed
        if schedule.schedule_id != write.schedule_id:
            return False
        known = self._known.get(schedule.schedule_id)
        if isinstance(known, _Deleted):
            ok = schedule.revision == 1
        elif known is None or known == schedule:
            ok = True
        else:
            ok = schedule.revision == known.revision + 1
        if ok:
            self._known[schedule.schedule_id] = schedule
        return ok

    def check(self, schedule: Schedule) -> None:
        """Fail early (no write) if the view already shows a conflict."""
        known = self._known.get(schedule.schedule_id)
        check_schedule_write(schedule, known if isinstance(known, Schedule) else None)


def conflict(schedule: Schedule) -> ConflictError:
    return ConflictError(
        f"saving schedule {schedule.schedule_id!r} at revision {schedule.revision}: another "
        "writer saved or deleted it first; re-read it and retry"
    )


class ScheduleStore:
    """The schedule operations of one backend instance (loop thread only), on the clients
    and the tail of its ``KafkaCore``."""

    def __init__(self, core: KafkaCore) -> None:
        self.core = core
        self.view = ScheduleView(core.writer)
        self.partitions: list[TopicPartition] = []

    def fold(self, tp: TopicPartition, records: Sequence[Any]) -> None:
        core = self.core
        for message in core.unfolded(tp, records):
            try:
                self.view.fold(message.key, message.value, f"{tp.topic}[{tp.partition}]")
            except CorruptRecordError as exc:
                core.skip(tp, message.offset, exc)

    async def get(self, schedule_id: str) -> Schedule | None:
        await self._sync()
        return self.view.get(schedule_id)

    async def all(self) -> list[Schedule]:
        await self._sync()
        return self.view.all()

    async def save(self, schedule: Schedule) -> None:
        await self._sync()
        self.view.check(schedule)
        if not await self._write(schedule.schedule_id, schedule):
            current = self.view.get(schedule.schedule_id)
            if current is not None:  # restate the winner: compaction keeps the latest
                await self._write(schedule.schedule_id, current, verdict=False)
            raise conflict(schedule)

    async def delete(self, schedule_id: str) -> bool:
        await self._sync()
        existed = await self._write(schedule_id, None)
        await self._write(schedule_id, None, verdict=False, tombstone=True)
        return existed

    async def _sync(self) -> None:
        topic = self.core.topics.schedules
        await self.core.catch_up(self.partitions, f"reading topic {topic!r}")

    async def _write(
        self,
        schedule_id: str,
        schedule: Schedule | None,
        *,
        verdict: bool = True,
        tombstone: bool = False,
    ) -> bool:
        """Produce a write; with ``verdict``, wait for its fold and return whether it was
        accepted."""
        core = self.core
        producer = core.producer
        topic = core.topics.schedules
        number, waiter = self.view.expect()
        write = ScheduleWrite(
            writer=self.view.writer, number=number, schedule_id=schedule_id, schedule=schedule
        )
        value = None if tombstone else encode_schedule_write(write)
        what = f"writing schedule {schedule_id!r} to topic {topic!r}"
        try:
            async with asyncio.timeout(core.settings.request_timeout):
                delivery = await producer.send(topic, value=value, key=schedule_id.encode())
                await delivery
                return await waiter if verdict else True
        except (KafkaError, TimeoutError) as exc:
            raise core.translate(what, exc) from exc
        finally:
            self.view.forget(number)
