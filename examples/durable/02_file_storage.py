"""02 - File storage: the order workflow of 01, persisted as human-readable files.

Run: python 02_file_storage.py 2>/dev/null

The run is stored under ``workflow_data/`` next to this script (cleaned at each start):
``runs/{run_id}.json``, ``events/{run_id}.jsonl`` (append-only, one event per line),
``steps/{step_id}.json``, ``hooks/{hook_id}.json`` and ``.locks/``. A new backend on the same
folder (as a restarted process would make) reads the run back.
"""

import asyncio
import shutil
from pathlib import Path

from pyworkflow import (
    configure,
    get_workflow_events,
    get_workflow_run,
    reset_config,
    start,
    step,
    workflow,
)
from pyworkflow.storage import FileStorageBackend

DATA = Path(__file__).resolve().parent / "workflow_data"


@step()
async def process_order(order_id: str) -> dict:
    return {"order_id": order_id, "status": "processed"}


@step()
async def charge_payment(order: dict, amount: float) -> dict:
    return {**order, "charged": amount, "status": "charged"}


@step()
async def send_notification(order: dict) -> dict:
    return {**order, "notified": True, "status": "completed"}


@workflow(durable=True)
async def order_workflow(order_id: str, amount: float) -> dict:
    order = await process_order(order_id)
    order = await charge_payment(order, amount)
    return await send_notification(order)


def print_tree(folder: Path, prefix: str = "") -> None:
    entries = sorted(folder.iterdir())
    for i, entry in enumerate(entries):
        last = i == len(entries) - 1
        print(f"{prefix}{'└── ' if last else '├── '}{entry.name}{'/' if entry.is_dir() else ''}")
        if entry.is_dir():
            print_tree(entry, prefix + ("    " if last else "│   "))


async def main() -> None:
    shutil.rmtree(DATA, ignore_errors=True)
    reset_config()
    configure(storage=FileStorageBackend(base_path=DATA), default_durable=True)

    print("=== Durable workflow with file storage ===")
    run_id = await start(order_workflow, "order-123", 99.99)
    run = await get_workflow_run(run_id)
    print(f"Run:    {run_id}")
    print(f"Status: {run.status.value}")
    print(f"Result: {run.result}")

    print("\nEvent log:")
    for event in await get_workflow_events(run_id):
        print(f"  {event.sequence:>2}: {event.type.value}")

    print(f"\nStored files ({DATA.name}/):")
    print_tree(DATA)

    print(f"\nruns/{run_id}.json (a projection of the event log):")
    print((DATA / "runs" / f"{run_id}.json").read_text().rstrip())

    print(f"\nevents/{run_id}.jsonl (append-only, one JSON event per line):")
    for line in (DATA / "events" / f"{run_id}.jsonl").read_text().splitlines():
        print(f"  {line}")

    print("\nAfter a restart: a new backend on the same folder reads the run back")
    restarted = FileStorageBackend(base_path=DATA)
    again = await restarted.get_run(run_id)
    events = await restarted.read(run_id)
    print(f"  {run_id}: {again.status.value}, {len(events)} events, result {again.result}")


if __name__ == "__main__":
    asyncio.run(main())
