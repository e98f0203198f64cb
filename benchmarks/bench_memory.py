"""Steps per second of a 200-step sequential durable workflow on the memory backend.

Run: python benchmarks/bench_memory.py [--steps N] [--repeat R]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time

from workload import many_steps  # the shared workload (benchmarks/ is on sys.path when run)

from pyworkflow import configure, get_workflow_run, reset_config, start
from pyworkflow.storage import InMemoryStorageBackend


async def one_run(n: int) -> float:
    """Seconds to run a workflow of ``n`` steps from start to completion."""
    storage = InMemoryStorageBackend()
    configure(storage=storage)
    t0 = time.perf_counter()
    run_id = await start(many_steps, n)
    live = time.perf_counter() - t0
    run = await get_workflow_run(run_id)
    assert run is not None, run_id
    assert run.result == n, run
    return live


async def main(steps: int, repeat: int) -> None:
    reset_config()
    await one_run(steps)  # warm up imports and caches
    lives = [await one_run(steps) for _ in range(repeat)]
    best = statistics.median(lives)
    print(
        f"memory backend: {steps}-step workflow, median of {repeat}: "
        f"{best * 1000:.2f} ms = {steps / best:,.0f} steps/s"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=15)
    args = parser.parse_args()
    asyncio.run(main(args.steps, args.repeat))
