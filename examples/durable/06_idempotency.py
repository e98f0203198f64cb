"""06 - Idempotency: the same key starts one run, however often it is called.

Run: python 06_idempotency.py 2>/dev/null
"""

import asyncio

from pyworkflow import configure, get_workflow_run, reset_config, start, step, workflow
from pyworkflow.storage import InMemoryStorageBackend

charges: list[str] = []


@step()
async def charge_card(order_id: str, amount: float) -> dict:
    charges.append(order_id)
    return {"order_id": order_id, "charged": amount}


@workflow(durable=True)
async def payment_workflow(order_id: str, amount: float) -> dict:
    return await charge_card(order_id, amount)


async def main() -> None:
    reset_config()
    configure(storage=InMemoryStorageBackend(), default_durable=True)

    print("=== Idempotency keys ===")
    run_id_1 = await start(payment_workflow, "order-123", 50.0, idempotency_key="unique-123")
    run_id_2 = await start(payment_workflow, "order-123", 50.0, idempotency_key="unique-123")
    print(f"First call:  {run_id_1}")
    print(f"Second call: {run_id_2}")
    print(f"Same run id: {run_id_1 == run_id_2}")
    print(f"Card charged {len(charges)} time(s)")

    run = await get_workflow_run(run_id_1)
    print(f"Status: {run.status.value}, result: {run.result}")

    # Duplicate deliveries at the same moment still start one run.
    ids = await asyncio.gather(
        *(start(payment_workflow, "order-999", 10.0, idempotency_key="webhook-42") for _ in range(5))
    )
    print(f"\n5 concurrent starts with one key -> {len(set(ids))} run; charges for order-999: "
          f"{charges.count('order-999')}")


if __name__ == "__main__":
    asyncio.run(main())
