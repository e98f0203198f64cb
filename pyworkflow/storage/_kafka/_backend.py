"""KafkaStorageBackend: the event log on Kafka, with local materialized views.

Topics (``{prefix}`` = ``topic_prefix``):

* ``{prefix}.events``, key = run id: the durable log (``retention.ms=-1`` and
  ``retention.bytes=-1``; see **Retention**). All of a run's events are in one partition,
  in order.
* ``{prefix}.runs`` / ``.steps`` / ``.hooks`` (compacted, keyed by run id / step id / hook
  token): the latest projected records, published by the writer of each accepted append, for
  other consumers (dashboards, services). Each value carries the log sequence it reflects.
* ``{prefix}.idempotency`` (compacted; in the partition of the idempotency key, each claim
  under a record key of its own): claims.
* ``{prefix}.schedules`` (compacted, keyed by schedule id): schedule records, folded from
  their start by every instance; a save is a compare-and-set the log decides, like an
  append (``_schedules``).
* ``{prefix}.checkpoints`` (compacted, partition = the events partition): checkpoints of the
  fold of each events partition, written by the workers (``checkpoint()``, ``_checkpoint``).
* Events partitions also hold *fences* (``fence()``): a worker that takes a partition fences
  it, and appends there tagged with an older epoch, or with none, are rejected (``_views``).

**Writes: one append = one atomic unit of the log.** The producer is idempotent
(``enable_idempotence=True``, ``acks="all"``), so a retry can neither duplicate nor reorder
what it sends. An append of several events is produced as one record batch of its own
(``create_batch()``/``send_batch()``) to the run's partition: the broker appends a batch
whole, at consecutive offsets, or not at all. An append of one event is one record, atomic by
itself; it goes through ``send()``, where the producer may pack the appends of several runs
into one batch per partition (aiokafka queues ``send_batch`` batches one at a time per
partition, waking the waiters in no particular order). A transaction would give
the same atomicity at the cost of a transaction coordinator, two more round trips per append
and ``read_committed`` consumers; nothing here needs atomicity across partitions.

**Concurrency: the log decides.** Kafka has no conditional append, so ``expected_sequence``
is enforced by a rule every reader applies while folding a partition in offset order: an
append is accepted iff its first event's sequence is the run's last accepted sequence + 1
(and ``project()`` accepts it). Each record carries the writer's id and batch number. A
writer produces its batch, then waits until its own tailing consumer has folded it and
reads the verdict: rejected means :class:`~pyworkflow.ConflictError`. (A writer whose own
view already shows the run past ``expected_sequence`` fails at once, without producing:
a view is a prefix of the log, never ahead of it.) A rejected batch
stays in the log but every reader ignores it, deterministically, as partition order is
total. This holds across processes and machines with no coordination beyond the broker.
Idempotency claims work the same way on ``{prefix}.idempotency``: the first claim of a key
in the log wins, as every reader folds the topic's partitions from their start in offset order.

**Claims and compaction.** Compaction keeps the *latest* record of each record key, while
the rule keeps the *first* claim. Were claims keyed by the idempotency key, compaction of
``[A's claim, B's claim]`` would keep only B's, and a reader starting after it would give
the key to B (B lost, but may have died before anything could restate A). So each claim is
keyed by the idempotency key plus its writer id and claim number (``_codec``): no two claims
share a record key, compaction never drops one, and the first stays first for every reader,
whatever the loser did next; no repair record, and no compaction setting, is needed for
that. Claims are placed by the partition of the idempotency key, so they stay totally
ordered. The topic grows by one record per claim (the events topic grows by several per
run). Claims written by older versions (format 1, keyed by the idempotency key, restated by
the loser) are still read; the 24 h ``min.compaction.lag.ms`` the backend creates the topic
with keeps them uncompacted for a day.

**Bounded waits, exact outcomes.** Every call gives up after ``request_timeout`` with a
:class:`~pyworkflow.TransientStorageError`, whatever the brokers do (an idempotent producer
otherwise retries a batch forever). The message of a failed append says what is known,
never a guess: *nothing was sent* (the producer did not take the batch), the *outcome is
unknown* (queued, unacknowledged: the batch stays in the producer and may land when a
broker is back, until ``aclose()``), or *in the log, verdict unknown* (acknowledged, not
folded back in time). A batch that lands late is decided by the same rule as any other: it
is accepted only if the run's log still ends at the append's ``expected_sequence``, so it
can never overwrite what anyone appended meanwhile (its own owner's retry included: the
producer keeps per-partition order, so the stale batch lands first and the retry conflicts,
or the retry landed first and the stale batch is rejected). The owner re-reads the run
after an unknown outcome and recognises its own events; a late landing is logged
(``kafka_append_landed_late``). ``aclose()`` gives the projections and the producer's queue
``request_timeout`` to drain, abandons what is left (logged), and returns within
``request_timeout`` + 5 s.

**Retention.** A ``retention.bytes`` limit on the events topic, or a ``retention.ms`` under
7 days, lets Kafka delete the oldest segments of a partition, events of runs still asleep
included: the backend refuses such a topic (``ConfigurationError`` saying how to fix it)
unless ``allow_limited_retention=True``. A ``retention.ms`` of 7 days or more is accepted
*workers only*: every reader folds a partition from its newest checkpoint, which holds the
live runs' events, and workers checkpoint each partition that changed every 30 s, so nothing
a live run needs is ever older than what retention deletes; an append by a writer that has
not fenced the partition (local mode, which writes no checkpoints) is refused. Retention
then deletes only the events of runs finished long ago: their records stay in
``{prefix}.runs``, and reading their events raises ``RunStartDeletedError``. A reader that
finds a run whose log starts past sequence 1 reports ``RunStartDeletedError`` (a
``CorruptRecordError``) from ``read``/``get_run``, never an unknown run (see ``_views``).

**Logs.** The backend logs through the process configuration (``configure(log_level=...,
log_format=...)``, even when called after the backend was made). aiokafka's own log records,
made on the backend's loop thread, are relayed there too (event ``kafka_client_log``): one
line per message per 30 s with a ``repeated`` count, not one per reconnect attempt, and
none of them reach the root logger or stderr on their own.

**lock_run** is an in-process exclusive lock (as in the memory backend). Across processes
Kafka offers no lock: workers give each run one owner through the consumer group's
partition assignment and fence the partitions they take; without workers, the append rule
stops a second executor (its next append conflicts; a step in flight may run twice, steps
are at-least-once anyway).

**Reads.** Each backend instance tails the partitions of ``{prefix}.events`` it folds (all,
unless ``fold_partitions()`` narrowed them: a worker's backend folds the ones the worker
owns) and all of ``{prefix}.idempotency`` with one consumer (no group) and folds them, with
the rule above and ``project()``, into in-memory views: per-run event lists, run/step/hook
records, claims (a KTable-like view built at start-up and kept current). Each events
partition is folded from its newest checkpoint (``fold_history=True``: from its start), so
the views hold the runs live at the checkpoint and everything appended since. The runs that
finished before it are answered by ``_history``: their records from ``{prefix}.runs``
(read into memory on the first such query, caught up at each one after), their events,
steps and hooks by reading the run's partition from where the run starts (its runs record
names the offset) to its end. ``read(run_id, after)`` of a folded run slices the run's
list: no partition replay per call. Read-your-writes: ``append`` returns after its batch is
folded, so the same backend sees it at once. For writes from other processes, every read
first asks the broker for the partition's end offset (one ``ListOffsets`` round trip, ~1 ms
locally) and waits until the fold has passed it, so a read sees every append that completed
before it began, wherever it was made.

**Costs and limits** (``benchmarks/bench_takeover.py``, 100,000 finished and 10,000 sleeping
runs). A backend folding from checkpoints starts with what is live (the sleeping runs'
events) plus what was appended since the checkpoints; its first query of an older run reads
``{prefix}.runs`` into memory (one decoded record per run, no events); ``get_run`` of an old
run then costs a ``ListOffsets`` round trip, and ``read`` of one a consumer of its own and
the partition's records from the run's start to its end. With ``fold_history=True`` the
start-up folds the whole events topic (O(history), ~25k events/s) and holds every accepted
event decoded (~1.3 KB per event of a 3-step run: ~6 GB for 1M runs of 5 events). A
long-lived client still keeps what it folded since its start (a worker's backend drops a
finished run's log and records). An append costs one produce plus the wait for the own
consumer (~2 ms each on a local broker). Never add partitions to ``{prefix}.events``: a
run's key would move to another partition, and its events would no longer be totally
ordered. ``due_runs`` reads a heap of unfinished runs by due time, fed by the same fold (so
it is rebuilt at start-up with the views): one ``ListOffsets`` round trip plus O(k log n)
for k runs due.

**Threads.** aiokafka is asyncio-only: the backend runs it on its own asyncio loop in one
thread, for asyncio and trio callers alike (see ``_bridge``). ``await start()`` (or the first
call) starts it; ``await aclose()`` (or leaving ``async with``) stops the consumer, flushes
and stops the producer, and ends the thread.
"""

