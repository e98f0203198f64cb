"""05 - Event sourcing deep dive: different workflows, different event sequences.

Run: python 05_event_log.py 2>/dev/null
"""

import asyncio

from pyworkflow import (
    configure,
    get_workflow_events,
    reset_config,
    resume,
    sleep,
    start,
    step,
    workflow,
)
from pyworkflow.storage import InMemoryStorageBackend


@step()
async def fetch_user(user_id: int) -> dict:
    return {"id": user_id, "name": f"user-{user_id}"}


@step()
async def enrich(user: dict) -> dict:
    return {**user, "tier": "gold"}


@workflow(durable=True)
async def two_step_workflow(user_id: int) -> dict:
    return await enrich(await fetch_user(user_id))


@workflow(durable=True)
async def sleeping_workflow(user_id: int) -> dict:
    user = await fetch_user(user_id)
    await sleep(0.2)
    return await enrich(user)


async def show(run_id: str, title: str) -> None:
    print(f"\n--- {title} ({run_id}) ---")
    for event in await get_workflow_events(run_id):
        print(f"{event.sequence}: {event.type.value}")
        print(f"  Data: {event.data}")
        print(f"  Timestamp: {event.timestamp.isoformat()}")


async def main() -> None:
    reset_config()
    configure(storage=InMemoryStorageBackend(), default_durable=True)

    print("=== Event log inspection ===")
    first = await start(two_step_workflow, 1)
    await show(first, "two steps, straight through")

    second = await start(sleeping_workflow, 2)
    await asyncio.sleep(0.25)
    await resume(second)
    await show(second, "steps around a sleep: suspended, then resumed")

    print("\nReplay: resuming a finished run re-reads its log and changes nothing:")
    before = len(await get_workflow_events(first))
    print(f"  result={await resume(first)} events before={before} after={len(await get_workflow_events(first))}")


if __name__ == "__main__":
    asyncio.run(main())
