"""Appends of many runs in one record batch per partition (group commit across runs).

An append of several events is produced as a record batch (``send_batch``), which the
broker writes whole or not at all: that is what makes the append atomic. aiokafka queues
such batches one at a time per partition, each waiting for the previous one to leave. So an
append that became ready while another of its partition was on its way waited a produce
round trip of its own: one round trip per step per run, the throughput limit of a worker.

Here the appends of a partition that are ready while its previous batch is on its way wait
together, and leave as *one* record batch: each append's records are contiguous in it (the
log's rule is per append and readers fold records in offset order, ``_views``), and the
batch is atomic, so each append still is. Invariants:

* an append is in exactly one batch, whole, in the order the appends were queued;
* an append whose waiter gave up before its batch was built was never handed to the
  producer: nothing of it is sent (``QueuedAppend.taken`` says which case holds);
* one drain task per partition at a time, alive while its queue is not empty.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Sequence
from typing import Any

from aiokafka import AIOKafkaProducer

from ..._exceptions import StorageError

__all__ = ["AppendBatcher", "QueuedAppend"]

_RECORD_OVERHEAD = 40
"""Bytes a record takes in a batch beyond its key and value (varints, headers), rounded up."""
_BATCH_OVERHEAD = 1024


class QueuedAppend:
    """One append waiting for its batch."""

    __slots__ = ("handed", "key", "size", "taken", "values")

    def __init__(self, key: bytes, values: Sequence[bytes]) -> None:
        self.key = key
        self.values = values
        self.size = sum(len(v) + len(key) + _RECORD_OVERHEAD for v in values)
        loop = asyncio.get_running_loop()
        self.handed: asyncio.Future[asyncio.Future[Any]] = loop.create_future()
        """The delivery future of its batch, once handed to the producer."""
        self.taken = False
        """Put in a batch: from then on, it may be in the log whatever its waiter does."""


class _Queue:
    __slots__ = ("busy", "items")

    def __init__(self) -> None:
        self.items: deque[QueuedAppend] = deque()
        self.busy = False


class AppendBatcher:
    """Per partition: the appends waiting for the next record batch, and its drain task."""

    def __init__(self, producer: AIOKafkaProducer, topic: str, max_bytes: int) -> None:
        self._producer = producer
        self._topic = topic
        self.limit = max(max_bytes - _BATCH_OVERHEAD, 1)
        """Estimated bytes of the appends in one batch (``QueuedAppend.size``)."""
        self._queues: dict[int, _Queue] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    async def send(self, item: QueuedAppend, partition: int) -> asyncio.Future[Any]:
        """Queue ``item``; its batch's delivery future once the batch is handed to the
        producer. Cancelled before its batch was built, the item is dropped (unsent)."""
        queue = self._queues.get(partition)
        if queue is None:
            queue = self._queues[partition] = _Queue()
        queue.items.append(item)
        if not queue.busy:
            queue.busy = True
            task = asyncio.get_running_loop().create_task(self._drain(partition, queue))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        try:
            return await asyncio.shield(item.handed)
        except asyncio.CancelledError:
            if not item.taken:
                queue.items.remove(item)
            raise

    async def _drain(self, partition: int, queue: _Queue) -> None:
        try:
            while queue.items:
                taken = self._take(queue)
                builder = self._producer.create_batch()
                if not _fill(builder, taken):
                    # Our size estimate was short (or one append alone is too big): the
                    # first append alone, the others back to the queue's front.
                    queue.items.extendleft(reversed(taken[1:]))
                    taken = taken[:1]
                    builder = self._producer.create_batch()
                    if not _fill(builder, taken):
                        count = len(taken[0].values)
                        msg = f"an append of {count} records does not fit in one record batch"
                        taken[0].handed.set_exception(StorageError(msg))
                        continue
                for item in taken:
                    item.taken = True
                try:
                    delivery = await self._producer.send_batch(
                        builder, self._topic, partition=partition
                    )
                except Exception as exc:
                    for item in taken:
                        if not item.handed.done():
                            item.handed.set_exception(exc)
                    continue
                for item in taken:
                    if not item.handed.done():
                        item.handed.set_result(delivery)
        finally:
            queue.busy = False
            while queue.items:  # the task was cancelled (the backend closes): none is sent
                item = queue.items.popleft()
                if not item.handed.done():
                    item.handed.set_exception(StorageError("the Kafka backend closed"))

    def _take(self, queue: _Queue) -> list[QueuedAppend]:
        """The queued appends that fit in one batch (at least one), in order."""
        taken = [queue.items.popleft()]
        size = taken[0].size
        while queue.items and size + queue.items[0].size <= self.limit:
            item = queue.items.popleft()
            size += item.size
            taken.append(item)
        return taken


def _fill(builder: Any, items: list[QueuedAppend]) -> bool:
    """Append every record of ``items`` to ``builder``; False if one did not fit."""
    for item in items:
        for value in item.values:
            if builder.append(key=item.key, value=value, timestamp=None) is None:
                return False
    return True