from __future__ import annotations

import concurrent.futures as cf
import secrets
import threading
from collections.abc import (
    AsyncIterator,
    Callable,
    Collection,
    Coroutine,
    Iterable,
    Mapping,
    Sequence,
)
from contextlib import asynccontextmanager
from datetime import datetime
from types import TracebackType
from typing import Any, TypeVar

import anyio

from ..._core._events import Event
from ..._core._records import HookRecord, RunPage, RunStatus, StepRecord, WorkflowRun
from ..._core._schedule import Schedule
from ..._exceptions import StorageError
from ..._log_relay import LibraryLogRelay
from ..._logging import FollowingLogger
from .._children import children_of
from .._held import HeldRuns
from .._paging import check_limit
from .._port import check_after, check_append, check_due_query
from ._bridge import LoopThread, wait_future
from ._core import KafkaCore
from ._settings import KafkaSettings

__all__ = ["KafkaStorageBackend"]

T = TypeVar("T")
_CLOSE_GRACE_S = 5.0
"""aclose() returns within request_timeout + this, whatever the brokers do."""
_CLIENT_LOG_INTERVAL_S = 30.0


class KafkaStorageBackend:
    """Durable workflow storage on Apache Kafka (3.9.x brokers are the tested target).

    Args:
        bootstrap_servers: ``"host:port"``, comma-separated for several brokers.
        topic_prefix: the seven topics are ``{topic_prefix}.events``, ``.runs``, ``.steps``,
            ``.hooks``, ``.idempotency``, ``.checkpoints`` and ``.schedules``.
        partitions: partition count of topics created by the backend (at least the most
            workers you will run: a worker owns whole partitions). Existing topics keep
            theirs.
        replication_factor: replication of created topics; default: min(3, brokers).
        create_topics: create missing topics at start-up (else a missing topic is an error).
        events_retention_ms: ``retention.ms`` of a created events topic; -1 (the default)
            keeps forever; 7 days (604,800,000) or more makes the prefix workers only (see
            **Retention**). Less needs ``allow_limited_retention=True``.
        allow_limited_retention: accept any retention of the events topic, for every writer:
            a run not finished when its events are deleted can then be neither resumed nor
            read.
        fold_history: fold each events partition from its start, every run's events kept
            in memory (as an audit tool needs), instead of from its newest checkpoint (the
            default; see **Reads**).
        request_timeout: seconds to wait for the brokers before a call fails with
            :class:`~pyworkflow.TransientStorageError` (bounds every call, start-up
            included; ``aclose()`` returns within this + 5 s).
        fetch_max_wait_ms: how long the tailing consumer's fetches wait for new records.
        max_append_bytes: the largest record batch (one append) the producer sends.
        client_id: Kafka client id, shown in broker logs and metrics.
        client_options: extra aiokafka client arguments (``security_protocol``,
            ``ssl_context``, ``sasl_mechanism``, ...), given to the admin client, the
            producer and the consumer.

    Use ``async with KafkaStorageBackend(...) as storage:``, or ``await storage.start()``
    and ``await storage.aclose()``. A call before ``start()`` starts the backend.
    """

    def __init__(
        self,
        bootstrap_servers: str = "localhost:9092",
        *,
        topic_prefix: str = "pyworkflow",
        partitions: int = 6,
        replication_factor: int | None = None,
        create_topics: bool = True,
        events_retention_ms: int = -1,
        allow_limited_retention: bool = False,
        fold_history: bool = False,
        request_timeout: float = 10.0,
        fetch_max_wait_ms: int = 100,
        max_append_bytes: int = 1_048_576,
        client_id: str = "pyworkflow",
        client_options: Mapping[str, Any] | None = None,
    ) -> None:
        self._settings = KafkaSettings(
            bootstrap_servers=bootstrap_servers,
            topic_prefix=topic_prefix,
            partitions=partitions,
            replication_factor=replication_factor,
            create_topics=create_topics,
            events_retention_ms=events_retention_ms,
            allow_limited_retention=allow_limited_retention,
            fold_history=fold_history,
            request_timeout=request_timeout,
            fetch_max_wait_ms=fetch_max_wait_ms,
            max_append_bytes=max_append_bytes,
            client_id=client_id,
            client_options=dict(client_options or {}),
        )
        self._writer = secrets.token_hex(8)
        # The process configuration's logger at each line: configure(log_level=...) after
        # creating the backend still governs it, aiokafka's relayed lines included.
        self._log = FollowingLogger().bind(storage="kafka", topic_prefix=topic_prefix)
        self._relay = LibraryLogRelay(
            self._log, library="aiokafka", event="kafka_client_log", interval=_CLIENT_LOG_INTERVAL_S
        )
        self._mutex = threading.Lock()
        self._held = HeldRuns()
        self._thread: LoopThread | None = None
        self._core: KafkaCore | None = None
        self._ready: cf.Future[None] | None = None
        self._closed = False
        self._scope: frozenset[int] | None = None

    def __repr__(self) -> str:
        s = self._settings
        return f"KafkaStorageBackend({s.bootstrap_servers!r}, topic_prefix={s.topic_prefix!r})"

    @property
    def topic_prefix(self) -> str:
        """The prefix of this backend's topics."""
        return self._settings.topic_prefix

    @property
    def settings(self) -> KafkaSettings:
        """How this backend connects (workers and clients open their own clients alike)."""
        return self._settings

    @property
    def started(self) -> bool:
        """Whether ``start()`` completed and the backend is not closed."""
        ready = self._ready
        return ready is not None and ready.done() and not ready.exception() and not self._closed

    # -- lifecycle ------------------------------------------------------------------------
    async def start(self) -> None:
        """Connect, create or check the topics, and fold them into the local views.

        Idempotent; concurrent calls share one start-up.

        Raises:
            StorageError: the brokers can't be reached within ``request_timeout``, or the
                backend was closed.
            ConfigurationError: a topic exists with the wrong ``cleanup.policy``, or can't be
                created with the settings.
        """
        ready = self._ready
        if ready is not None and ready.done() and ready.exception() is None and not self._closed:
            return
        with self._mutex:
            if self._closed:
                raise StorageError(f"{self!r} is closed; create a new backend")
            if self._ready is None or self._thread is None:
                core = KafkaCore(self._settings, self._writer, self._log, self._scope)
                ready = cf.Future()
                thread = LoopThread(f"pyworkflow-kafka-{self._settings.topic_prefix}")
                thread.start(_serving(core, ready, self._relay))
                self._ready, self._thread, self._core = ready, thread, core
            ready, thread = self._ready, self._thread
        try:
            await wait_future(ready)
        except BaseException:
            if ready.done():  # start-up failed: the thread ends; a later call may retry
                await thread.join()
                self._relay.detach()
                with self._mutex:
                    if self._ready is ready:
                        self._ready = self._thread = self._core = None
            raise

    async def aclose(self) -> None:
        """Stop the consumer, flush and stop the producer, end the loop thread. Idempotent.

        Returns within ``request_timeout`` + 5 s even with every broker down: projection
        records and appends still queued then are abandoned (those appends were reported
        as of unknown outcome).
        """
        with self._mutex:
            self._closed = True
            thread, core = self._thread, self._core
        if thread is None or core is None:
            return
        thread.call_soon(core.stop)
        with anyio.move_on_after(self._settings.request_timeout + _CLOSE_GRACE_S):
            await thread.join()
        if not thread.finished:
            self._log.warning("kafka_close_timed_out", seconds=self._settings.request_timeout)
        self._relay.detach()

    async def __aenter__(self) -> KafkaStorageBackend:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def _call(self, operation: Callable[[KafkaCore], Coroutine[Any, Any, T]]) -> T:
        """Start if needed, then run ``operation(core)`` on the loop thread and await it."""
        await self.start()
        with self._mutex:
            thread, core, closed = self._thread, self._core, self._closed
        if closed or thread is None or core is None:
            raise StorageError(f"{self!r} is closed; create a new backend")
        return await wait_future(thread.submit(operation(core)))

    # -- the storage port -------------------------------------------------------------------
    async def append(self, run_id: str, events: Sequence[Event], *, expected_sequence: int) -> None:
        """Append ``events`` as one record batch; ConflictError if another writer won."""
        if not events:
            return
        check_append(run_id, events, expected_sequence, expected_sequence)  # their shape
        batch = list(events)
        await self._call(lambda core: core.append(run_id, batch, expected_sequence))

    async def read(self, run_id: str, *, after: int = 0) -> list[Event]:
        """The run's events after sequence ``after``, as of the brokers' state now."""
        check_after(after)
        return await self._call(lambda core: core.read(run_id, after))

    async def get_run(self, run_id: str) -> WorkflowRun | None:
        """The run's record, or None for an unknown id."""
        return await self._call(lambda core: core.get_run(run_id))

    async def fence(self, partition: int) -> int:
        """Take the runs of events ``partition`` over (a worker does, when the group assigns
        it the partition): append a fence with the next epoch, and tag this backend's
        appends there with it. Every reader then rejects appends tagged with an older epoch:
        a worker that lost the partition (paused past its session timeout) gets
        ``RunLockedError`` at its next append there, and its execution stops. Returns the
        epoch."""
        return await self._call(lambda core: core.fence(partition))

    def partition_of(self, run_id: str) -> int:
        """The ``{prefix}.events`` partition of ``run_id`` (the backend must be started):
        murmur2 of the key, as Kafka's default partitioner places it."""
        core = self._core
        if core is None or not self.started:
            raise StorageError(f"{self!r} is not started: start() it first")
        return core.partition_of(run_id)

    async def fold_partitions(self, partitions: Iterable[int] | None) -> None:
        """Fold (read into memory, and answer queries for) only these partitions of
        ``{prefix}.events`` from now on; None: all of them, the default.

        A worker's backend folds the partitions the worker owns, so its memory and its
        start-up grow with its share of the runs, not with the whole topic. Partitions added
        are read from their newest checkpoint (or start) and caught up before this returns;
        what was folded from the ones removed is dropped. Called before ``start()``, the
        start-up reads only these. Reading a run of a partition not folded raises
        StorageError: clients use a backend of their own, which folds all.

        Raises:
            ConfigurationError: a partition the topic doesn't have.
            TransientStorageError: the catch-up ran out of ``request_timeout`` (the partitions
                are folded meanwhile: call again to wait for the rest).
        """
        scope = None if partitions is None else frozenset(partitions)
        with self._mutex:
            self._scope = scope  # a start-up still to come folds only these
        await self._call(lambda core: core.fold_partitions(scope))

    async def checkpoint(
        self, partition: int, *, remember: Collection[str] | None = None
    ) -> int | None:
        """Write a checkpoint of this backend's fold of events ``partition`` (one it folds)
        to ``{prefix}.checkpoints``: its live runs and finished runs to remember, as of the
        returned offset (None: nothing new since the last one). A backend that folds the
        partition later starts from the newest checkpoint instead of the partition's start
        (a worker taking it over). Workers write them; see ``_checkpoint`` for the format.

        Args:
            remember: the finished runs whose start may still come again (a worker: those
                of its start commands not committed yet); None: every run finished in the
                last 8 days (the commands topic keeps a command for 7).
        """
        return await self._call(lambda core: core.checkpoint(partition, remember))

    async def wait_finished(self, run_id: str) -> WorkflowRun:
        """Wait until the run is finished and return its record.

        Not part of the storage port: ``Client.result`` uses it. The backend's tail folds
        every append as it lands, so the wait ends within a fetch of the run's end, with no
        polling. A run not in the log yet (its start command not executed yet) is waited
        for too: bound the wait with a timeout (``anyio.fail_after``). Raises
        TransientStorageError if the brokers can't be reached for the first look."""
        return await self._call(lambda core: core.wait_finished(run_id))

    async def list_runs(
        self,
        *,
        status: RunStatus | None = None,
        workflow_name: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> RunPage:
        """Runs, newest first; ``cursor`` is a previous page's ``next_cursor``."""
        check_limit(limit)
        status = RunStatus(status) if status is not None else None
        return await self._call(lambda core: core.list_runs(status, workflow_name, limit, cursor))

    async def get_step(self, step_id: str) -> StepRecord | None:
        """A step checkpoint's latest record."""
        return await self._call(lambda core: core.get_step(step_id))

    async def get_hook(self, hook_id: str) -> HookRecord | None:
        """A hook's record, by hook id."""
        return await self._call(lambda core: core.get_hook(hook_id))

    async def list_hooks(self, run_id: str | None = None) -> list[HookRecord]:
        """Hooks of one run (or of all runs), oldest first."""
        return await self._call(lambda core: core.list_hooks(run_id))

    async def get_children(self, run_id: str) -> list[WorkflowRun]:
        """The records of the child runs that ``run_id`` started with
        ``start_child_workflow`` in its workflow code, in the order it started them
        (``storage._children``)."""
        return await children_of(self, run_id)

    async def due_runs(self, until: datetime, *, limit: int = 1000) -> list[tuple[datetime, str]]:
        """Unfinished runs that need an executor by ``until``, earliest first (see
        ``StorageBackend.due_runs``): from the views' in-memory due index, after catching up
        with the events topic (one ``ListOffsets`` round trip)."""
        check_due_query(until, limit)
        return await self._call(lambda core: core.due_runs(until, limit))

    async def claim_idempotency_key(self, key: str, run_id: str) -> str:
        """Claim ``key`` for ``run_id``; the first claim in the log wins. Returns the holder."""
        return await self._call(lambda core: core.claim(key, run_id))

    async def get_schedule(self, schedule_id: str) -> Schedule | None:
        """A schedule's record, from the fold of ``{prefix}.schedules`` caught up to now."""
        return await self._call(lambda core: core.schedules.get(schedule_id))

    async def list_schedules(self) -> list[Schedule]:
        """Every schedule's record (the whole compacted topic is folded: it is small)."""
        return await self._call(lambda core: core.schedules.all())

    async def save_schedule(self, schedule: Schedule) -> None:
        """Compare-and-set a schedule's record; the log decides (``_schedules``)."""
        await self._call(lambda core: core.schedules.save(schedule))

    async def delete_schedule(self, schedule_id: str) -> bool:
        """Delete a schedule's record (a deletion, then a tombstone)."""
        return await self._call(lambda core: core.schedules.delete(schedule_id))

    @asynccontextmanager
    async def lock_run(self, run_id: str) -> AsyncIterator[None]:
        """Exclusive execution of ``run_id`` within this process (see the module docstring
        for how other processes are fenced)."""
        with self._held.hold(run_id):
            yield


def _serving(
    core: KafkaCore, ready: cf.Future[None], relay: LibraryLogRelay
) -> Callable[[], Coroutine[Any, Any, None]]:
    async def main() -> None:
        relay.attach()  # aiokafka's records from this thread; detached once it ended
        await core.serve(ready)

    return main
