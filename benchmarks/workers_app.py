"""The app of ``bench_workers.py``: ``pyworkflow worker --app workers_app`` (run from
``benchmarks/``). One workflow of three trivial steps: what is measured is the engine, the
worker and the broker, not the steps."""

from __future__ import annotations

from pyworkflow import sleep, step, workflow


@step(name="bw_add_one")
async def add_one(x: int) -> int:
    return x + 1


@workflow(durable=True, name="bw_three_steps")
async def three_steps(x: int) -> int:
    x = await add_one(x)
    x = await add_one(x)
    return await add_one(x)


@workflow(durable=True, name="bw_sleeper")
async def sleeper(x: int) -> int:
    """One step, then a day's sleep: ``bench_takeover.py`` writes 10,000 runs asleep here."""
    x = await add_one(x)
    await sleep("1d")
    return x
