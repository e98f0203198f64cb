"""The workflows the distributed example's workers run (``pyworkflow worker --app app``).

An order reserves stock, sleeps a little (a durable timer: the worker that owns the run wakes
it), waits for an approval when it is large (a hook: the submitter delivers it), and ships.
``reserve`` fails now and then and is retried after a durable delay.
"""

from __future__ import annotations

import random

from pyworkflow import RetryableError, hook, sleep, step, workflow


@step(name="dist.reserve", max_retries=3, retry_delay="1s")
async def reserve(order_id: str) -> dict[str, object]:
    if random.random() < 0.2:  # a busy service, now and then: retried after 1 s
        raise RetryableError("stock service busy")
    return {"order_id": order_id, "reserved": True}


@step(name="dist.ship")
async def ship(order: dict[str, object], approved_by: str | None) -> dict[str, object]:
    return {**order, "approved_by": approved_by, "shipped": True}


@workflow(durable=True, name="dist.order")
async def order(order_id: str, amount: float) -> dict[str, object]:
    reserved = await reserve(order_id)
    await sleep(1 + int(order_id.rpartition("-")[2]) % 3)  # 1-3 s: a durable timer
    approved_by = None
    if amount >= 100:
        approval = await hook("approval", timeout="10m")
        approved_by = approval["by"]
    return await ship(reserved, approved_by)
