"""The dashboard's run list at scale: server time of its first page on file storage.

Fills a folder with N runs (100,000 by default) through the backend's own ``append`` (the
real write path, no hand-made files), unless it holds them already, then serves
``GET /`` with the dashboard app through httpx's ASGI transport (no network): the first
request of a fresh backend (cold: nothing cached in the process; the OS page cache is warm
from the fill) and the median of the next ``--repeat`` (warm). It also times
``list_runs(limit=50)`` alone and one census (the counts per status, counted in the
background by the dashboard).

Each run is a ``workflow_started`` and, for most, an outcome: 70% completed, 15% failed,
10% suspended on a sleep, 5% left running. Creation times are spread one second apart, so
the newest-first order is known. Four workflow names take turns; every tenth run has an
idempotency key.

Run: python benchmarks/bench_dashboard.py [--dir DIR] [--runs N] [--repeat R]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta

import anyio
import httpx
import msgspec

from pyworkflow.dashboard import DashboardOptions, create_app
from pyworkflow.storage import FileStorageBackend

from pyworkflow._core._events import (  # isort: skip
    Event,
    WorkflowCompleted,
    WorkflowFailed,
    WorkflowStarted,
    WorkflowSuspended,
)

T0 = datetime(2026, 1, 1, tzinfo=UTC)
NAMES = ("orders.ship", "billing.charge", "mail.digest", "etl.nightly")


def run_events(i: int) -> list[Event]:
    run_id = f"run_{i:016x}"
    at = T0 + timedelta(seconds=i)
    started = WorkflowStarted(
        run_id=run_id, sequence=1, timestamp=at, workflow_name=NAMES[i % len(NAMES)],
        args=msgspec.Raw(msgspec.json.encode([f"order-{i}", i])),
        idempotency_key=f"key-{i}" if i % 10 == 0 else None,
    )  # fmt: skip
    end = at + timedelta(milliseconds=300)
    kind = i % 20
    if kind < 14:
        outcome: Event = WorkflowCompleted(
            run_id=run_id, sequence=2, timestamp=end, result=msgspec.Raw(b'{"ok":true}')
        )
    elif kind < 17:
        outcome = WorkflowFailed(
            run_id=run_id, sequence=2, timestamp=end, error_type="ValueError",
            error_message=f"bad order {i}",
        )  # fmt: skip
    elif kind < 19:
        outcome = WorkflowSuspended(
            run_id=run_id, sequence=2, timestamp=end, reason="sleep",
            resume_at=end + timedelta(days=30),
        )  # fmt: skip
    else:
        return [started]
    return [started, outcome]


async def fill(path: str, runs: int) -> None:
    storage = FileStorageBackend(path, durability="none")
    t0 = time.perf_counter()
    for i in range(runs):
        await storage.append(f"run_{i:016x}", run_events(i), expected_sequence=0)
        if i and i % 10_000 == 0:
            print(f"{i} runs, {time.perf_counter() - t0:.0f}s", flush=True)
    print(f"{runs} runs in {time.perf_counter() - t0:.0f}s")


async def measure(path: str, runs: int, repeat: int) -> None:
    probe = FileStorageBackend(path, durability="none")
    if await probe.get_run(f"run_{runs - 1:016x}") is None:
        await fill(path, runs)
    storage = FileStorageBackend(path, durability="none")  # fresh: no cache in this process
    app = create_app(DashboardOptions(storage=storage, storage_desc=f"file:{path}"))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
        t0 = time.perf_counter()
        page = await client.get("/")
        cold = time.perf_counter() - t0
        assert page.status_code == 200
        assert page.text.count("<tr data-run-id=") == 50
        warm = []
        for _ in range(repeat):
            t0 = time.perf_counter()
            await client.get("/")
            warm.append(time.perf_counter() - t0)
    lists = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        await storage.list_runs(limit=50)
        lists.append(time.perf_counter() - t0)
    census = app.state.context.census
    await census.refresh()
    print(f"runs on file storage:            {census.total}")
    print(f"GET / first page, cold:          {cold * 1000:.1f} ms")
    print(f"GET / first page, warm (median): {statistics.median(warm) * 1000:.1f} ms")
    print(f"list_runs(limit=50), median:     {statistics.median(lists) * 1000:.1f} ms")
    print(f"census (counts per status):      {census.took:.1f} s, in the background")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", help="the storage folder (default: a new temp folder)")
    parser.add_argument("--runs", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()
    path = args.dir or tempfile.mkdtemp(prefix="bench_dashboard_")
    anyio.run(measure, path, args.runs, args.repeat)


if __name__ == "__main__":
    main()
