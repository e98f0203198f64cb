"""01 - Basic durable workflow: three steps, in-memory storage, the event log.

Run: python 01_basic_workflow.py 2>/dev/null
"""

import asyncio

from pyworkflow import (
    configure,
    get_workflow_events,
    get_workflow_run,
    reset_config,
    start,
    step,
    workflow,
)
from pyworkflow.storage import InMemoryStorageBackend


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
    order = await send_notification(order)
    return order


async def main() -> None:
    reset_config()
    configure(storage=InMemoryStorageBackend(), default_durable=True)

    print("=== Basic durable workflow ===")
    run_id = await start(order_workflow, "order-123", 99.99)
    run = await get_workflow_run(run_id)
    print(f"Run:    {run_id}")
    print(f"Status: {run.status.value}")
    print(f"Result: {run.result}")

    print("\nEvent log:")
    for event in await get_workflow_events(run_id):
        print(f"  {event.sequence:>2}: {event.type.value}")


if __name__ == "__main__":
    asyncio.run(main())
