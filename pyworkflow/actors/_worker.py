"""Workers: supervisors that share a Kafka storage's runs through a consumer group.

Every worker joins the consumer group ``{prefix}.workers`` on ``{prefix}.commands``. The
group's partition assignment is run placement: a worker executes the runs whose partition it
owns, and only those: it takes their commands (start, hook payload, cancel, resume) from the
bus and wakes their timers from the due index. When a worker dies, the group gives its
partitions to the others after the session timeout, and the new owner finds their runs in the
due index (running ones are due at once) and recovers them from the log. On a rebalance, a
worker hands a revoked partition back only after its runs' running steps have finished and
been recorded (no new step starts meanwhile), so two workers never execute one run at once
while both are alive and in the group. A worker that takes a partition fences it first
(``KafkaStorageBackend.fence``: a fence record with the partition's next epoch, which tags
its appends there): a worker that stalled past its session timeout and then wakes is
refused at its next append there (``PartitionFencedError``) and its execution of that run
stops (a step body in flight may have run twice: steps are at-least-once). Commands of a
partition that is being fenced wait for it.
"""

from __future__ import annotations

import asyncio
import concurrent.futures as cf
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any

import anyio
import anyio.from_thread
import msgspec
from anyio.lowlevel import current_token

from .._exceptions import (
    ConfigurationError,
    RunLockedError,
    StorageError,
    TransientStorageError,
    WorkflowError,
)
from .._execution._clock import Clock
from .._execution._drafts import Derive
from .._execution._owner import Backoff
from .._execution._requests import CancelRequest
from ..storage._kafka._backend import KafkaStorageBackend
from ..storage._kafka._errors import PartitionFencedError
from ._actor import RunActor
from ._bus import CommandBus, Delivery
from ._commands import CancelCommand, HookCommand, ResumeCommand, StartCommand
from ._supervisor import Supervisor

__all__ = ["Worker"]

_RECEIVE_WAIT = 0.2
CHECKPOINT_INTERVAL = 30.0
"""Seconds between two checkpoints of an owned partition (when it changed)."""


