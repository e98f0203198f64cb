"""08 - Cancellation: cancel a suspended workflow and run its cleanup under shield().

Run: python 08_cancellation.py 2>/dev/null
"""

import asyncio

from pyworkflow import (
    CancellationError,
    cancel_workflow,
    configure,
    get_workflow_events,
    get_workflow_run,
    reset_config,
    shield,
    sleep,
    start,
    step,
    workflow,
)
from pyworkflow.storage import InMemoryStorageBackend


@step()
async def reserve_inventory(order_id: str) -> dict:
    print(f"  reserve_inventory({order_id})")
    return {"order_id": order_id, "reserved": True}


@step()
async def charge_payment(order: dict) -> dict:
    return {**order, "charged": True}


@step()
async def release_inventory(order_id: str) -> None:
    print(f"  release_inventory({order_id})  <- cleanup")


@step()
async def refund_payment(order_id: str) -> None:
    print(f"  refund_payment({order_id})     <- cleanup")


@workflow(durable=True)
async def order_workflow(order_id: str) -> dict:
    try:
        order = await reserve_inventory(order_id)
        await sleep("5s")  # can be cancelled here
        return await charge_payment(order)
    except CancellationError:
        # Cleanup with shield to ensure completion
        async with shield():
            await release_inventory(order_id)
            await refund_payment(order_id)
        raise


async def main() -> None:
    reset_config()
    configure(storage=InMemoryStorageBackend(), default_durable=True)

    print("=== Cancellation with cleanup ===")
    run_id = await start(order_workflow, "order-789")
    print(f"Status before cancel: {(await get_workflow_run(run_id)).status.value}")

    requested = await cancel_workflow(run_id, reason="Customer cancelled")
    run = await get_workflow_run(run_id)
    print(f"cancel_workflow -> {requested}; status: {run.status.value}")

    again = await cancel_workflow(run_id, reason="twice")
    print(f"Cancelling a cancelled run -> {again} (nothing changes)")

    print("\nEvent log:")
    for event in await get_workflow_events(run_id):
        print(f"  {event.sequence:>2}: {event.type.value}")


if __name__ == "__main__":
    asyncio.run(main())
