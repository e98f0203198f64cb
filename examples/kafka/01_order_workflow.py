"""01 - The order workflow on Kafka: the event log lives in a topic, any process can read it.

Needs a Kafka broker (3.9.x). Start a local one in another terminal:

    python -m pyworkflow.testing kafka run        # prints KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:PORT

Run: KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:PORT python examples/kafka/01_order_workflow.py 2>/dev/null
"""

import asyncio
import os
import sys
import uuid

from pyworkflow import (
    StorageError,
    configure,
    get_workflow_events,
    get_workflow_run,
    reset_config,
    start,
    step,
    workflow,
)
from pyworkflow.storage import KafkaStorageBackend


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
    return await send_notification(order)


async def main() -> None:
    servers = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "localhost:9092")
    prefix = f"example-{uuid.uuid4().hex[:8]}"  # fresh topics for each run of the example
    reset_config()
    async with KafkaStorageBackend(servers, topic_prefix=prefix, request_timeout=5) as storage:
        configure(storage=storage, default_durable=True)

        print("=== Order workflow on Kafka ===")
        run_id = await start(order_workflow, "order-123", 99.99, idempotency_key="order-123")
        again = await start(order_workflow, "order-123", 99.99, idempotency_key="order-123")
        run = await get_workflow_run(run_id)
        print(f"Run:     {run_id} (same run for the same idempotency key: {again == run_id})")
        print(f"Status:  {run.status.value}")
        print(f"Result:  {run.result}")
        print(f"Topics:  {prefix}.events (the log), .runs .steps .hooks .idempotency (compacted)")

        print("\nEvent log, as read by a second backend (another process would see the same):")
        async with KafkaStorageBackend(servers, topic_prefix=prefix) as other:
            for event in await get_workflow_events(run_id, storage=other):
                print(f"  {event.sequence:>2}: {event.type.value}")


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except StorageError as exc:
        print(f"{exc}\nStart a broker with: python -m pyworkflow.testing kafka run", file=sys.stderr)
        sys.exit(1)
