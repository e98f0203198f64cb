"""The command bus: aiokafka clients for ``{prefix}.commands``, on their own asyncio thread.

``{prefix}.commands`` has as many partitions as ``{prefix}.events`` and the same keys (run
ids), so partition *n* of one holds the commands of the runs whose events are in partition
*n* of the other. Workers share the consumer group ``{prefix}.workers``: owning a partition
of the commands topic is owning its runs. Clients only produce. Like the storage backend,
the clients run on a dedicated asyncio loop in one thread (aiokafka is asyncio-only), so the
host may run on trio or asyncio.
"""

from __future__ import annotations

import asyncio
import concurrent.futures as cf
import contextlib
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from typing import Any, TypeVar

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.abc import ConsumerRebalanceListener
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, TopicAlreadyExistsError

from .._exceptions import ConfigurationError, TransientStorageError
from ..storage._kafka._bridge import LoopThread, wait_future
from ..storage._kafka._settings import KafkaSettings
from ._commands import Command, decode_command, encode_command

__all__ = ["CommandBus", "Delivery"]

T = TypeVar("T")

OnRebalance = Callable[[set[int]], Awaitable[None]]
"""Called (on the bus thread) with the partitions assigned, or revoked, as a set."""

_COMMANDS_RETENTION_MS = 7 * 24 * 3600 * 1000
"""Commands are acted on within seconds; a week covers any outage worth waiting out."""


class Delivery:
    """A command read from the bus (or the error that made its record unreadable)."""

    __slots__ = ("command", "error", "offset", "partition")

    def __init__(
        self, partition: int, offset: int, command: Command | None, error: Exception | None
    ) -> None:
        self.partition = partition
        self.offset = offset
        self.command = command
        self.error = error


