"""03 - Retries: a flaky step fails twice and succeeds on its third attempt.

In durable mode a retry delay is a durable timer: the run suspends after each failure and
resume() runs the next attempt once the delay has passed (here we wait by hand; the actor
runtime resumes by itself).

Run: python 03_retries.py 2>/dev/null
"""

import asyncio

from pyworkflow import (
    FatalError,
    RunStatus,
    configure,
    get_workflow_events,
    get_workflow_run,
    reset_config,
    resume,
    start,
    step,
    workflow,
)
from pyworkflow.storage import InMemoryStorageBackend

attempts = {"call_flaky_api": 0}


@step()
async def validate_order(order_id: str) -> dict:
    return {"order_id": order_id, "valid": True}


@step(max_retries=3, retry_delay=1)
async def call_flaky_api(order: dict) -> dict:
    attempts["call_flaky_api"] += 1
    attempt = attempts["call_flaky_api"]
    print(f"  call_flaky_api: attempt {attempt}")
    if attempt < 3:
        raise Exception("Temporary failure")
    return {**order, "api_response": "success"}


@step(max_retries=5, retry_delay="1s", backoff=2)
async def check_fraud(order: dict) -> dict:
    if order.get("blocked"):
        raise FatalError("card is blocked")  # never retried
    return {**order, "fraud_check": "passed"}


@workflow(durable=True)
async def retry_workflow(order_id: str) -> dict:
    order = await validate_order(order_id)
    order = await call_flaky_api(order)
    return await check_fraud(order)


async def main() -> None:
    reset_config()
    configure(storage=InMemoryStorageBackend(), default_durable=True)

    print("=== Retries with durable retry timers ===")
    run_id = await start(retry_workflow, "order-456")
    run = await get_workflow_run(run_id)
    while run.status == RunStatus.SUSPENDED:
        print(f"  suspended ({run.suspended_reason}) until {run.resume_at:%H:%M:%S}, waiting...")
        await asyncio.sleep(1.05)
        await resume(run_id)
        run = await get_workflow_run(run_id)

    print(f"\nStatus: {run.status.value}")
    print(f"Result: {run.result}")
    print("\nEvent log:")
    for event in await get_workflow_events(run_id):
        extra = ""
        if event.type.value in ("step_failed", "step_retrying", "step_started"):
            extra = f"  (step={event.data['step_name']}, attempt={event.data['attempt']})"
        if event.type.value == "step_retrying":
            extra += f", resume at {event.data.get('resume_at', '')[:19]}"
        print(f"  {event.sequence:>2}: {event.type.value}{extra}")


if __name__ == "__main__":
    asyncio.run(main())
