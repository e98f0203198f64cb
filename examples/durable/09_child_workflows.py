"""09 - Child workflows: a workflow starts other workflows and waits for their results.

``await start_child_workflow(wf, *args)`` starts a run of ``wf`` as a child of the current
run: its own run id and event log, with ``parent_run_id`` and ``nesting_depth`` on its
record. The parent's log records the child's start and its outcome, so a replay of the
parent serves the result and never starts the child twice. A child that fails raises
``ChildWorkflowFailedError`` in the parent. Waiting is durable: a child that sleeps
suspends its parent too, and its end wakes the parent.

Run: python 09_child_workflows.py 2>/dev/null
"""

import asyncio

from pyworkflow import (
    ChildWorkflowFailedError,
    configure,
    get_workflow_events,
    get_workflow_run,
    reset_config,
    resume,
    sleep,
    start,
    start_child_workflow,
    step,
    workflow,
)
from pyworkflow.storage import InMemoryStorageBackend


@step()
async def charge_card(order_id: str, amount: float) -> dict:
    if amount > 1000:
        raise ValueError(f"card declined for {amount}")
    return {"order_id": order_id, "charged": amount}


@step()
async def book_courier(order_id: str) -> str:
    return f"courier booked for {order_id}"


@workflow(durable=True)
async def payment_workflow(order_id: str, amount: float) -> dict:
    return await charge_card(order_id, amount)


@workflow(durable=True)
async def shipping_workflow(order_id: str) -> str:
    await sleep(0.2)  # waits for the warehouse: the run suspends, and so does its parent
    return await book_courier(order_id)


@workflow(durable=True)
async def order_workflow(order_id: str, amount: float) -> dict:
    payment = await start_child_workflow(payment_workflow, order_id, amount)
    try:
        await start_child_workflow(payment_workflow, f"{order_id}-tip", 5000.0)
        tip = "charged"
    except ChildWorkflowFailedError as exc:
        tip = f"refused ({exc.error})"
    shipping = await start_child_workflow(shipping_workflow, order_id)
    return {"payment": payment, "tip": tip, "shipping": shipping}


async def main() -> None:
    reset_config()
    storage = InMemoryStorageBackend()
    configure(storage=storage, default_durable=True)

    print("=== Child workflows ===")
    run_id = await start(order_workflow, "order-9", 59.9)
    run = await get_workflow_run(run_id)
    print(f"Parent after start(): {run.status.value} ({run.suspended_reason})")

    await asyncio.sleep(0.25)  # the shipping child's sleep is due
    result = await resume(run_id)  # resumes the due child first; its end wakes the parent
    print(f"Parent after resume(): {result}")

    print("\nChildren (storage.get_children):")
    for child in await storage.get_children(run_id):
        print(
            f"  {child.run_id}  {child.workflow_name:<18} {child.status.value:<10}"
            f" depth={child.nesting_depth} parent={child.parent_run_id == run_id}"
        )

    print("\nParent's event log:")
    for event in await get_workflow_events(run_id):
        data = event.data
        extra = f" {data['workflow_name']}" if "workflow_name" in data else ""
        if event.type.value == "child_workflow_failed":
            extra = f" {data['error_type']}"
        print(f"  {event.sequence}: {event.type.value}{extra}")

    before = len(await get_workflow_events(run_id))
    await resume(run_id)  # a finished run: its log serves everything, no child starts again
    print(f"\nResumed again: {len(await get_workflow_events(run_id)) - before} new events")


if __name__ == "__main__":
    asyncio.run(main())
