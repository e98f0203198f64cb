"""One benchmark workload, run unchanged against this project and the reference library.

It uses only the public API both implement (the seed README's): ``configure(storage=...,
default_durable=True)``, ``InMemoryStorageBackend()``, ``FileStorageBackend(base_path=...)``,
``@workflow(durable=True)``, ``@step()``, ``start``, ``resume``, ``hook``/``resume_hook``,
``get_workflow_run`` and ``get_workflow_events``. Two adaptations, both found by trying calls:

* our FileStorageBackend takes ``durability=`` ("none" = never fsync, like the reference;
  "always" = our default); it is passed only when the constructor accepts it;
* the reference logs at DEBUG to stderr by default (loguru); it is set to WARNING through its
  public ``configure_logging`` so that both libraries run quiet (ours is quiet by default).
  ``BENCH_REF_LOGS=default`` keeps the reference's default logging.

The 1,000-step replay suspends on a hook, not a sleep: the reference's ``resume()`` after a
sleep's due time re-records ``sleep.started`` and suspends again (tried with "1s", 1, 1.0,
timedelta; memory and file storage), so it never completes; ``resume_hook`` replays the run
and completes it on both.

Run one scenario; it prints one JSON line (``samples`` in seconds, ``maxrss_kib``):

    python benchmarks/workload.py SCENARIO [--repeat N] [--data DIR]
    python benchmarks/workload.py build-replay-file DIR   # setup for replay/read from file
"""

from __future__ import annotations

import argparse
import asyncio
import inspect
import json
import os
import resource
import shutil
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pyworkflow
from pyworkflow import (
    configure,
    get_workflow_events,
    get_workflow_run,
    hook,
    resume,
    resume_hook,
    start,
    step,
    workflow,
)
from pyworkflow.storage import FileStorageBackend, InMemoryStorageBackend

REPLAY_STEPS = 1000
TOKENS: dict[str, str] = {}


@step()
async def add_one(x: int) -> int:
    return x + 1


@workflow(durable=True)
async def many_steps(n: int) -> int:
    total = 0
    for _ in range(n):
        total = await add_one(total)
    return total


@workflow(durable=True)
async def three_steps(x: int) -> int:
    x = await add_one(x)
    x = await add_one(x)
    return await add_one(x)


async def _keep_token(token: str) -> None:
    TOKENS["last"] = token


@workflow(durable=True)
async def steps_then_hook(n: int) -> int:
    total = 0
    for _ in range(n):
        total = await add_one(total)
    payload = await hook("go", on_created=_keep_token)
    return total + int(payload["add"])


# -- setup helpers -------------------------------------------------------------------------
def quiet_logs() -> None:
    """Both libraries quiet (warnings only); see the module docstring."""
    setup = getattr(pyworkflow, "configure_logging", None)
    if callable(setup) and os.environ.get("BENCH_REF_LOGS") != "default":
        setup(level="WARNING")


def file_backend(path: Path, *, fsync: bool = False) -> Any:
    params = inspect.signature(FileStorageBackend).parameters
    if "durability" in params:
        return FileStorageBackend(base_path=str(path), durability="always" if fsync else "none")
    return FileStorageBackend(base_path=str(path))


def use(storage: Any) -> Any:
    configure(storage=storage, default_durable=True)
    return storage


def status_of(run: Any) -> str:
    return str(getattr(run.status, "value", run.status))


async def check_completed(run_id: str, storage: Any = None) -> None:
    run = (
        await get_workflow_run(run_id, storage=storage)
        if storage
        else await get_workflow_run(run_id)
    )
    if run is None or status_of(run) != "completed":
        raise SystemExit(f"run {run_id} did not complete: {run!r}")


async def deliver(token: str) -> None:
    """Deliver the hook payload; resume too if the library does not continue the run itself."""
    await resume_hook(token, {"add": 1})
    run = await get_workflow_run(token.split(":")[0])
    if run is not None and status_of(run) != "completed":
        await resume(token.split(":")[0])


# -- scenarios: each returns the seconds of one timed sample ------------------------------
async def steps_memory(n: int) -> float:
    use(InMemoryStorageBackend())
    t0 = time.perf_counter()
    run_id = await start(many_steps, n)
    elapsed = time.perf_counter() - t0
    await check_completed(run_id)
    return elapsed


def steps_file(n: int, *, fsync: bool) -> Callable[[], Awaitable[float]]:
    async def sample() -> float:
        with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
            use(file_backend(Path(tmp), fsync=fsync))
            t0 = time.perf_counter()
            run_id = await start(many_steps, n)
            elapsed = time.perf_counter() - t0
            await check_completed(run_id)
        return elapsed

    return sample


