"""The Kafka backend's loop thread (``storage/_kafka/_bridge``): calls from asyncio and trio
to a coroutine on another thread's asyncio loop, many sharing one wake-up each way."""

from __future__ import annotations

import asyncio
import threading

import anyio
import pytest

from pyworkflow.storage._kafka import _bridge
from pyworkflow.storage._kafka._bridge import LoopThread, wait_future


async def test_concurrent_calls_get_their_own_results_with_shared_wakeups(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    stop = threading.Event()

    async def main() -> None:
        while not stop.is_set():  # noqa: ASYNC110 - a threading.Event, set by the test
            await asyncio.sleep(0.001)

    thread = LoopThread("test-bridge")
    thread.start(main)
    starts: list[int] = []
    real_start = LoopThread._start_submitted

    def counting(self: LoopThread) -> None:
        starts.append(len(self._submitted))
        real_start(self)

    monkeypatch.setattr(LoopThread, "_start_submitted", counting)
    wakes: list[int] = []
    real_run = _bridge._Waker._run

    def counting_run(self: _bridge._Waker) -> None:
        wakes.append(len(self._pending))
        real_run(self)

    monkeypatch.setattr(_bridge._Waker, "_run", counting_run)

    async def square(n: int) -> int:
        await asyncio.sleep(0.005)
        if n == 13:
            raise ValueError("thirteen")
        return n * n

    results: dict[int, object] = {}

    async def call(n: int) -> None:
        try:
            results[n] = await wait_future(thread.submit(square(n)))
        except ValueError as exc:
            results[n] = str(exc)

    try:
        async with anyio.create_task_group() as tg:
            for n in range(200):
                tg.start_soon(call, n)
        starts_seen, wakes_seen = list(starts), list(wakes)  # before join() adds its own
    finally:
        stop.set()
        await thread.join()
    assert results == {n: ("thirteen" if n == 13 else n * n) for n in range(200)}
    assert sum(starts_seen) == 200 and len(starts_seen) < 200  # shared loop wake-ups
    assert sum(wakes_seen) == 200 and len(wakes_seen) < 200  # shared caller wake-ups


async def test_a_cancelled_wait_cancels_the_call_on_the_loop() -> None:
    stop = threading.Event()
    cancelled = threading.Event()

    async def main() -> None:
        while not stop.is_set():  # noqa: ASYNC110 - a threading.Event, set by the test
            await asyncio.sleep(0.001)

    async def forever() -> None:
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    thread = LoopThread("test-bridge-cancel")
    thread.start(main)
    try:
        with anyio.move_on_after(0.05):
            await wait_future(thread.submit(forever()))
        with anyio.fail_after(5):
            while not cancelled.is_set():  # noqa: ASYNC110 - set on the other thread
                await anyio.sleep(0.005)
    finally:
        stop.set()
        await thread.join()
    with pytest.raises(Exception, match="closed"):
        thread.submit(forever())
