"""Embedded supervisor: runs that sleep and wait, and wake by themselves.

Run: python embedded.py 2>/dev/null

``async with Supervisor(storage=...)`` hosts the runs of one storage inside this program.
Each active run is one task; a run that sleeps or waits for a hook ends its task and leaves
only a timer entry, and the supervisor wakes it when the timer is due or the payload
arrives. Nothing here calls ``resume()`` (compare ../durable/04_long_running.py).

Three orders start at once. Each sleeps a little; order-3 then waits for an approval that
another task sends with ``sup.resume_hook``. ``sup.result()`` waits for each value.
The runs are stored under ``workflow_data/`` next to this script (cleaned at each start).
"""

import asyncio
import shutil
from pathlib import Path

from pyworkflow import get_workflow_events, hook, sleep, step, workflow
from pyworkflow.actors import Supervisor
from pyworkflow.storage import FileStorageBackend

DATA = Path(__file__).resolve().parent / "workflow_data"
ORDERS = {"order-1": 0.3, "order-2": 0.6, "order-3": 0.9}  # order id -> seconds it sleeps
approval_requests: asyncio.Queue = asyncio.Queue()  # (order id, hook token)


@step()
async def reserve(order_id: str) -> dict:
    return {"order_id": order_id, "reserved": True}


@step()
async def ship(order: dict) -> dict:
    return {**order, "shipped": True}


@workflow(durable=True)
async def order_workflow(order_id: str, seconds: float, needs_approval: bool) -> dict:
    order = await reserve(order_id)
    await sleep(seconds)  # the run rests here; the supervisor's timer wakes it
    if needs_approval:
        # The token goes to whoever approves: here, the approver task below.
        approval = await hook(
            "approval", on_created=lambda token: approval_requests.put_nowait((order_id, token))
        )
        order = {**order, "approved_by": approval["by"]}
    return await ship(order)


async def approver(sup: Supervisor) -> None:
    order_id, token = await approval_requests.get()  # waits until a run asks
    await asyncio.sleep(0.2)  # reads the request
    print(f"  approver: approving {order_id}")
    await sup.resume_hook(token, {"by": "dana"})


async def wake_lag(storage: FileStorageBackend, run_id: str) -> float:
    """Seconds between the sleep's due time and the run's next event, from its log."""
    events = await get_workflow_events(run_id, storage=storage)
    started = next(e for e in events if e.type.value == "sleep_started")
    woke = next(e for e in events[started.sequence :] if e.type.value == "workflow_resumed")
    return (woke.timestamp - started.resume_at).total_seconds()


async def main() -> None:
    shutil.rmtree(DATA, ignore_errors=True)
    storage = FileStorageBackend(DATA)

    print("=== Embedded supervisor: runs wake by themselves ===")
    async with Supervisor(storage=storage) as sup:
        run_ids = {
            order_id: await sup.start(order_workflow, order_id, seconds, order_id == "order-3")
            for order_id, seconds in ORDERS.items()
        }
        print(f"Started {len(run_ids)} runs; each sleeps, order-3 then waits for an approval")
        async with asyncio.TaskGroup() as tasks:
            tasks.create_task(approver(sup))
            results = {order_id: await sup.result(run_id, timeout=30)
                       for order_id, run_id in run_ids.items()}  # fmt: skip

    print("\nResults (sup.result):")
    for order_id, result in results.items():
        print(f"  {order_id}: {result}")

    print("\nWoken by the supervisor's timer, seconds after the sleep was due:")
    for order_id, run_id in run_ids.items():
        print(f"  {order_id}: {await wake_lag(storage, run_id):.1f}s")

    print("\nEvent log of order-3:")
    for event in await get_workflow_events(run_ids["order-3"], storage=storage):
        print(f"  {event.sequence:>2}: {event.type.value}")


if __name__ == "__main__":
    asyncio.run(main())
