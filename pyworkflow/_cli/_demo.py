"""``pyworkflow demo``: the main job on the embedded default (file storage, no broker).

An order workflow runs three steps, sleeps durably, and is resumed once the timer is due;
the demo prints the event log and the files the run left under ``./workflow_data``.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TextIO

import anyio

from .._api import get_workflow_events, get_workflow_run, resume, start
from .._config import configure
from .._execution._sleep import sleep
from .._execution._step import step
from .._execution._workflow import workflow
from ..storage import FileStorageBackend

__all__ = ["run_demo"]


@step(name="demo.reserve_inventory")
async def reserve_inventory(order_id: str) -> dict[str, object]:
    return {"order_id": order_id, "reserved": True}


@step(name="demo.charge_payment", max_retries=2, retry_delay="1s")
async def charge_payment(order: dict[str, object], amount: float) -> dict[str, object]:
    return {**order, "charged": amount}


@step(name="demo.ship")
async def ship(order: dict[str, object]) -> dict[str, object]:
    return {**order, "shipped": True}


@workflow(name="demo.order", durable=True, tags=["demo"])
async def demo_order(order_id: str, amount: float, wait_seconds: float) -> dict[str, object]:
    order = await reserve_inventory(order_id)
    order = await charge_payment(order, amount)
    await sleep(wait_seconds)  # a durable timer: the run suspends here
    return await ship(order)


async def run_demo(base_path: Path, wait_seconds: float = 2.0, out: TextIO = sys.stdout) -> str:
    """Run the demo and return the run id."""
    storage = FileStorageBackend(base_path)
    configure(storage=storage, default_durable=True)
    run_id = await start(demo_order, "order-1001", 42.5, wait_seconds)
    run = await get_workflow_run(run_id)
    assert run is not None
    print(f"started {run_id}: {run.status.value} until {run.resume_at:%H:%M:%S}", file=out)
    await anyio.sleep(wait_seconds)
    result = await resume(run_id)
    run = await get_workflow_run(run_id)
    assert run is not None
    print(f"resumed {run_id}: {run.status.value}, result {result}", file=out)
    print("\nevent log:", file=out)
    for event in await get_workflow_events(run_id):
        print(f"  {event.sequence:>2} {event.type.value}", file=out)
    _show_files(base_path, run_id, out)
    return run_id


def _show_files(base_path: Path, run_id: str, out: TextIO) -> None:
    print(f"\nfiles of this run under {base_path}:", file=out)
    for path in sorted(base_path.rglob("*")):
        if path.is_file() and run_id in path.read_text(errors="replace"):
            print(f"  {path.relative_to(base_path)}", file=out)
