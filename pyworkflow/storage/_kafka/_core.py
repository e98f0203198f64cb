"""The loop side of the Kafka backend: producer, tailing consumer, views, and the operations.

Everything in this module runs on the backend's own asyncio loop thread (see ``_bridge``),
so the views are only ever touched by one thread and need no lock.
"""

from __future__ import annotations

import asyncio
import concurrent.futures as cf
from collections.abc import Awaitable, Collection, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, NoReturn, TypeVar

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError

from ..._core._events import Event
from ..._core._records import HookRecord, RunPage, RunStatus, StepRecord, WorkflowRun
from ..._exceptions import (
    ConflictError,
    CorruptRecordError,
    StorageError,
    WorkflowError,
)
from .._paging import page_runs
from .._port import check_append
from ._batcher import AppendBatcher, QueuedAppend
from ._checkpoint import CheckpointBook, Snapshot
from ._clients import new_offsets_consumer, new_producer, new_tail_consumer, stop_client
from ._codec import (
    Claim,
    EventRecord,
    Fence,
    NewerFormatError,
    claim_record_key,
    decode_claim,
    decode_event_record,
    encode_claim,
    encode_event_record,
    encode_fence,
)
from ._errors import (
    PartitionFencedError,
    Stage,
    append_too_big,
    not_folded,
    outside_scope,
    permanent,
    storage_error,
    uncertain_append,
    unfenced_refused,
)
from ._history import History
from ._placement import KeyHashes
from ._publisher import ProjectionPublisher
from ._schedules import ScheduleStore
from ._settings import KafkaSettings
from ._topics import ensure_topics
from ._views import Verdict, Views

__all__ = ["KafkaCore"]

T = TypeVar("T")
_RETRY_BACKOFF = 0.1
_REPUBLISH_WINDOW = timedelta(minutes=10)
"""Runs ended by another writer this lately are republished by the partition's new owner:
far more than a takeover takes (session timeout + a checkpoint interval)."""
_MIN_STOP_S = 1.0
"""Each client's stop() gets at least this long, even past the close deadline."""
_CHECKPOINT_TRIES = 20  # folds waited for while an append is half-folded


