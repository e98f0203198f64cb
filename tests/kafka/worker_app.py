"""The app of the multi-process worker tests (``pyworkflow worker --app tests.kafka.worker_app``).

Step bodies append ``"{name} {i}"`` to the file named by ``$WORKER_TRAIL`` (one line per
execution), so the test counts how often each ran, across worker processes.
"""

from __future__ import annotations

import os

import anyio

from pyworkflow import sleep, step, workflow


@step(name="wa_work")
async def work(name: str, i: int) -> int:
    await anyio.sleep(0.05)
    async with await anyio.open_file(os.environ["WORKER_TRAIL"], "a") as trail:
        await trail.write(f"{name} {i}\n")
    return i


@workflow(durable=True, name="wa_flow")
async def flow(name: str) -> int:
    total = 0
    for i in range(3):
        total += await work(name, i)
        await sleep(0.3)
    return total


@workflow(durable=True, name="wa_long_flow")
async def long_flow(name: str) -> int:
    """About 5 s: long enough for a rebalance to happen in the middle of it."""
    total = 0
    for i in range(5):
        total += await work(name, i)
        await sleep(1.0)
    return total


@step(name="wa_slow_work")
async def slow_work(name: str, i: int) -> int:
    """Two seconds: in flight when the test pauses its worker."""
    await anyio.sleep(2.0)
    async with await anyio.open_file(os.environ["WORKER_TRAIL"], "a") as trail:
        await trail.write(f"{name} {i}\n")
    return i


@workflow(durable=True, name="wa_slow_flow")
async def slow_flow(name: str) -> int:
    return await slow_work(name, 0) + await slow_work(name, 1)
