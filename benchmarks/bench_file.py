"""FileStorageBackend: cost per step for each durability setting, how it grows with the run
(it should not: an append writes only the new log lines), resuming a long run from file and
reading its log.

Run: python benchmarks/bench_file.py [--steps N] [--repeat R] [--dir PATH]

Each sample gets a fresh folder under ``--dir`` (default: the system temp dir), deleted
afterwards. A step is one append (its step_started and step_completed, or the two events
apart: the engine decides); record files are written at flush points (the run starts,
suspends, resumes or finishes, a hook event, or every 64 KiB of log), so their cost lands in
the samples too, including the fsyncs the durability setting asks for. Each step's record
file is one new file: the script prints what creating one costs on that file system, before
and after (``--dir /dev/shm`` shows the backend's own cost, without the file system's).
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from pyworkflow import (
    configure,
    get_workflow_events,
    get_workflow_run,
    hook,
    reset_config,
    resume_hook,
    start,
    step,
    workflow,
)
from pyworkflow.storage import FileStorageBackend

step_times: list[float] = []
tokens: list[str] = []


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


async def _keep(token: str) -> None:
    tokens.append(token)


@workflow(durable=True)
async def steps_then_hook(n: int) -> int:
    total = 0
    for _ in range(n):
        total = await add_one(total)
    payload = await hook("go", on_created=_keep)
    return total + int(payload["add"])


def backend(path: Path, durability: Any) -> FileStorageBackend:
    storage = FileStorageBackend(path, durability=durability)
    configure(storage=storage)
    return storage


async def one_run(n: int, durability: str, folder: str | None) -> float:
    """Seconds to run a workflow of ``n`` steps from start to completion."""
    with tempfile.TemporaryDirectory(prefix="bench_file_", dir=folder) as tmp:
        backend(Path(tmp) / "data", durability)
        step_times.clear()
        t0 = time.perf_counter()
        run_id = await start(many_steps, n)
        elapsed = time.perf_counter() - t0
        run = await get_workflow_run(run_id)
        if run is None or run.result != n:
            raise RuntimeError(f"the benchmark run went wrong: {run!r}")
        return elapsed


async def replay_and_read(n: int, repeat: int, folder: str | None) -> tuple[float, float]:
    """Median seconds to resume a run of ``n`` steps waiting on a hook (a fresh backend on
    a copy of the folder: nothing cached), and to read its log with a fresh backend."""
    with tempfile.TemporaryDirectory(prefix="bench_file_", dir=folder) as tmp:
        store = Path(tmp) / "store"
        backend(store, "none")
        run_id = await start(steps_then_hook, n)
        token = tokens[-1]
        resumes, reads = [], []
        for i in range(repeat):
            copy = Path(tmp) / f"copy{i}"
            shutil.copytree(store, copy)
            backend(copy, "none")
            t0 = time.perf_counter()
            await resume_hook(token, {"add": 1})
            resumes.append(time.perf_counter() - t0)
            run = await get_workflow_run(run_id)
            if run is None or run.result != n + 1:
                raise RuntimeError(f"the resumed run went wrong: {run!r}")
            fresh = FileStorageBackend(store, durability="none")
            t0 = time.perf_counter()
            events = await get_workflow_events(run_id, storage=fresh)
            reads.append(time.perf_counter() - t0)
            if len(events) < 2 * n:
                raise RuntimeError(f"read {len(events)} events")
        return statistics.median(resumes), statistics.median(reads)


def file_cost(folder: str | None, files: int = 200) -> float:
    """Seconds to create ``files`` small files (temp file + rename, like a record file) in a
    fresh folder: what each step's record file costs on this file system right now. On
    ext4 without a journal this swings from ~20 us to ~700 us a file, with how many files
    were deleted in the last minutes (the inode allocator skips recently deleted inodes)."""
    with tempfile.TemporaryDirectory(prefix="bench_file_", dir=folder) as tmp:
        t0 = time.perf_counter()
        for i in range(files):
            temp, final = Path(tmp) / f".{i}.tmp", Path(tmp) / f"{i}.json"
            temp.write_bytes(b"{}" * 150)
            temp.replace(final)
        return time.perf_counter() - t0


def row(label: str, seconds: float, steps: int) -> str:
    per_step = seconds / steps * 1000
    return f"{label:<26}{seconds * 1000:>10.2f}{steps / seconds:>10,.0f}{per_step:>10.3f}"


async def by_durability(steps: int, repeat: int, folder: str | None, header: str) -> None:
    print(f"\n{steps}-step sequential workflow, by durability\n{header}")
    for durability in ("always", "batch", "none"):
        runs = [await one_run(steps, durability, folder) for _ in range(repeat)]
        print(row(f"durability={durability}", statistics.median(runs), steps))


async def growth(repeat: int, folder: str | None, header: str) -> None:
    print(f"\nCost per step as the run grows (durability='none')\n{header}")
    medians = {}
    for n in (100, 400):
        medians[n] = statistics.median([await one_run(n, "none", folder) for _ in range(repeat)])
        print(row(f"{n}-step run", medians[n], n))
    print(f"{'  time(400) / time(100)':<26}{medians[400] / medians[100]:>10.2f}  (linear: 4)")
    long: list[float] = []
    slices: list[list[float]] = [[] for _ in range(10)]
    for _ in range(max(3, repeat // 2)):
        long.append(await one_run(1000, "none", folder))
        marks = [*step_times[::100], step_times[-1]]
        for i in range(10):
            slices[i].append(marks[i + 1] - marks[i])
    print(row("1000-step run", statistics.median(long), 1000))
    costs = [statistics.median(spans) * 1000 for spans in slices]
    print("  its steps by 100 (ms):  " + " ".join(f"{c:.0f}" for c in costs))
    print(
        f"  steps 1-500: {sum(costs[:5]):.0f} ms, 501-1000: {sum(costs[5:]):.0f} ms "
        "(a slice with a flush of ~180 step files is the costly one)"
    )


async def main(steps: int, repeat: int, folder: str | None) -> None:
    reset_config()
    await one_run(20, "none", folder)  # warm up imports
    header = f"{'':<26}{'run (ms)':>10}{'steps/s':>10}{'ms/step':>10}"
    print(f"FileStorageBackend in {folder or tempfile.gettempdir()}, median of {repeat} runs")
    print(f"creating a small file there costs {file_cost(folder) / 200 * 1e6:.0f} us now")
    await by_durability(steps, repeat, folder, header)
    await growth(repeat, folder, header)
    print(f"creating a small file there costs {file_cost(folder) / 200 * 1e6:.0f} us now")
    resume, read = await replay_and_read(1000, repeat, folder)
    print("\nA run of 1,000 steps waiting on a hook (durability='none'), fresh backend")
    print(f"{'  resume_hook (replays)':<26}{resume * 1000:>10.2f} ms")
    print(f"{'  get_workflow_events':<26}{read * 1000:>10.2f} ms  (2,000+ events)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--dir", default=None, help="where to make the storage folders")
    args = parser.parse_args()
    asyncio.run(main(args.steps, args.repeat, args.dir))