class Worker(Supervisor):
    """A supervisor for the runs of the partitions the consumer group gives it.

    ``async with Worker(storage=KafkaStorageBackend(...)) as worker: await worker.serve()``
    runs until cancelled (``pyworkflow worker`` does this, with signal handling).

    Args:
        storage: a KafkaStorageBackend (started here if it isn't).
        max_active: at most this many runs execute at once.
        session_timeout: the consumer group's session timeout in seconds: a dead worker's
            runs move to the others after about this long.
        grace_period: on leaving, running steps get this long to finish and be recorded.
    """

    def __init__(
        self,
        storage: KafkaStorageBackend,
        *,
        max_active: int = 1000,
        session_timeout: float = 10.0,
        grace_period: float = 30.0,
        clock: Clock | None = None,
    ) -> None:
        if not isinstance(storage, KafkaStorageBackend):
            msg = (
                f"Worker(storage={storage!r}): workers share runs through Kafka; pass a "
                "KafkaStorageBackend"
            )
            raise ConfigurationError(msg)
        if not isinstance(session_timeout, int | float) or session_timeout < 1:
            msg = f"Worker(session_timeout={session_timeout!r}): pass seconds >= 1"
            raise ConfigurationError(msg)
        super().__init__(
            storage,
            max_active=max_active,
            clock=clock,
            poll_interval=1.0,
            grace_period=grace_period,
        )
        self._kafka = storage
        self.session_timeout = float(session_timeout)
        self._backoff = Backoff(initial=0.2, cap=5.0, attempts=None)
        self._owned: set[int] = set()
        self._taking: set[int] = set()
        """Partitions assigned to this worker and being fenced: not owned yet."""
        self._taken = anyio.Event()
        """Set (and replaced) whenever a take ends."""
        self._changes = 0
        """Rebalances seen (takes and give-backs)."""
        self._uncommitted: dict[int, dict[str, int]] = {}
        """Per owned partition, the start commands handled and not committed yet: run id ->
        offset. Their runs, if finished, are remembered by checkpoints (``_checkpoint``)."""
        self._committed: set[int] = set()
        """Owned partitions with a commit of commands since they were taken."""
        self._fenced: set[int] = set()
        """Owned partitions where another worker's fence rejected an append: their runs
        wait (``_fence_again``)."""
        settings = storage.settings
        self._bus = CommandBus(
            settings,
            group=f"{settings.topic_prefix}.workers",
            session_timeout=self.session_timeout,
            on_assigned=self._on_bus(self._take),
            on_revoked=self._on_bus(self._give_back),
        )
        self._token: Any = None

    def _owns(self, run_id: str) -> bool:
        if not self._bus.partitions:
            return False
        partition = self._kafka.partition_of(run_id)  # commands and events: alike
        return partition in self._owned and partition not in self._fenced

    @property
    def owned(self) -> frozenset[int]:
        """The partitions of ``{prefix}.commands`` (and so of runs) this worker owns now."""
        return frozenset(self._owned)

    async def serve(self) -> None:
        """Take commands of the owned partitions until cancelled; hand everything back on
        the way out (the supervisor's grace period applies)."""
        self._check_open()
        assert isinstance(self.storage, KafkaStorageBackend)
        await self.storage.fold_partitions(())  # until the group assigns some (starts it)
        self._token = current_token()
        await self._bus.start()
        assert self._tg is not None
        self._tg.start_soon(self._checkpoints)
        self.log.info("worker_started", group=self._bus.group, partitions=self._bus.partitions)
        try:
            delays = self._backoff.delays()
            while True:
                try:
                    deliveries = await self._bus.receive(_RECEIVE_WAIT)
                    if deliveries:
                        done = await self._handle(deliveries)
                        await self._bus.commit(done)
                        self._forget_committed(done)
                except TransientStorageError as exc:
                    # The broker is away (or the group moved on): commands not committed
                    # come again, and executing one twice does nothing more.
                    delay = next(delays)
                    self.log.warning("commands_retry", delay=delay, error=str(exc))
                    await anyio.sleep(delay)
                    continue
                delays = self._backoff.delays()
        finally:
            with anyio.CancelScope(shield=True):
                self._engine.drain()
                await self._bus.aclose()
                self.log.info("worker_stopped")

    # -- commands -------------------------------------------------------------------------
    async def _handle(self, deliveries: list[Delivery]) -> dict[int, int]:
        """Execute a batch of commands: each run's in order, different runs' at once (a
        start waits for its ``workflow_started`` to be written: one after the other, 100
        starts would take 100 produce round trips). Returns the last offset per partition,
        all of whose commands up to it were handled."""
        while self._taking & {d.partition for d in deliveries}:
            await self._taken.wait()  # assigned, being fenced: then they are owned
        done: dict[int, int] = {}
        per_run: dict[str, list[Delivery]] = {}
        for delivery in deliveries:
            if delivery.partition not in self._owned:
                continue  # revoked meanwhile: the new owner reads it again
            done[delivery.partition] = delivery.offset
            command = delivery.command
            if command is None:
                self.log.warning("command_unreadable", error=str(delivery.error))
                continue
            per_run.setdefault(command.run_id, []).append(delivery)
        transient: list[TransientStorageError] = []
        async with anyio.create_task_group() as tg:
            for run_deliveries in per_run.values():
                tg.start_soon(self._handle_run, run_deliveries, transient)
        if transient:  # nothing is committed: the commands come again (all idempotent)
            first: dict[int, int] = {}
            for delivery in deliveries:
                first.setdefault(delivery.partition, delivery.offset)
            await self._bus.rewind(first)
            raise transient[0]
        return done

    async def _handle_run(
        self, deliveries: list[Delivery], transient: list[TransientStorageError]
    ) -> None:
        for delivery in deliveries:
            command = delivery.command
            assert command is not None
            if isinstance(command, StartCommand):
                starts = self._uncommitted.setdefault(delivery.partition, {})
                starts[command.run_id] = delivery.offset
            try:
                await self._dispatch(command)
            except TransientStorageError as exc:  # before WorkflowError: it is one
                transient.append(exc)  # this run's later commands wait for the retry
                return
            except PartitionFencedError as exc:  # not this worker's: never committed here
                transient.append(TransientStorageError(str(exc)))
                return
            except WorkflowError as exc:
                self.log.warning("command_refused", run_id=command.run_id, error=str(exc))

    async def _dispatch(self, command: Any) -> None:
        run_id = command.run_id
        match command:
            case StartCommand():
                self._starting.add(run_id)  # running in the due index, yet not a recovery
                try:
                    await self._start(command)
                finally:
                    self._starting.discard(run_id)
            case HookCommand():
                payload = msgspec.json.decode(command.payload)
                owner, derive = await self._engine.hook_request(command.token, payload)
                await self._command(owner, derive)
            case CancelCommand():
                await self._command(run_id, CancelRequest(command.reason))
            case ResumeCommand():
                await self._wake(run_id)

    async def _start(self, command: StartCommand) -> None:
        """Start the command's run (or find it started) and have it go on here. A run of
        ours that no actor hosts yet is started by its actor: the start is written with the
        workflow's first events (one append), before the command is committed."""
        holder, started = await self._engine.prepare_start(
            command.run_id,
            command.workflow,
            command.args,
            command.kwargs,
            idempotency_key=command.idempotency_key,
        )
        created = False
        if started is not None and self._owns(holder):
            await self._take_slot()
            if holder not in self._actors:
                if await self._start_here(started):
                    return  # its actor is on it
            else:
                self._slots.release()
        elif started is not None:
            created = await self._engine.write_start(started)  # fenced out, most likely
        if self._owns(holder) and (created or await self._unfinished(holder)):
            await self._wake(holder, fresh=created)  # a start again: it goes on

    def _forget_committed(self, done: dict[int, int]) -> None:
        """Commands up to these offsets are committed: their starts will not come again."""
        for partition, last in done.items():
            self._committed.add(partition)
            starts = self._uncommitted.get(partition, {})
            for run_id in [r for r, offset in starts.items() if offset <= last]:
                del starts[run_id]

    async def _unfinished(self, run_id: str) -> bool:
        """Whether the run is known here and not finished (a finished run's log is not
        kept by a worker's backend: only that it finished)."""
        run = await self.storage.get_run(run_id)
        return run is not None and not run.status.is_finished

    # -- rebalances (called on the bus thread) ---------------------------------------------
    def _on_bus(
        self, fn: Callable[[set[int]], Awaitable[None]]
    ) -> Callable[[set[int]], Awaitable[None]]:
        """Run ``fn`` in this worker's event loop, awaited from the bus's asyncio loop."""

        async def hop(partitions: set[int]) -> None:
            done: cf.Future[None] = cf.Future()

            async def run() -> None:
                try:
                    await fn(partitions)
                except BaseException as exc:
                    done.set_exception(exc)
                    raise
                else:
                    done.set_result(None)

            def spawn() -> bool:
                if self._closing or self._tg is None:
                    return False  # leaving: the group hears it soon
                self._tg.start_soon(run)
                return True

            if anyio.from_thread.run_sync(spawn, token=self._token):
                await asyncio.wrap_future(done)

        return hop

    async def _take(self, partitions: set[int]) -> None:
        """Fence the partitions (their previous owner's appends are rejected from now on),
        then execute their runs. Commands of theirs received meanwhile wait (``_handle``)."""
        self._taking |= partitions
        try:
            await self._fold(self._owned | self._taking)
            epochs = await self._fence(partitions)
        finally:
            self._taking -= partitions
            self._taken.set()
            self._taken = anyio.Event()
        self._owned |= partitions
        self._fenced -= partitions
        self._committed -= partitions
        for partition in partitions:
            self._uncommitted[partition] = {}
        self._changes += 1
        self.log.info("partitions_assigned", partitions=sorted(partitions), epochs=epochs)
        self._poll_soon()  # their running and due runs, from the due index

    async def _fold(self, partitions: set[int]) -> None:
        """Have the storage fold just these partitions (the added ones read and caught up),
        retrying while the broker is away."""
        assert isinstance(self.storage, KafkaStorageBackend)
        storage = self.storage
        await self._engine.retrying(lambda: storage.fold_partitions(partitions), "fold")

    async def _fence(self, partitions: set[int]) -> dict[int, int]:
        """Fence each partition (all at once), retrying while the broker is away; their
        epochs."""
        assert isinstance(self.storage, KafkaStorageBackend)
        storage = self.storage
        epochs: dict[int, int] = {}

        async def fence(partition: int) -> None:
            call = partial(storage.fence, partition)
            epochs[partition] = await self._engine.retrying(call, f"fence {partition}")

        async with anyio.create_task_group() as tg:
            for partition in sorted(partitions):
                tg.start_soon(fence, partition)
        return dict(sorted(epochs.items()))

    async def _locked_out(self, actor: RunActor, first: Derive | None, exc: RunLockedError) -> None:
        """A run's append was fenced by a worker that took its partition: this worker lost
        it, and hears so from the group at its next heartbeat (it was paused past its
        session timeout). Its actor stops; the command goes unanswered here and reaches the
        new owner. Should the group still give the partition to this worker a while later
        (a fence from a worker that held it in between), fence it again then."""
        if not isinstance(exc, PartitionFencedError):
            await super()._locked_out(actor, first, exc)
            return
        self.log.info("run_fenced", run_id=actor.run_id, partition=exc.partition)
        actor.error = exc
        partition = exc.partition
        if partition in self._owned and partition not in self._fenced and self._tg is not None:
            self._fenced.add(partition)  # its runs wait
            self._tg.start_soon(self._fence_again, partition, self._changes)

    async def _fence_again(self, partition: int, changes: int) -> None:
        """Fence ``partition`` again if the group still gives it to this worker after a
        session timeout, with no rebalance since: a stale worker has learnt by then that it
        lost it. Then its runs are due again."""
        await anyio.sleep(self.session_timeout)
        if changes != self._changes or partition not in self._owned:
            return
        self.log.warning("partition_fenced_again", partition=partition)
        await self._fence({partition})
        self._fenced.discard(partition)
        self._poll_soon()

    async def _checkpoints(self) -> None:
        """Checkpoint each owned partition's fold every ``CHECKPOINT_INTERVAL`` seconds (if
        anything was folded there since): a takeover starts from the newest."""
        while True:
            await anyio.sleep(CHECKPOINT_INTERVAL)
            for partition in sorted(self._owned - self._fenced):
                await self._checkpoint(partition)

    async def _checkpoint(self, partition: int) -> None:
        assert isinstance(self.storage, KafkaStorageBackend)
        # The finished runs whose start command may come again: those of the starts not
        # committed yet; until this worker's first commit there, also those the previous
        # owner left uncommitted (unknown here: the checkpoint keeps every one it had).
        remember = None
        if partition in self._committed:
            remember = set(self._uncommitted.get(partition, ()))
        try:
            offset = await self.storage.checkpoint(partition, remember=remember)
        except StorageError as exc:  # the next one will do
            self.log.warning("checkpoint_failed", partition=partition, error=str(exc))
        else:
            if offset is not None:
                self.log.debug("checkpoint_written", partition=partition, offset=offset)

    async def _give_back(self, partitions: set[int]) -> None:
        """Stop the runs of revoked partitions: running steps finish, nothing new starts."""
        self._owned -= partitions
        self._changes += 1
        self.log.info("partitions_revoked", partitions=sorted(partitions))
        self._engine.drain(lambda run_id: not self._owns(run_id))
        leaving = [a for run_id, a in self._actors.items() if not self._owns(run_id)]
        with anyio.move_on_after(self.session_timeout / 2):
            for actor in leaving:
                await actor.rested()
        with anyio.move_on_after(self.session_timeout / 4):  # the next owner starts there
            for partition in sorted(partitions):
                await self._checkpoint(partition)
        for partition in partitions:
            self._uncommitted.pop(partition, None)
            self._committed.discard(partition)
        try:
            assert isinstance(self.storage, KafkaStorageBackend)
            await self.storage.fold_partitions(self._owned | self._taking)  # drops the rest
        except TransientStorageError as exc:  # dropping needs no broker; a take may retry
            self.log.warning("fold_failed", error=str(exc))
