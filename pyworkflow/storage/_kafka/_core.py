"""The loop side of the Kafka backend: producer, tailing consumer, views, and the operations.

Everything in this module runs on the backend's own asyncio loop thread (see ``_bridge``),
so the views are only ever touched by one thread and need no lock.
"""

from __future__ import annotations

import asyncio
import concurrent.futures as cf
from collections.abc import Awaitable, Sequence
from datetime import datetime
from typing import Any, TypeVar

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError
from aiokafka.partitioner import murmur2

from ..._core._events import Event
from ..._core._records import HookRecord, RunPage, RunStatus, StepRecord, WorkflowRun
from ..._exceptions import (
    ConflictError,
    CorruptRecordError,
    StorageError,
    TransientStorageError,
    WorkflowError,
)
from .._port import check_append
from ._codec import (
    Claim,
    EventRecord,
    NewerFormatError,
    decode_claim,
    decode_event_record,
    encode_claim,
    encode_event_record,
    encode_record,
)
from ._errors import storage_error
from ._settings import KafkaSettings
from ._topics import ensure_topics
from ._views import Verdict, Views

__all__ = ["KafkaCore"]

T = TypeVar("T")
_Publish = tuple[str, bytes, bytes]
_RETRY_BACKOFF = 0.1
_OFFSETS_BACKOFF_MS = 20  # its first call waits for topic metadata: retry soon


def _permanent(failure: WorkflowError) -> WorkflowError:
    """``failure``, as a plain StorageError if it was transient (same message)."""
    if not isinstance(failure, TransientStorageError):
        return failure
    msg = f"{failure}; the Kafka backend stopped serving: close it and create a new one"
    stopped = StorageError(msg)
    stopped.__cause__ = failure.__cause__
    return stopped


