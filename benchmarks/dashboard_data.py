"""Fill a file storage folder with N runs for ``bench_dashboard.py``, through the backend's
own ``append`` (the real write path, no hand-made files).

Each run is a ``workflow_started`` and, for most, an outcome: 70% completed, 15% failed,
10% suspended on a sleep, 5% left running. Creation times are spread one second apart, so
the newest-first order is known. Four workflow names take turns; every tenth run has an
idempotency key.

Run: python benchmarks/dashboard_data.py DIR [--runs N]
"""

from __future__ import annotations

import argparse
import time
from datetime import UTC, datetime, timedelta

import anyio
import msgspec

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dir")
    parser.add_argument("--runs", type=int, default=100_000)
    args = parser.parse_args()
    anyio.run(fill, args.dir, args.runs)


if __name__ == "__main__":
    main()
