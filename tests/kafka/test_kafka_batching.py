"""Appends of many runs in one record batch per partition (``_kafka._batcher``).

On the broker: concurrent multi-event appends of 40 runs to one partition need far fewer
produce calls than appends, and every run reads back whole and in order. The batcher's own
rules (whole appends, queue order, a waiter that gives up before its batch is built sends
nothing) are checked against a stand-in producer whose ``send_batch`` the test holds: timing
that a broker can't be made to show on demand.
"""

from __future__ import annotations

import asyncio
from typing import Any

import aiokafka
import pytest

from pyworkflow._core._events import StepCompleted, StepStarted
from pyworkflow.storage._kafka._batcher import AppendBatcher, QueuedAppend
from tests.storage.helpers import History, raw, started

from .conftest import MakeBackend


async def test_concurrent_appends_of_many_runs_share_record_batches(
    make_backend: MakeBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    import anyio

    calls: list[int] = []
    real = aiokafka.AIOKafkaProducer.send_batch

    async def counting(self: Any, batch: Any, topic: str, **kwargs: Any) -> Any:
        if topic.endswith(".events"):
            calls.append(batch.record_count())
        return await real(self, batch, topic, **kwargs)

    monkeypatch.setattr(aiokafka.AIOKafkaProducer, "send_batch", counting)
    backend = await make_backend(partitions=1)
    runs = [History() for _ in range(40)]
    for h in runs:
        await backend.append(h.run_id, [started(h)], expected_sequence=0)

    async def two_events(h: History) -> None:
        events = [
            h.step(StepStarted, 1, "s", attempt=1),
            h.step(StepCompleted, 1, "s", attempt=1, result=raw(1)),
        ]
        await backend.append(h.run_id, events, expected_sequence=1)

    async with anyio.create_task_group() as tg:
        for h in runs:
            tg.start_soon(two_events, h)
    assert sum(calls) == 80  # every record of every append went out
    assert len(calls) < 40  # in fewer batches than appends
    for h in runs:
        assert await backend.read(h.run_id) == h.events


class _Batch:
    def __init__(self) -> None:
        self.records: list[tuple[bytes, bytes]] = []

    def append(self, *, key: bytes, value: bytes, timestamp: None) -> object:
        self.records.append((key, value))
        return object()


class _Producer:
    """Stands in for AIOKafkaProducer: ``send_batch`` waits until the test lets it go."""

    def __init__(self) -> None:
        self.sent: list[list[tuple[bytes, bytes]]] = []
        self.gate = asyncio.Event()

    def create_batch(self) -> _Batch:
        return _Batch()

    async def send_batch(self, batch: _Batch, topic: str, *, partition: int) -> Any:
        await self.gate.wait()
        self.gate.clear()
        self.sent.append(batch.records)
        done: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        done.set_result(f"delivered {len(self.sent)}")
        return done


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_whole_appends_in_queue_order_and_a_dropped_waiter_sends_nothing() -> None:
    producer = _Producer()
    batcher = AppendBatcher(producer, "p.events", 1 << 20)  # type: ignore[arg-type]

    def item(run: str, n: int) -> QueuedAppend:
        return QueuedAppend(run.encode(), [f"{run}-{i}".encode() for i in range(n)])

    first = asyncio.create_task(batcher.send(item("a", 2), 0))
    await asyncio.sleep(0)  # "a" is in the batch being sent (held at send_batch)
    waiting = [asyncio.create_task(batcher.send(item(r, 3), 0)) for r in "bcd"]
    await asyncio.sleep(0)
    waiting[1].cancel()  # "c" gives up while queued: never sent
    producer.gate.set()
    assert await (await first) == "delivered 1"
    await asyncio.sleep(0)
    producer.gate.set()
    deliveries = [await (await waiting[0]), await (await waiting[2])]
    assert deliveries == ["delivered 2", "delivered 2"]  # b and d: one batch
    with pytest.raises(asyncio.CancelledError):
        await waiting[1]
    assert [[v for _, v in batch] for batch in producer.sent] == [
        [b"a-0", b"a-1"],
        [b"b-0", b"b-1", b"b-2", b"d-0", b"d-1", b"d-2"],
    ]