class KafkaCore:
    """Owns the aiokafka clients and the views of one backend instance (loop thread only)."""

    def __init__(self, settings: KafkaSettings, writer: str, log: Any) -> None:
        self.settings = settings
        self.topics = settings.topics
        self.writer = writer
        self.log = log
        self.views = Views()
        self._producer: AIOKafkaProducer | None = None
        self._consumer: AIOKafkaConsumer | None = None
        self._offsets: AIOKafkaConsumer | None = None
        self._partitions = 0
        self._assigned: list[TopicPartition] = []
        self._positions: dict[TopicPartition, int] = {}
        self._progress = asyncio.Event()
        self._appends: dict[int, asyncio.Future[Verdict]] = {}
        self._claims: dict[int, asyncio.Future[str]] = {}
        self._counter = 0
        self._outbox: asyncio.Queue[_Publish | None] = asyncio.Queue()
        self._stopping = asyncio.Event()
        self._failure: WorkflowError | None = None

    # -- lifecycle ----------------------------------------------------------------------
    async def serve(self, ready: cf.Future[None]) -> None:
        """The supervisor: connect, catch up, tail until ``stop()``, then close everything.

        ``ready`` gets the outcome of the start-up (None, or the error that ended it).
        Background work lives in this coroutine's task group and ends with it.
        """
        failure: WorkflowError | None = None
        try:
            try:
                await self._with_timeout("connecting to Kafka", self._open())
                await self._supervise(ready)
            except* Exception as group:
                what = "tailing the Kafka topics" if ready.done() else "starting the Kafka backend"
                failure = self._translate(f"{what} ({self.topics.events})", group.exceptions[0])
            if failure is not None and ready.done():
                # Failed while serving: fail calls until aclose(). Permanent, whatever the
                # cause: this backend no longer tails the log, so no retry of a call can
                # succeed (a failed start-up is different: the next call starts it again).
                self._fail(_permanent(failure))
                await self._stopping.wait()
        finally:
            await self._close()
            if not ready.done():
                ready.set_exception(failure or StorageError("the Kafka backend was closed"))

    async def _supervise(self, ready: cf.Future[None]) -> None:
        async with asyncio.TaskGroup() as group:
            tail = group.create_task(self._tail())
            publisher = group.create_task(self._publish())
            await self._catch_up(self._assigned, "catching up with the topics")
            ready.set_result(None)
            await self._stopping.wait()
            tail.cancel()
            self._outbox.put_nowait(None)  # the publisher sends what is queued, then ends
            await publisher

    def stop(self) -> None:
        """Ask ``serve`` to wind down (called on the loop)."""
        self._stopping.set()

    async def _open(self) -> None:
        admin = AIOKafkaAdminClient(**self.settings.common_options())
        try:
            await admin.start()
            await ensure_topics(admin, self.settings)
        finally:
            await admin.close()
        await self._start_clients()
        await self._assign()

    async def _start_clients(self) -> None:
        settings = self.settings
        options = settings.common_options()
        self._producer = AIOKafkaProducer(
            **options,
            enable_idempotence=True,
            acks="all",
            linger_ms=0,
            max_batch_size=settings.max_append_bytes,
            max_request_size=settings.max_append_bytes + 65536,
        )
        await self._producer.start()
        self._consumer = AIOKafkaConsumer(
            **options,
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            fetch_max_wait_ms=settings.fetch_max_wait_ms,
            max_partition_fetch_bytes=max(1_048_576, settings.max_append_bytes + 65536),
            isolation_level="read_uncommitted",
        )
        await self._consumer.start()
        # End offsets come from a second, idle consumer: a broker answers the requests of
        # one connection in order, so on the tailing consumer's connection a ListOffsets
        # would queue behind the pending long-poll fetch (up to fetch_max_wait_ms).
        self._offsets = AIOKafkaConsumer(
            **options, group_id=None, enable_auto_commit=False, retry_backoff_ms=_OFFSETS_BACKOFF_MS
        )
        await self._offsets.start()

    async def _assign(self) -> None:
        """Assign every partition of the events and idempotency topics, from their start."""
        producer, consumer, offsets = self._producer, self._consumer, self._offsets
        assert producer is not None
        assert consumer is not None
        assert offsets is not None
        topics = self.topics
        events = sorted(await producer.partitions_for(topics.events))
        claims = sorted(await producer.partitions_for(topics.idempotency))
        self._partitions = len(events)
        self._assigned = [TopicPartition(topics.events, p) for p in events] + [
            TopicPartition(topics.idempotency, p) for p in claims
        ]
        # Log start offsets through the idle consumer, which retries quietly while new
        # partitions elect their leaders; then the tailing consumer starts right there.
        begins = await offsets.beginning_offsets(self._assigned)
        consumer.assign(self._assigned)
        for tp in self._assigned:
            consumer.seek(tp, begins[tp])
            self._positions[tp] = begins[tp]

    async def _close(self) -> None:
        self._fail(StorageError("the Kafka backend was closed while the call was in flight"))
        for client in (self._offsets, self._consumer, self._producer):
            if client is not None:
                try:
                    await client.stop()
                except (KafkaError, OSError) as exc:
                    self.log.warning("kafka_client_stop_failed", error=repr(exc))

    # -- background tasks ---------------------------------------------------------------
    async def _tail(self) -> None:
        """Fold every new record into the views, forever (cancelled by ``serve``).

        Invariant: after each turn, ``_positions[tp]`` is the offset of the next record of
        ``tp`` to fold, and every record before it is folded into the views.
        """
        consumer = self._consumer
        assert consumer is not None
        while True:
            try:
                batches = await consumer.getmany(timeout_ms=self.settings.fetch_max_wait_ms)
            except KafkaError as exc:
                if not exc.retriable:
                    raise
                self.log.warning("kafka_fetch_retry", error=repr(exc))
                await asyncio.sleep(_RETRY_BACKOFF)
                continue
            for tp, records in batches.items():
                if tp.topic == self.topics.events:
                    self._fold_events(tp, records)
                else:
                    self._fold_claims(tp, records)
            for tp in self._assigned:
                self._positions[tp] = await consumer.position(tp)
            self._progress.set()
            self._progress = asyncio.Event()

    def _fold_events(self, tp: TopicPartition, records: Sequence[Any]) -> None:
        for message in records:
            try:
                record = decode_event_record(message.value, tp.topic)
            except CorruptRecordError as exc:
                self._skip(tp, message.offset, exc)
                self.views.drop_partial(tp.partition)
                continue
            verdict = self.views.fold_event(tp.partition, record)
            if verdict is None or verdict.record.writer != self.writer:
                continue
            if verdict.change is not None:
                self._queue_projection(verdict)
            waiter = self._appends.get(verdict.record.batch)
            if waiter is not None and not waiter.done():
                waiter.set_result(verdict)

    def _fold_claims(self, tp: TopicPartition, records: Sequence[Any]) -> None:
        for message in records:
            try:
                claim = decode_claim(message.value, tp.topic)
                key = bytes(message.key).decode()
            except (CorruptRecordError, TypeError, UnicodeDecodeError) as exc:
                self._skip(tp, message.offset, exc)
                continue
            holder = self.views.fold_claim(key, claim)
            waiter = self._claims.get(claim.claim) if claim.writer == self.writer else None
            if waiter is not None and not waiter.done():
                waiter.set_result(holder)

    def _skip(self, tp: TopicPartition, offset: int, exc: Exception) -> None:
        """A record this backend can't fold: skipped by every reader alike, or, if a newer
        pyworkflow wrote it, fatal (folding around it would give a different view)."""
        where = f"{tp.topic}[{tp.partition}]@{offset}"
        if isinstance(exc, NewerFormatError):
            raise NewerFormatError(f"{where}: {exc}") from exc
        self.log.warning("kafka_record_skipped", where=where, error=str(exc))

    def _queue_projection(self, verdict: Verdict) -> None:
        """Publish what an accepted append of ours changed to the compacted topics."""
        change = verdict.change
        assert change is not None
        seq, topics = verdict.last_sequence, self.topics
        self._outbox.put_nowait(
            (topics.runs, change.run.run_id.encode(), encode_record(seq, change.run))
        )
        for step in change.steps.values():
            self._outbox.put_nowait((topics.steps, step.step_id.encode(), encode_record(seq, step)))
        for hook in change.hooks.values():
            self._outbox.put_nowait((topics.hooks, hook.token.encode(), encode_record(seq, hook)))

    async def _publish(self) -> None:
        """Send queued projection records in batches; a None item means: flush and end."""
        producer = self._producer
        assert producer is not None
        while True:
            items = [await self._outbox.get()]
            while not self._outbox.empty():
                items.append(self._outbox.get_nowait())
            pending: list[asyncio.Future[Any]] = []
            for item in items:
                if item is None:
                    continue
                topic, key, value = item
                try:
                    pending.append(await producer.send(topic, value=value, key=key))
                except KafkaError as exc:
                    self.log.warning("kafka_projection_failed", topic=topic, error=repr(exc))
            for outcome in await asyncio.gather(*pending, return_exceptions=True):
                if isinstance(outcome, BaseException):
                    self.log.warning("kafka_projection_failed", error=repr(outcome))
            if None in items:
                return

    # -- operations (each awaited by one caller through the bridge) ---------------------
    async def append(self, run_id: str, events: Sequence[Event], expected_sequence: int) -> None:
        """Produce the events as one record batch, then let the log decide (see module doc)."""
        self._check_alive()
        last = self.views.last_sequence(run_id)
        if last > expected_sequence:  # our view is never ahead of the log: a sure conflict
            check_append(run_id, events, expected_sequence, last)
        producer = self._producer
        assert producer is not None
        self._counter += 1
        batch = self._counter
        values = [
            encode_event_record(EventRecord(self.writer, batch, index, len(events), event))
            for index, event in enumerate(events)
        ]
        waiter: asyncio.Future[Verdict] = asyncio.get_running_loop().create_future()
        self._appends[batch] = waiter
        what = f"appending to run {run_id!r} on topic {self.topics.events!r}"
        uncertain = f"{what} (the events may be in the log: re-read the run before retrying)"
        try:
            delivery = await self._kafka(what, self._produce(run_id, values))
            await self._kafka(uncertain, delivery)
            verdict = await self._with_timeout(f"{what} (reading it back)", waiter)
        finally:
            self._appends.pop(batch, None)
        if verdict.error is not None:
            raise verdict.error
        if verdict.change is None:
            check_append(run_id, events, expected_sequence, verdict.last_sequence)
            msg = f"append to run {run_id!r} at sequence {expected_sequence} lost to another writer"
            raise ConflictError(msg)

    async def _produce(self, run_id: str, values: list[bytes]) -> asyncio.Future[Any]:
        """Hand the records of one append to the producer as one unit; returns the delivery.

        A single record is atomic by itself and goes through ``send()``, where the producer
        may pack appends of several runs into one batch per partition (higher throughput,
        FIFO per partition). Several records go as one ``send_batch()``: a record batch of
        their own, written whole and contiguously.
        """
        producer = self._producer
        assert producer is not None
        topic, key, partition = self.topics.events, run_id.encode(), self.partition_of(run_id)
        if len(values) == 1:
            too_big = len(values[0]) + len(key) > self.settings.max_append_bytes
            if not too_big:
                sent: asyncio.Future[Any] = await producer.send(
                    topic, value=values[0], key=key, partition=partition
                )
                return sent
        else:
            builder = producer.create_batch()
            too_big = any(
                builder.append(key=key, value=value, timestamp=None) is None for value in values
            )
            if not too_big:
                batched: asyncio.Future[Any] = await producer.send_batch(
                    builder, topic, partition=partition
                )
                return batched
        size = sum(len(v) for v in values)
        msg = (
            f"an append of {len(values)} events ({size} bytes) to run {run_id!r} does not fit "
            f"in one Kafka record batch of max_append_bytes={self.settings.max_append_bytes}; "
            "keep step results and payloads small, or raise max_append_bytes together with "
            f"the max.message.bytes of topic {topic!r}"
        )
        raise StorageError(msg)

    async def claim(self, key: str, run_id: str) -> str:
        """Claim an idempotency key: first claim in the log wins (see module doc)."""
        self._check_alive()
        holder = self.views.keys.get(key)
        if holder is not None:  # our view is a prefix of the log: its first claim is final
            return holder
        producer = self._producer
        assert producer is not None
        self._counter += 1
        number = self._counter
        waiter: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self._claims[number] = waiter
        topic = self.topics.idempotency
        what = f"claiming idempotency key {key!r} on topic {topic!r}"
        value = encode_claim(Claim(run_id, self.writer, number))
        try:
            await self._kafka(what, producer.send_and_wait(topic, value=value, key=key.encode()))
            holder = await self._with_timeout(f"{what} (reading it back)", waiter)
        finally:
            self._claims.pop(number, None)
        if holder != run_id:  # restate the winner so that compaction keeps it, not us
            repair = encode_claim(Claim(holder, self.writer, number, repair=True))
            await self._kafka(what, producer.send_and_wait(topic, value=repair, key=key.encode()))
        return holder

    async def sync_run(self, run_id: str) -> None:
        """Wait until the views hold every event of the run's partition as of now."""
        tp = TopicPartition(self.topics.events, self.partition_of(run_id))
        await self._catch_up([tp], f"reading run {run_id!r} from topic {self.topics.events!r}")

    async def sync_all(self) -> None:
        """Wait until the views hold every record of every topic as of now."""
        await self._catch_up(self._assigned, f"reading topic {self.topics.events!r}")

    def partition_of(self, run_id: str) -> int:
        """The events partition of a run: Java's default partitioner (murmur2 of the key)."""
        hashed: int = murmur2(run_id.encode())
        return (hashed & 0x7FFFFFFF) % self._partitions

    # -- queries (after a sync) -----------------------------------------------------------
    async def read(self, run_id: str, after: int) -> list[Event]:
        await self.sync_run(run_id)
        return self.views.read(run_id, after)

    async def get_run(self, run_id: str) -> WorkflowRun | None:
        await self.sync_run(run_id)
        return self.views.runs.get(run_id)

    async def list_runs(
        self, status: RunStatus | None, workflow_name: str | None, limit: int, cursor: str | None
    ) -> RunPage:
        await self.sync_all()
        return self.views.list_runs(status, workflow_name, limit, cursor)

    async def due_runs(self, until: datetime, limit: int) -> list[tuple[datetime, str]]:
        events = [tp for tp in self._assigned if tp.topic == self.topics.events]
        await self._catch_up(events, f"reading topic {self.topics.events!r}")
        return self.views.due.upto(until, limit)

    async def get_step(self, step_id: str) -> StepRecord | None:
        await self.sync_all()
        return self.views.steps.get(step_id)

    async def get_hook(self, hook_id: str) -> HookRecord | None:
        await self.sync_all()
        return self.views.hooks.get(hook_id)

    async def list_hooks(self, run_id: str | None) -> list[HookRecord]:
        if run_id is None:
            await self.sync_all()
        else:
            await self.sync_run(run_id)
        return self.views.list_hooks(run_id)

    # -- helpers --------------------------------------------------------------------------
    async def _catch_up(self, tps: list[TopicPartition], what: str) -> None:
        """Wait until the fold has passed each partition's high watermark as of the call."""
        self._check_alive()
        offsets = self._offsets
        assert offsets is not None
        ends: dict[TopicPartition, int] = await self._kafka(what, offsets.end_offsets(tps))

        async def caught_up() -> None:
            while any(self._positions.get(tp, -1) < end for tp, end in ends.items()):
                self._check_alive()
                await self._progress.wait()

        await self._with_timeout(what, caught_up())

    def _check_alive(self) -> None:
        if self._failure is not None:
            raise self._failure

    def _fail(self, failure: WorkflowError) -> None:
        """Stop serving: pending and future operations raise ``failure``."""
        if self._failure is None:
            self._failure = failure
        waiters: list[asyncio.Future[Any]] = [*self._appends.values(), *self._claims.values()]
        for waiter in waiters:
            if not waiter.done():
                waiter.set_exception(self._failure)
        self._progress.set()

    async def _kafka(self, what: str, call: Awaitable[T]) -> T:
        """Await an aiokafka call, translating its errors."""
        try:
            return await call
        except KafkaError as exc:
            raise self._translate(what, exc) from exc

    async def _with_timeout(self, what: str, call: Awaitable[T]) -> T:
        try:
            async with asyncio.timeout(self.settings.request_timeout):
                return await call
        except TimeoutError as exc:
            raise self._translate(what, exc) from exc

    def _translate(self, what: str, exc: BaseException) -> WorkflowError:
        if isinstance(exc, WorkflowError):
            return exc
        settings = self.settings
        return storage_error(what, exc, settings.bootstrap_servers, settings.request_timeout)
