"""FileStorageBackend throughput: steps per second for each durability setting, and the
cost per step of a short and a long run (it should stay flat: appends never re-read a log).

Run: python benchmarks/bench_file.py [--steps N] [--repeat R] [--dir PATH]

Each run gets a fresh folder under ``--dir`` (default: the system temp dir). The times
include every file write and fsync the durability setting asks for: a step is two appends
(step_started, step_completed), each rewriting the run record and the step record.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

from pyworkflow import configure, get_workflow_run, reset_config, start, step, workflow
from pyworkflow.storage import FileStorageBackend

step_times: list[float] = []


@step()
async def add_one(x: int) -> int:
    step_times.append(time.perf_counter())
    return x + 1


@workflow(durable=True)
async def many_steps(n: int) -> int:
    total = 0
    for _ in range(n):
        total = await add_one(total)
    return total


async def one_run(n: int, durability: str, folder: str | None) -> float:
    """Seconds to run a workflow of ``n`` steps from start to completion."""
    with tempfile.TemporaryDirectory(prefix="bench_file_", dir=folder) as tmp:
        storage = FileStorageBackend(Path(tmp) / "data", durability=durability)  # type: ignore[arg-type]
        configure(storage=storage)
        step_times.clear()
        t0 = time.perf_counter()
        run_id = await start(many_steps, n)
        elapsed = time.perf_counter() - t0
        run = await get_workflow_run(run_id)
        if run is None or run.result != n:
            raise RuntimeError(f"the benchmark run went wrong: {run!r}")
        return elapsed


def row(label: str, seconds: float, steps: int) -> str:
    return f"{label:<22}{seconds * 1000:>10.1f}{steps / seconds:>10,.0f}{seconds / steps * 1000:>10.3f}"


async def main(steps: int, repeat: int, folder: str | None) -> None:
    reset_config()
    await one_run(20, "none", folder)  # warm up imports
    header = f"{'':<22}{'run (ms)':>10}{'steps/s':>10}{'ms/step':>10}"
    print(f"FileStorageBackend in {folder or tempfile.gettempdir()}, median of {repeat} runs")
    print(f"\n{steps}-step sequential workflow, by durability\n{header}")
    for durability in ("always", "batch", "none"):
        runs = [await one_run(steps, durability, folder) for _ in range(repeat)]
        print(row(f"durability={durability}", statistics.median(runs), steps))

    print(f"\nCost per step as the run grows (durability='batch')\n{header}")
    short = [await one_run(100, "batch", folder) for _ in range(repeat)]
    print(row("100-step run", statistics.median(short), 100))
    long, windows = [], {(0, 100): [], (450, 550): [], (899, 999): []}
    for _ in range(max(3, repeat // 2)):
        long.append(await one_run(1000, "batch", folder))
        for (lo, hi), spans in windows.items():
            spans.append(step_times[hi] - step_times[lo])
    print(row("1000-step run", statistics.median(long), 1000))
    for (lo, hi), spans in windows.items():
        print(row(f"  its steps {lo + 1}-{hi}", statistics.median(spans), hi - lo))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--dir", default=None, help="where to make the storage folders")
    args = parser.parse_args()
    asyncio.run(main(args.steps, args.repeat, args.dir))
