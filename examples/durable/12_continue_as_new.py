"""12 - Continue-as-new: a long-lived workflow that starts afresh with a short log.

A workflow that loops forever (a ledger closing one batch after another, a poller) would
grow its event log without end. ``continue_as_new(...)`` ends the run as
``continued_as_new`` and starts a new run of the same workflow with new arguments and an
empty log: a chain of runs, linked both ways on their records.

Run: python 12_continue_as_new.py 2>/dev/null
"""

import asyncio

from pyworkflow import (
    configure,
    continue_as_new,
    get_workflow_chain,
    get_workflow_events,
    reset_config,
    start,
    step,
    workflow,
)
from pyworkflow.storage import InMemoryStorageBackend

ENTRIES = [12.5, 40.0, 7.25, 100.0, 3.0, 55.5, 9.75]
BATCH = 3


@step()
async def close_batch(offset: int) -> dict:
    batch = ENTRIES[offset : offset + BATCH]
    return {"offset": offset, "count": len(batch), "sum": sum(batch)}


@workflow(durable=True, tags=["ledger"])
async def ledger_workflow(offset: int = 0, balance: float = 0.0) -> dict:
    closed = await close_batch(offset)
    balance += closed["sum"]
    following = offset + closed["count"]
    if following < len(ENTRIES):
        # This run ends here; a new run goes on from the next batch with a fresh log.
        await continue_as_new(following, balance=balance)
    return {"entries": following, "balance": balance}


async def main() -> None:
    reset_config()
    configure(storage=InMemoryStorageBackend(), default_durable=True)

    print("=== Continue-as-new: one batch per run ===")
    # start() hosts the whole chain here and returns the first run's id.
    head = await start(ledger_workflow, idempotency_key="ledger-2025-01")

    chain = await get_workflow_chain(head)
    print(f"Chain of {len(chain)} runs (from any member's id):")
    for run in chain:
        print(
            f"  {run.run_id}  {run.status.value:<16} args={run.args} kwargs={run.kwargs}"
            f"  from={run.continued_from_run_id}  to={run.continued_to_run_id}"
        )
    print(f"Result of the last run: {chain[-1].result}")
    print(f"Key and tags carried over: {chain[-1].idempotency_key}, {list(chain[-1].tags)}")

    print("\nEvent log of the first run (it ends with its successor's id):")
    for event in await get_workflow_events(head):
        print(f"  {event.sequence}: {event.type.value}")
    print(f"  -> new_run_id={event.data['new_run_id']} args={event.data['args']}")

    again = await start(ledger_workflow, idempotency_key="ledger-2025-01")
    print(f"\nSame key again -> the chain's first run: {again == head}")


if __name__ == "__main__":
    asyncio.run(main())