class KafkaCore:
    """Owns the aiokafka clients and the views of one backend instance (loop thread only)."""

    def __init__(
        self, settings: KafkaSettings, writer: str, log: Any, scope: frozenset[int] | None = None
    ) -> None:
        self.settings = settings
        self._scope = scope
        """The events partitions folded (None: all of them); see ``fold_partitions``."""
        self.topics = settings.topics
        self.writer = writer
        self.log = log
        self.views = Views(settings.topics.events)
        self._producer: AIOKafkaProducer | None = None
        self._consumer: AIOKafkaConsumer | None = None
        self._offsets: AIOKafkaConsumer | None = None
        self._partitions = 0
        self._assigned: list[TopicPartition] = []
        self._claim_tps: list[TopicPartition] = []
        self.schedules = ScheduleStore(self)
        self._scoping = asyncio.Lock()
        self._book = CheckpointBook(settings, log)
        self._history = History(
            settings, log, self._translate, lambda topic: self.producer.partitions_for(topic)
        )
        self._positions: dict[TopicPartition, int] = {}
        self._progress = asyncio.Event()
        self._appends: dict[int, asyncio.Future[Verdict]] = {}
        self._claims: dict[int, asyncio.Future[str]] = {}
        self._in_doubt: dict[int, str] = {}
        """Our appends whose outcome was reported unknown, by batch: run id (see append)."""
        self._counter = 0
        self._claim_partitions = 0
        self.hashes = KeyHashes()
        self._publisher = ProjectionPublisher(settings.topics, log, self.hashes)
        self._stopping = asyncio.Event()
        self._close_by: float | None = None
        self._main: asyncio.Task[Any] | None = None
        self._starting = False
        """serve() is connecting or catching up: stop() may cancel it (nothing else)."""
        self._fetch_failing = False
        self._failure: WorkflowError | None = None
        self._append_batcher: AppendBatcher | None = None
        self._epochs: dict[int, int] = {}
        """The epoch of each partition this writer fenced (kept after it lost one: its
        appends there must be rejected, not go untagged)."""
        self._fences: dict[int, asyncio.Future[bool]] = {}
        self._workers_only = False
        """The events topic's retention is limited: only fenced writers append (``_topics``)."""

    # -- lifecycle ----------------------------------------------------------------------
    async def serve(self, ready: cf.Future[None]) -> None:
        """The supervisor: connect, catch up, tail until ``stop()``, then close everything.

        ``ready`` gets the outcome of the start-up (None, or the error that ended it).
        Background work lives in this coroutine's task group and ends with it.
        """
        self._main = asyncio.current_task()
        self._starting = True
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
                self._fail(permanent(failure))
                await self._stopping.wait()
        except asyncio.CancelledError:
            if not self._stopping.is_set() or self._main is None:
                raise
            self._main.uncancel()  # stop() cut the start-up short: close as usual
        finally:
            self._starting = False
            await self._close()
            if not ready.done():
                ready.set_exception(failure or StorageError("the Kafka backend was closed"))

    async def _supervise(self, ready: cf.Future[None]) -> None:
        async with asyncio.TaskGroup() as group:
            tail = group.create_task(self._tail())
            assert self._producer is not None
            publisher = group.create_task(self._publisher.run(self._producer))
            await self._catch_up(self._assigned, "catching up with the topics")
            self._starting = False
            ready.set_result(None)
            await self._stopping.wait()
            tail.cancel()
            self._publisher.finish()  # it sends what is queued, then ends
            try:
                async with asyncio.timeout_at(self._close_deadline()):
                    await publisher
            except TimeoutError:  # no broker answers: what is left is lost, not waited for
                publisher.cancel()
                dropped = self._publisher.left
                self.log.warning("kafka_projections_dropped", records=dropped)

    def stop(self) -> None:
        """Ask ``serve`` to wind down (called on the loop): everything is closed within
        about ``request_timeout`` (plus ~1 s per client), broker or no broker."""
        if self._close_by is None:
            self._close_by = asyncio.get_running_loop().time() + self.settings.request_timeout
        self._stopping.set()
        if self._starting and self._main is not None:
            self._main.cancel()  # a start-up that may wait on the brokers: cut it short

    def _close_deadline(self) -> float:
        if self._close_by is None:
            self._close_by = asyncio.get_running_loop().time() + self.settings.request_timeout
        return self._close_by

    async def _open(self) -> None:
        admin = AIOKafkaAdminClient(**self.settings.common_options())
        try:
            await admin.start()
            retention = await ensure_topics(admin, self.settings)
            self._workers_only = retention.workers_only
            if retention.limited and not retention.workers_only:  # allow_limited_retention
                events = self.topics.events
                self.log.warning("kafka_limited_retention", topic=events, **retention.limited)
        finally:
            await admin.close()
        await self._start_clients()
        await self._assign()

    async def _start_clients(self) -> None:
        self._producer = new_producer(self.settings)
        await self._producer.start()
        self._consumer = new_tail_consumer(self.settings)
        await self._consumer.start()
        self._offsets = new_offsets_consumer(self.settings)
        await self._offsets.start()

    async def _assign(self) -> None:
        """Assign the folded partitions of the events topic (all, unless scoped) and every
        partition of the idempotency topic: events partitions from their newest checkpoint
        (or start), claims from their start."""
        producer, consumer, offsets = self._producer, self._consumer, self._offsets
        assert producer is not None
        assert consumer is not None
        assert offsets is not None
        topics = self.topics
        events = sorted(await producer.partitions_for(topics.events))
        claims = sorted(await producer.partitions_for(topics.idempotency))
        self._partitions = len(events)
        self._claim_partitions = len(claims)
        self._claim_tps = [TopicPartition(topics.idempotency, p) for p in claims]
        schedules = sorted(await producer.partitions_for(topics.schedules))
        self.schedules.partitions = [TopicPartition(topics.schedules, p) for p in schedules]
        self._claim_tps += self.schedules.partitions  # folded from their start, like claims
        self._check_scope(self._scope)
        self.views.evict_finished = self._scope is not None
        folded = events if self._scope is None else sorted(self._scope)
        self._assigned = [TopicPartition(topics.events, p) for p in folded] + self._claim_tps
        # Log start offsets through the idle consumer, which retries quietly while new
        # partitions elect their leaders; then the tailing consumer starts right there.
        begins = await offsets.beginning_offsets(self._assigned)
        found: dict[int, tuple[Snapshot, int]] = {}
        if not self.settings.fold_history:
            found = await self._book.newest(self._assigned[: len(folded)], begins)
        consumer.assign(self._assigned)
        for tp in self._assigned:
            position = self._positions[tp] = self._restore(tp, begins[tp], found)
            consumer.seek(tp, position)

    async def _close(self) -> None:
        """Stop the clients, each within the close deadline (at least ``_MIN_STOP_S``;
        ``stop_client`` says what is abandoned past it)."""
        self._fail(StorageError("the Kafka backend was closed while the call was in flight"))
        loop = asyncio.get_running_loop()
        await self._history.close()
        clients = {"offsets": self._offsets, "consumer": self._consumer, "producer": self._producer}
        for name, client in clients.items():
            if client is not None:
                budget = max(self._close_deadline() - loop.time(), _MIN_STOP_S)
                await stop_client(name, client, budget, self.log, len(self._in_doubt))

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
                if not self._fetch_failing:  # one line per state change, not per retry
                    self._fetch_failing = True
                    self.log.warning("kafka_fetch_failing", error=repr(exc))
                await asyncio.sleep(_RETRY_BACKOFF)
                continue
            if self._fetch_failing:
                self._fetch_failing = False
                self.log.warning("kafka_fetch_recovered")
            for tp, records in batches.items():
                if tp.topic == self.topics.events:
                    self._fold_events(tp, records)
                elif tp.topic == self.topics.schedules:
                    self.schedules.fold(tp, records)
                else:
                    self._fold_claims(tp, records)
            for tp in list(self._assigned):  # fold_partitions may change it meanwhile
                position = await consumer.position(tp)
                if tp in self._positions:  # still folded
                    self._positions[tp] = max(self._positions[tp], position)
            self._progress.set()
            self._progress = asyncio.Event()

    def _fold_events(self, tp: TopicPartition, records: Sequence[Any]) -> None:
        for message in self._unfolded(tp, records):
            try:
                record = decode_event_record(message.value, tp.topic)
            except CorruptRecordError as exc:
                self._skip(tp, message.offset, exc)
                self.views.drop_partial(tp.partition)
                continue
            if isinstance(record, Fence):
                accepted = self.views.fold_fence(tp.partition, record)
                fenced = self._fences.get(record.number) if record.writer == self.writer else None
                if fenced is not None and not fenced.done():
                    fenced.set_result(accepted)
                continue
            verdict = self.views.fold_event(tp.partition, record, message.offset)
            if verdict is None:
                continue
            if verdict.record.writer != self.writer:
                if self._scope is not None and verdict.ended_within(_REPUBLISH_WINDOW):
                    # A run of ours ended by another writer (its owner before a takeover,
                    # which may have died before publishing it): readers of finished runs
                    # trust the runs topic, so its last record must be there. (Runs that
                    # ended long ago were republished by the takeover after their end.)
                    assert verdict.change is not None
                    self._publisher.queue(verdict.last_sequence, verdict.change, verdict.start)
                continue
            if verdict.change is not None:
                self._publisher.queue(verdict.last_sequence, verdict.change, verdict.start)
            run_id = self._in_doubt.pop(verdict.record.batch, None)
            if run_id is not None:  # an append reported as "outcome unknown" landed late
                self.log.warning(
                    "kafka_append_landed_late", run_id=run_id, accepted=verdict.accepted
                )
            waiter = self._appends.get(verdict.record.batch)
            if waiter is not None and not waiter.done():
                waiter.set_result(verdict)

    def _fold_claims(self, tp: TopicPartition, records: Sequence[Any]) -> None:
        for message in self._unfolded(tp, records):
            try:
                claim = decode_claim(message.value, tp.topic, message.key)
            except CorruptRecordError as exc:
                self._skip(tp, message.offset, exc)
                continue
            holder = self.views.fold_claim(claim.key, claim)
            waiter = self._claims.get(claim.claim) if claim.writer == self.writer else None
            if waiter is not None and not waiter.done():
                waiter.set_result(holder)

    @property
    def producer(self) -> AIOKafkaProducer:
        assert self._producer is not None
        return self._producer

    def _unfolded(self, tp: TopicPartition, records: Sequence[Any]) -> Iterator[Any]:
        """The records of ``tp`` not folded yet, each counted as folded once yielded: a
        partition that ``fold_partitions`` re-assigned may deliver some twice, one that it
        dropped may still deliver some (ignored)."""
        for message in records:
            position = self._positions.get(tp)
            if position is None:
                return
            if message.offset < position:
                continue
            yield message
            self._positions[tp] = message.offset + 1  # folded (a fatal record never is)

    def _skip(self, tp: TopicPartition, offset: int, exc: Exception) -> None:
        """A record this backend can't fold: skipped by every reader alike, or, if a newer
        pyworkflow wrote it, fatal (folding around it would give a different view)."""
        where = f"{tp.topic}[{tp.partition}]@{offset}"
        if isinstance(exc, NewerFormatError):
            raise NewerFormatError(f"{where}: {exc}") from exc
        self.log.warning("kafka_record_skipped", where=where, error=str(exc))

    # -- operations (each awaited by one caller through the bridge) ---------------------
    async def append(self, run_id: str, events: Sequence[Event], expected_sequence: int) -> None:
        """Produce the events as one record batch, then let the log decide (see module doc).

        One deadline, ``request_timeout``, covers the whole call: handing the batch to the
        producer, the brokers' acknowledgement, and folding it back. What a timeout means
        depends on the stage it hit (``_Stage``): nothing sent, or an outcome unknown.
        """
        self._check_alive()
        self.views.check_head(run_id)
        last = self.views.last_sequence(run_id)
        if last > expected_sequence:  # our view is never ahead of the log: a sure conflict
            check_append(run_id, events, expected_sequence, last)
        self._counter += 1
        batch = self._counter
        epoch = self._epochs.get(self.partition_of(run_id), 0)
        if not epoch and self._workers_only:
            raise unfenced_refused(self.topics.events, run_id)
        values = [
            encode_event_record(EventRecord(self.writer, batch, index, len(events), event, epoch))
            for index, event in enumerate(events)
        ]
        waiter: asyncio.Future[Verdict] = asyncio.get_running_loop().create_future()
        self._appends[batch] = waiter
        stage, where = Stage.SENDING, ""
        queued: QueuedAppend | None = None
        try:
            async with asyncio.timeout(self.settings.request_timeout):
                if len(values) == 1:
                    delivery = await self._produce(run_id, values)
                else:  # several records: with the other runs' appends ready (_batcher)
                    queued = self._queue_append(run_id, values)
                    delivery = await self._batcher().send(queued, self.partition_of(run_id))
                stage = Stage.DELIVERING
                metadata = await delivery
                stage = Stage.FOLDING
                where = f"partition {metadata.partition}, offset {metadata.offset}"
                verdict = await waiter
        except (KafkaError, TimeoutError) as exc:
            if stage is Stage.SENDING and queued is not None and queued.taken:
                stage = Stage.DELIVERING  # in a batch already: it may land
            raise self._append_failed(run_id, expected_sequence, batch, stage, where, exc) from exc
        except asyncio.CancelledError:
            if stage is not Stage.SENDING or (queued is not None and queued.taken):
                self._in_doubt[batch] = run_id  # the caller gave up; the batch may yet land
            raise
        finally:
            self._appends.pop(batch, None)
        if verdict.error is not None:
            raise verdict.error
        if verdict.fenced:
            raise PartitionFencedError(run_id, self.partition_of(run_id), verdict.fenced, epoch)
        if verdict.change is None:
            self.views.check_head(run_id)
            check_append(run_id, events, expected_sequence, verdict.last_sequence)
            msg = f"append to run {run_id!r} at sequence {expected_sequence} lost to another writer"
            raise ConflictError(msg)

    def _append_failed(
        self,
        run_id: str,
        expected_sequence: int,
        batch: int,
        stage: Stage,
        where: str,
        exc: BaseException,
    ) -> WorkflowError:
        """The error for an append that failed or timed out at ``stage`` (never a guess:
        an append whose outcome is unknown says so, and is remembered as in doubt)."""
        what = f"appending to run {run_id!r} on topic {self.topics.events!r}"
        if stage is Stage.SENDING:  # aiokafka drops a record whose send() did not return
            return self._translate(f"{what} (nothing was sent)", exc)
        if not isinstance(exc, TimeoutError):  # the producer gave up on it after sending it
            return self._translate(f"{what} (re-read the run before retrying)", exc)
        self._in_doubt[batch] = run_id
        servers, timeout = self.settings.bootstrap_servers, self.settings.request_timeout
        delivering = stage is Stage.DELIVERING
        return uncertain_append(what, delivering, servers, timeout, expected_sequence, where)

    def _batcher(self) -> AppendBatcher:
        if self._append_batcher is None:
            assert self._producer is not None
            self._append_batcher = AppendBatcher(
                self._producer, self.topics.events, self.settings.max_append_bytes
            )
        return self._append_batcher

    def _queue_append(self, run_id: str, values: list[bytes]) -> QueuedAppend:
        """An append of several records, ready for the batcher (or too big: StorageError)."""
        queued = QueuedAppend(run_id.encode(), values)
        if queued.size > self._batcher().limit:
            self._too_big(run_id, values)
        return queued

    def _too_big(self, run_id: str, values: list[bytes]) -> NoReturn:
        size, limit = sum(len(v) for v in values), self.settings.max_append_bytes
        raise append_too_big(run_id, len(values), size, limit, self.topics.events)

    async def _produce(self, run_id: str, values: list[bytes]) -> asyncio.Future[Any]:
        """Hand the one record of an append to the producer; returns the delivery.

        A single record is atomic by itself and goes through ``send()``, where the producer
        packs the records ready for a partition into one batch (FIFO per partition). An
        append of several records goes through the batcher (``_batcher``), which does the
        same with whole appends.
        """
        producer = self._producer
        assert producer is not None
        key = run_id.encode()
        if len(values[0]) + len(key) > self.settings.max_append_bytes:
            self._too_big(run_id, values)
        sent: asyncio.Future[Any] = await producer.send(
            self.topics.events, value=values[0], key=key, partition=self.partition_of(run_id)
        )
        return sent

    async def fence(self, partition: int) -> int:
        """Take ``partition`` over: append a fence one epoch above its current one, and tag
        this writer's appends there with that epoch from now on (older epochs are rejected
        by every reader). Returns the epoch. A writer that holds the partition's newest fence
        already keeps it: nothing is written (a rebalance that gives a worker its own
        partitions back must not reject its own appends in flight)."""
        self._check_alive()
        producer = self._producer
        assert producer is not None
        self._check_folded(partition, f"fencing partition {partition}")
        tp = TopicPartition(self.topics.events, partition)
        what = f"fencing partition {partition} of topic {self.topics.events!r}"
        while True:
            await self._catch_up([tp], what)
            current = self.views.epochs.get(partition, 0)
            if current and self.views.holders.get(partition) == self.writer:
                self._epochs[partition] = current
                return current
            epoch = current + 1
            self._counter += 1
            number = self._counter
            waiter: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
            self._fences[number] = waiter
            try:
                async with asyncio.timeout(self.settings.request_timeout):
                    value = encode_fence(Fence(self.writer, number, epoch))
                    delivery = await producer.send(tp.topic, value=value, partition=partition)
                    await delivery
                    accepted = await waiter
            except (KafkaError, TimeoutError) as exc:
                raise self._translate(what, exc) from exc
            finally:
                self._fences.pop(number, None)
            if accepted:
                self._epochs[partition] = epoch
                return epoch  # else another writer fenced it meanwhile: above theirs

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
        claim = Claim(run_id, self.writer, number, key=key)
        partition = self.hashes.partition(key, self._claim_partitions)
        stage = Stage.SENDING
        try:
            async with asyncio.timeout(self.settings.request_timeout):
                delivery = await producer.send(
                    topic, value=encode_claim(claim), key=claim_record_key(claim),
                    partition=partition,
                )  # fmt: skip
                stage = Stage.DELIVERING
                await delivery
                stage = Stage.FOLDING
                return await waiter
        except (KafkaError, TimeoutError) as exc:
            if stage is not Stage.SENDING:
                what += (
                    " (the outcome is unknown: the claim may be in the log or land later; "
                    "claiming again is safe, as the first claim of a key wins for every reader)"
                )
            raise self._translate(what, exc) from exc
        finally:
            self._claims.pop(number, None)

    async def sync_run(self, run_id: str) -> None:
        """Wait until the views hold every event of the run's partition as of now."""
        partition = self.partition_of(run_id)
        self._check_folded(partition, f"run {run_id!r} is in partition {partition}")
        tp = TopicPartition(self.topics.events, partition)
        await self._catch_up([tp], f"reading run {run_id!r} from topic {self.topics.events!r}")

    async def sync_all(self) -> None:
        """Wait until the views hold every record of every topic as of now."""
        await self._catch_up(self._assigned, f"reading topic {self.topics.events!r}")

    async def fold_partitions(self, scope: frozenset[int] | None) -> None:
        """Fold only these events partitions (None: all) from now on. Partitions added are
        folded from their newest checkpoint (or log start) and caught up before this
        returns; the state of the ones removed is dropped from the views."""
        self._check_alive()
        self._check_scope(scope)
        async with self._scoping:  # one change at a time
            await self._fold_partitions(scope)

    async def _fold_partitions(self, scope: frozenset[int] | None) -> None:
        consumer, offsets = self._consumer, self._offsets
        assert consumer is not None
        assert offsets is not None
        events = self.topics.events
        wanted = set(range(self._partitions)) if scope is None else set(scope)
        current = {tp.partition for tp in self._assigned if tp.topic == events}
        added = [TopicPartition(events, p) for p in sorted(wanted - current)]
        what = f"folding partitions {sorted(wanted - current)} of topic {events!r}"
        found: dict[int, tuple[Snapshot, int]] = {}
        if added:
            try:
                async with asyncio.timeout(self.settings.request_timeout):
                    begins = await offsets.beginning_offsets(added)
                    if not self.settings.fold_history:
                        found = await self._book.newest(added, begins)
            except (KafkaError, TimeoutError) as exc:
                raise self._translate(what, exc) from exc
        # No await from here to the seeks: the tail must not fold between assign and seek.
        self._scope = scope
        self.views.evict_finished = scope is not None
        for partition in current - wanted:
            self._positions.pop(TopicPartition(events, partition), None)
            self._book.restored.discard(partition)
            self.views.drop_partition(partition)
        if wanted != current:
            self._assigned = [TopicPartition(events, p) for p in sorted(wanted)] + self._claim_tps
            consumer.assign(self._assigned)  # positions are lost: seek every partition
            for tp in self._assigned:
                position = self._positions.get(tp)
                if position is None:
                    position = self._positions[tp] = self._restore(tp, begins[tp], found)
                consumer.seek(tp, position)
        await self._catch_up([tp for tp in added if tp in self._positions], what)

    def _restore(
        self, tp: TopicPartition, begin: int, found: dict[int, tuple[Snapshot, int]]
    ) -> int:
        """Fold the checkpoint found for ``tp``, if any; the offset to fold on from."""
        if tp.topic != self.topics.events:
            return begin
        return self._book.restore(self.views, tp.partition, begin, found)

    async def checkpoint(self, partition: int, remember: Collection[str] | None) -> int | None:
        """Write a checkpoint of the fold of events partition ``partition`` as of now (see
        ``_checkpoint``); the offset it covers, or None when nothing was folded there since
        the last one (or an append stayed half-folded)."""
        self._check_alive()
        self._check_folded(partition, f"checkpointing partition {partition}")
        producer = self._producer
        assert producer is not None
        tp = TopicPartition(self.topics.events, partition)
        for _ in range(_CHECKPOINT_TRIES):
            offset = self._positions.get(tp)
            if offset is None or self._book.offsets.get(partition) == offset:
                return None
            now = datetime.now(UTC)
            self.views.prune_finished(partition, now, remember)
            snapshot = self.views.snapshot(partition, offset, now, remember)
            if snapshot is not None:
                break
            await self._progress.wait()  # an append half-folded: its rest is coming
        else:
            return None
        what = f"writing a checkpoint of partition {partition} to {self.topics.checkpoints!r}"
        try:
            async with asyncio.timeout(self.settings.request_timeout):
                await self._book.write(producer, snapshot)
        except (KafkaError, TimeoutError) as exc:
            raise self._translate(what, exc) from exc
        return offset

    def _check_folded(self, partition: int, what: str) -> None:
        if self._scope is not None and partition not in self._scope:
            raise not_folded(what, self.topics.events, self._scope)

    def _check_scope(self, scope: frozenset[int] | None) -> None:
        if scope is not None and self._partitions:
            error = outside_scope(scope, self.topics.events, self._partitions)
            if error is not None:
                raise error

    def partition_of(self, run_id: str) -> int:
        """The events partition of a run: Java's default partitioner (murmur2 of the key)."""
        return self.hashes.partition(run_id, self._partitions)

    # -- queries (after a sync) -----------------------------------------------------------
    async def read(self, run_id: str, after: int) -> list[Event]:
        await self.sync_run(run_id)
        old = await self._older(run_id, self.views.logs)
        return (old or self.views).read(run_id, after)

    async def get_run(self, run_id: str) -> WorkflowRun | None:
        await self.sync_run(run_id)
        if run_id not in self.views.runs and self._before_checkpoint(run_id):
            old = await self._history.old_run(self.views, run_id, self.partition_of(run_id))
            if old is not None:
                return old
        return self.views.run(run_id)

    async def wait_finished(self, run_id: str) -> WorkflowRun:
        """The run's record once it is finished (an unknown run may yet be started: waited
        for too): after one sync, looked up again each time the tail has folded more
        records (no broker round trip per look)."""
        await self.sync_run(run_id)
        if run_id not in self.views.runs and self._before_checkpoint(run_id):
            old = await self._history.old_run(self.views, run_id, self.partition_of(run_id))
            if old is not None and old.status.is_finished:
                return old
        while True:
            self._check_alive()
            run = self.views.run(run_id)
            if run is not None and run.status.is_finished:
                return run
            await self._progress.wait()

    async def list_runs(
        self, status: RunStatus | None, workflow_name: str | None, limit: int, cursor: str | None
    ) -> RunPage:
        await self.sync_all()
        if self._scope is not None or not self._book.restored:
            return self.views.list_runs(status, workflow_name, limit, cursor)
        runs = await self._history.old_runs(self.views, self.partition_of)
        runs.update(self.views.runs)
        return page_runs(
            runs.values(), status=status, workflow_name=workflow_name, limit=limit, cursor=cursor
        )

    async def due_runs(self, until: datetime, limit: int) -> list[tuple[datetime, str]]:
        events = [tp for tp in self._assigned if tp.topic == self.topics.events]
        await self._catch_up(events, f"reading topic {self.topics.events!r}")
        return self.views.due.upto(until, limit)

    async def get_step(self, step_id: str) -> StepRecord | None:
        await self.sync_all()
        found = self.views.steps.get(step_id)
        run_id = step_id.rpartition(".")[0]  # step ids are "{run_id}.{index}"
        old = await self._older(run_id, self.views.runs) if found is None and run_id else None
        return old.steps.get(step_id) if old is not None else found

    async def get_hook(self, hook_id: str) -> HookRecord | None:
        await self.sync_all()
        return self.views.hooks.get(hook_id)

    async def list_hooks(self, run_id: str | None) -> list[HookRecord]:
        if run_id is None:
            await self.sync_all()
        else:
            await self.sync_run(run_id)
            old = await self._older(run_id, self.views.runs)
            if old is not None:
                return old.list_hooks(run_id)
        return self.views.list_hooks(run_id)

    # -- runs before the checkpoints (``_history``) ----------------------------------------
    def _before_checkpoint(self, run_id: str) -> bool:
        """Whether the run may have finished before the checkpoint its partition was folded
        from (a client's backend; a worker's answers for what it folds only)."""
        return self._scope is None and self.partition_of(run_id) in self._book.restored

    async def _older(self, run_id: str, held: Collection[str]) -> Views | None:
        """The fold of a run not ``held`` by the views that finished before its partition's
        checkpoint, read from its events (None: not such a run)."""
        if run_id in held or not self._before_checkpoint(run_id):
            return None
        return await self._history.old_views(self.views, run_id, self.partition_of(run_id))

    # -- helpers --------------------------------------------------------------------------
    async def _catch_up(self, tps: list[TopicPartition], what: str) -> None:
        """Wait until the fold has passed each partition's high watermark as of the call;
        within ``request_timeout`` in all (TransientStorageError after it)."""
        self._check_alive()
        offsets = self._offsets
        assert offsets is not None
        try:
            async with asyncio.timeout(self.settings.request_timeout):
                ends: dict[TopicPartition, int] = await offsets.end_offsets(tps)
                # A partition dropped meanwhile (fold_partitions: a rebalance) has no
                # position any more: nothing to wait for there.
                while any(self._positions.get(tp, end) < end for tp, end in ends.items()):
                    self._check_alive()
                    await self._progress.wait()
        except (KafkaError, TimeoutError) as exc:
            raise self._translate(what, exc) from exc

    def _check_alive(self) -> None:
        if self._failure is not None:
            raise self._failure

    def _fail(self, failure: WorkflowError) -> None:
        """Stop serving: pending and future operations raise ``failure``."""
        if self._failure is None:
            self._failure = failure
        waiters: list[asyncio.Future[Any]] = [
            *self._appends.values(),
            *self._claims.values(),
            *self._fences.values(),
        ]
        for waiter in waiters:
            if not waiter.done():
                waiter.set_exception(self._failure)
        self.schedules.view.fail(self._failure)
        self._progress.set()

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

    # What ``_schedules.ScheduleStore`` uses of the core (it folds and writes beside it).
    unfolded = _unfolded
    skip = _skip
    catch_up = _catch_up
    translate = _translate
