"""Transient 02 - retries and sleeps without a log: they simply wait in-process.

Run: python 02_retries_and_sleep.py 2>/dev/null
"""

import asyncio

from pyworkflow import RetryableError, sleep, step, workflow

calls = {"n": 0}


@step(max_retries=3, retry_delay="100ms")
async def flaky_lookup(key: str) -> str:
    calls["n"] += 1
    if calls["n"] < 3:
        raise RetryableError(f"lookup of {key} timed out", retry_after=0.05)
    return f"value-of-{key}"


@workflow(durable=False)
async def lookup_workflow(key: str) -> str:
    value = await flaky_lookup(key)
    await sleep("200ms")  # a real wait: transient workflows don't suspend
    return value


async def main() -> None:
    print("=== Transient retries and sleep ===")
    value = await lookup_workflow("user:42")
    print(f"Result: {value} after {calls['n']} attempts")


if __name__ == "__main__":
    asyncio.run(main())