class CommandBus:
    """Sends commands (clients and workers) and, with ``group``, receives those of the
    partitions this member owns (workers)."""

    def __init__(
        self,
        settings: KafkaSettings,
        *,
        group: str | None = None,
        session_timeout: float = 10.0,
        on_assigned: OnRebalance | None = None,
        on_revoked: OnRebalance | None = None,
    ) -> None:
        self.settings = settings
        self.topic = f"{settings.topic_prefix}.commands"
        self.group = group
        self.session_timeout = session_timeout
        self._on_assigned = on_assigned
        self._on_revoked = on_revoked
        self._thread = LoopThread(f"pyworkflow-commands-{settings.topic_prefix}")
        self._ready: cf.Future[None] = cf.Future()
        self._stop: asyncio.Event | None = None
        self._producer: AIOKafkaProducer | None = None
        self._consumer: AIOKafkaConsumer | None = None
        self.partitions = 0

    # -- lifecycle ----------------------------------------------------------------------
    async def start(self) -> None:
        self._thread.start(self._serve)
        await wait_future(self._ready)

    async def aclose(self) -> None:
        stop = self._stop
        if stop is not None:
            self._thread.call_soon(stop.set)
        await self._thread.join()

    async def _serve(self) -> None:
        self._stop = asyncio.Event()
        try:
            try:
                await self._open()
            except BaseException as exc:
                self._ready.set_exception(_translate("starting the command bus", exc))
                return
            self._ready.set_result(None)
            await self._stop.wait()
        finally:
            if self._consumer is not None:
                await self._consumer.stop()
            if self._producer is not None:
                await self._producer.stop()

    async def _open(self) -> None:
        options = self.settings.common_options()
        admin = AIOKafkaAdminClient(**options)
        await admin.start()
        try:
            self.partitions = await self._ensure_topic(admin)
        finally:
            await admin.close()
        self._producer = AIOKafkaProducer(**options, acks="all", enable_idempotence=True)
        await self._producer.start()
        if self.group is not None:
            timeout_ms = int(self.session_timeout * 1000)
            self._consumer = AIOKafkaConsumer(
                **options,
                group_id=self.group,
                enable_auto_commit=False,
                auto_offset_reset="earliest",
                session_timeout_ms=timeout_ms,
                heartbeat_interval_ms=max(100, timeout_ms // 4),
                rebalance_timeout_ms=max(timeout_ms, 30_000),
                max_poll_interval_ms=max(timeout_ms * 3, 300_000),
            )
            self._consumer.subscribe([self.topic], listener=_Listener(self))
            await self._consumer.start()

    async def _ensure_topic(self, admin: AIOKafkaAdminClient) -> int:
        """Create ``{prefix}.commands`` like the events topic if it is missing; its
        partition count (which must be the events topic's)."""
        events = self.settings.topics.events
        described = await admin.describe_topics([events, self.topic])
        counts = {d["topic"]: len(d["partitions"]) for d in described if not d["error_code"]}
        if events not in counts:
            msg = f"topic {events!r} is missing: start the KafkaStorageBackend first"
            raise ConfigurationError(msg)
        wanted = counts[events]
        if self.topic not in counts:
            topic = NewTopic(
                self.topic,
                wanted,
                self.settings.replication_factor or 1,
                topic_configs={"retention.ms": str(_COMMANDS_RETENTION_MS)},
            )
            with contextlib.suppress(TopicAlreadyExistsError):  # another member made it
                await admin.create_topics([topic], timeout_ms=self.settings.request_timeout_ms)
            return wanted
        if counts[self.topic] != wanted:
            msg = (
                f"topic {self.topic!r} has {counts[self.topic]} partitions but {events!r} has "
                f"{wanted}: they must match (a run's commands and events share a partition "
                "number); recreate the commands topic with the same count"
            )
            raise ConfigurationError(msg)
        return wanted

    # -- calls (from the host's event loop) --------------------------------------------
    async def _on_loop(self, coro: Coroutine[Any, Any, T]) -> T:
        return await wait_future(self._thread.submit(coro))

    async def send(self, command: Command) -> None:
        """Produce ``command`` keyed by its run id; return once the broker has it (acks=all)."""
        await self._on_loop(self._send(command))

    async def _send(self, command: Command) -> None:
        assert self._producer is not None
        try:
            await self._producer.send_and_wait(
                self.topic, encode_command(command), key=command.run_id.encode()
            )
        except KafkaError as exc:
            raise _translate(f"sending a {command.__class__.__name__}", exc) from exc

    async def receive(self, wait: float) -> list[Delivery]:
        """Commands of the owned partitions (waiting at most ``wait`` seconds for one)."""
        return await self._on_loop(self._receive(wait))

    async def _receive(self, wait: float) -> list[Delivery]:
        assert self._consumer is not None
        batches = await self._consumer.getmany(timeout_ms=int(wait * 1000), max_records=500)
        out: list[Delivery] = []
        for tp, records in batches.items():
            for record in records:
                try:
                    command: Command | None = decode_command(record.value)
                except ConfigurationError as exc:
                    out.append(Delivery(tp.partition, record.offset, None, exc))
                else:
                    out.append(Delivery(tp.partition, record.offset, command, None))
        return out

    async def commit(self, offsets: dict[int, int]) -> None:
        """Mark commands up to these offsets (partition -> last handled offset) as done."""
        if offsets:
            await self._on_loop(self._commit(offsets))

    async def _commit(self, offsets: dict[int, int]) -> None:
        assert self._consumer is not None
        owned = self._consumer.assignment()
        tps = {TopicPartition(self.topic, p): o + 1 for p, o in offsets.items()}
        await self._consumer.commit({tp: o for tp, o in tps.items() if tp in owned})

    async def rewind(self, offsets: dict[int, int]) -> None:
        """Read again from these offsets (partition -> offset) of the owned partitions:
        commands received but not handled (the consumer's position moved past them)."""
        if offsets:
            await self._on_loop(self._rewind(offsets))

    async def _rewind(self, offsets: dict[int, int]) -> None:
        assert self._consumer is not None
        owned = self._consumer.assignment()
        for partition, offset in offsets.items():
            tp = TopicPartition(self.topic, partition)
            if tp in owned:
                self._consumer.seek(tp, offset)

    async def rebalanced(self, partitions: Sequence[TopicPartition], assigned: bool) -> None:
        hook = self._on_assigned if assigned else self._on_revoked
        if hook is not None:
            await hook({tp.partition for tp in partitions if tp.topic == self.topic})


class _Listener(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, bus: CommandBus) -> None:
        self.bus = bus

    async def on_partitions_revoked(self, revoked: Sequence[TopicPartition]) -> None:
        await self.bus.rebalanced(revoked, assigned=False)

    async def on_partitions_assigned(self, assigned: Sequence[TopicPartition]) -> None:
        await self.bus.rebalanced(assigned, assigned=True)


def _translate(what: str, exc: BaseException) -> Exception:
    if isinstance(exc, ConfigurationError):
        return exc
    if isinstance(exc, KafkaError | OSError | asyncio.TimeoutError):
        return TransientStorageError(f"{what} failed: {exc!r}; the broker may be unreachable")
    return TransientStorageError(f"{what} failed: {exc!r}")
