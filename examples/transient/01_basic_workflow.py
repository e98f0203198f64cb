"""Transient 01 - durable=False: steps run straight through, nothing is recorded.

Use transient workflows for short request/response work where replay buys nothing.

Run: python 01_basic_workflow.py 2>/dev/null
"""

import asyncio

from pyworkflow import get_workflow_run, start, step, workflow


@step()
async def double(x: int) -> int:
    return x * 2


@step()
async def add(x: int, y: int) -> int:
    return x + y


@workflow(durable=False)
async def compute(x: int) -> int:
    return await add(await double(x), 1)


async def main() -> None:
    print("=== Transient workflow ===")
    result = await compute(20)  # call it like a function: runs inline, returns the result
    print(f"compute(20) = {result}")

    run_id = await start(compute, 5)  # start() runs it too, and records nothing
    print(f"start(compute, 5) -> {run_id}; stored run: {await get_workflow_run(run_id)}")


if __name__ == "__main__":
    asyncio.run(main())
