"""13 - Step context: typed, read-only data that every step of a run can see.

``class OrderContext(StepContext)`` declares the fields (typed, with defaults; instances are
frozen). The workflow sets it with ``await set_step_context(ctx)``, which records it in the
event log (``step_context_set``); steps read it with ``get_step_context()``. It is restored
on replay, so it survives suspensions and crashes, and steps running concurrently see it.

Run: python 13_step_context.py 2>/dev/null
"""

import asyncio

import anyio

from pyworkflow import (
    ConfigurationError,
    StepContext,
    configure,
    get_step_context,
    get_workflow_events,
    has_step_context,
    hook,
    reset_config,
    resume_hook,
    set_step_context,
    start,
    step,
    workflow,
)
from pyworkflow.storage import InMemoryStorageBackend

tokens: dict[str, str] = {}


class OrderContext(StepContext):
    order_id: str = ""
    customer: str = ""
    currency: str = "EUR"
    approved_by: str | None = None


@step()
async def reserve(item: str) -> str:
    ctx = get_step_context()  # no need to pass order_id and customer to every step
    return f"{item} reserved for {ctx.customer} (order {ctx.order_id})"


@step()
async def charge(amount: float) -> str:
    ctx = get_step_context()
    return f"charged {amount} {ctx.currency}, approved by {ctx.approved_by}"


@step()
async def try_to_change_it() -> str:
    try:
        await set_step_context(OrderContext(order_id="forged"))
    except ConfigurationError:
        return "refused: steps see the context read-only"
    return "changed"


@workflow(durable=True, context_class=OrderContext)
async def order_workflow(order_id: str, customer: str) -> dict:
    await set_step_context(OrderContext(order_id=order_id, customer=customer))
    # Steps running concurrently see it too (a task group: asyncio.gather works as well,
    # on asyncio only).
    reserved: list[str] = []

    async def reserve_one(item: str) -> None:
        reserved.append(await reserve(item))

    async with anyio.create_task_group() as tg:
        for item in ("book", "lamp"):
            tg.start_soon(reserve_one, item)
    approval = await hook("approval", on_created=lambda t: tokens.__setitem__("approval", t))
    # After the suspension the run was replayed from its log: the context is back.
    ctx = get_step_context()
    await set_step_context(ctx.with_updates(approved_by=approval["by"]))
    return {
        "reserved": sorted(reserved),
        "charged": await charge(49.9),
        "step_sets_context": await try_to_change_it(),
        "context": get_step_context().to_dict(),
    }


async def main() -> None:
    reset_config()
    configure(storage=InMemoryStorageBackend(), default_durable=True)

    print("=== Step context ===")
    print(f"Outside a run, has_step_context() = {has_step_context()}")
    run_id = await start(order_workflow, "order-7", "ada")
    run = await resume_hook(tokens["approval"], {"by": "dana"})
    print(f"Status: {run.status.value}")
    for key, value in run.result.items():
        print(f"  {key}: {value}")

    print("\nEvent log:")
    for event in await get_workflow_events(run_id):
        context = event.data.get("context")
        print(f"  {event.sequence}: {event.type.value}" + (f"  {context}" if context else ""))


if __name__ == "__main__":
    asyncio.run(main())