async def concurrent_memory() -> float:
    use(InMemoryStorageBackend())
    t0 = time.perf_counter()
    run_ids = await asyncio.gather(*(start(three_steps, i) for i in range(300)))
    elapsed = time.perf_counter() - t0
    for run_id in run_ids[::37]:
        await check_completed(run_id)
    return elapsed


async def concurrent_file_durable() -> float:
    """100 concurrent 3-step runs on file storage, ours with ``durability="always"`` (an
    append returns once it is on stable storage). The reference has no such setting."""
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
        use(file_backend(Path(tmp), fsync=True))
        t0 = time.perf_counter()
        run_ids = await asyncio.gather(*(start(three_steps, i) for i in range(100)))
        elapsed = time.perf_counter() - t0
        for run_id in run_ids[::17]:
            await check_completed(run_id)
    return elapsed


async def replay_memory() -> float:
    use(InMemoryStorageBackend())
    run_id = await start(steps_then_hook, REPLAY_STEPS)
    token = TOKENS["last"]
    assert token.startswith(run_id), (token, run_id)
    t0 = time.perf_counter()
    await deliver(token)
    elapsed = time.perf_counter() - t0
    await check_completed(run_id)
    return elapsed


async def build_replay_file(store: Path) -> str:
    """A run of 1,000 steps suspended on a hook, in ``store`` (setup, not timed); its token."""
    use(file_backend(store))
    run_id = await start(steps_then_hook, REPLAY_STEPS)
    token = TOKENS["last"]
    assert token.startswith(run_id), (token, run_id)
    return token


def replay_file(data: Path, token: str) -> Callable[[], Awaitable[float]]:
    async def sample() -> float:
        with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
            copy = Path(tmp) / "store"
            shutil.copytree(data / "store", copy)
            use(file_backend(copy))  # a fresh backend: nothing cached from the build
            t0 = time.perf_counter()
            await deliver(token)
            elapsed = time.perf_counter() - t0
            await check_completed(token.split(":")[0])
        return elapsed

    return sample


def read_file(data: Path, run_id: str) -> Callable[[], Awaitable[float]]:
    async def sample() -> float:
        storage = file_backend(data / "store")  # a fresh backend per read, like a new process
        t0 = time.perf_counter()
        events = await get_workflow_events(run_id, storage=storage)
        elapsed = time.perf_counter() - t0
        if len(events) < 2 * REPLAY_STEPS:
            raise SystemExit(f"expected 2,000+ events, read {len(events)}")
        return elapsed

    return sample


def scenarios(data: Path | None, token: str) -> dict[str, Callable[[], Awaitable[float]]]:
    table: dict[str, Callable[[], Awaitable[float]]] = {
        "steps200_memory": lambda: steps_memory(200),
        "steps100_memory": lambda: steps_memory(100),
        "steps400_memory": lambda: steps_memory(400),
        "steps200_file": steps_file(200, fsync=False),
        "steps100_file": steps_file(100, fsync=False),
        "steps400_file": steps_file(400, fsync=False),
        "steps200_file_fsync": steps_file(200, fsync=True),
        "concurrent300_memory": concurrent_memory,
        "concurrent100_file_always": concurrent_file_durable,
        "replay1000_memory": replay_memory,
    }
    if data is not None:
        table["replay1000_file"] = replay_file(data, token)
        table["read2000_file"] = read_file(data, token.split(":")[0])
    return table


async def measure(name: str, repeat: int, data: Path | None, token: str) -> dict[str, Any]:
    table = scenarios(data, token)
    if name not in table:
        raise SystemExit(f"unknown scenario {name!r}; choose from {', '.join(table)}")
    sample = table[name]
    await sample()  # warm-up: imports, caches, first-call costs
    samples = [await sample() for _ in range(repeat)]
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"scenario": name, "samples": samples, "maxrss_kib": rss}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("scenario")
    parser.add_argument("data", nargs="?", type=Path, help="for build-replay-file")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--data", dest="data_opt", type=Path, help="built by build-replay-file")
    args = parser.parse_args()
    quiet_logs()
    if args.scenario == "build-replay-file":
        shutil.rmtree(args.data, ignore_errors=True)
        args.data.mkdir(parents=True)
        token = asyncio.run(build_replay_file(args.data / "store"))
        (args.data / "token").write_text(token)
        return
    data = args.data_opt
    token = (data / "token").read_text() if data is not None else ""
    result = asyncio.run(measure(args.scenario, args.repeat, data, token))
    sys.stdout.write(json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
