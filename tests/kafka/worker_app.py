"""The app of the multi-process worker tests (``pyworkflow worker --app tests.kafka.worker_app``).

Step bodies append ``"{name} {i}"`` to the file named by ``$WORKER_TRAIL`` (one line per
execution), so the test counts how often each ran, across worker processes (the child
workflows' step appends two lines, see :func:`child_work`).
"""

from __future__ import annotations

import os

import anyio

from pyworkflow import hook, sleep, start_child_workflow, step, workflow


@step(name="wa_work")
async def work(name: str, i: int) -> int:
    await anyio.sleep(0.05)
    async with await anyio.open_file(os.environ["WORKER_TRAIL"], "a") as trail:
        await trail.write(f"{name} {i}\n")
    return i


@workflow(durable=True, name="wa_flow")
async def flow(name: str) -> int:
    total = 0
    for i in range(3):
        total += await work(name, i)
        await sleep(0.3)
    return total


@workflow(durable=True, name="wa_long_flow")
async def long_flow(name: str) -> int:
    """About 5 s: long enough for a rebalance to happen in the middle of it."""
    total = 0
    for i in range(5):
        total += await work(name, i)
        await sleep(1.0)
    return total


@step(name="wa_slow_work")
async def slow_work(name: str, i: int) -> int:
    """Two seconds: in flight when the test pauses its worker."""
    await anyio.sleep(2.0)
    async with await anyio.open_file(os.environ["WORKER_TRAIL"], "a") as trail:
        await trail.write(f"{name} {i}\n")
    return i


@workflow(durable=True, name="wa_slow_flow")
async def slow_flow(name: str) -> int:
    return await slow_work(name, 0) + await slow_work(name, 1)


@step(name="wa_flaky", max_retries=2, retry_delay=0.2)
async def flaky(name: str) -> int:
    """Fails its first execution for each ``name`` (counted in the trail), then succeeds."""
    path = os.environ["WORKER_TRAIL"]
    async with await anyio.open_file(path) as trail:
        before = (await trail.read()).splitlines().count(f"{name} flaky")
    async with await anyio.open_file(path, "a") as trail:
        await trail.write(f"{name} flaky\n")
    if before == 0:
        raise RuntimeError(f"{name}: the first attempt fails")
    return 1


@workflow(durable=True, name="wa_mixed_flow")
async def mixed_flow(name: str, kind: str) -> int:
    """A step, a sleep, then by ``kind``: a step that is retried once ("retry"), a hook
    ("hook", "cancel": the test resumes or cancels it), or nothing; then a last step."""
    total = await work(name, 0)
    await sleep(0.3)
    if kind == "retry":
        total += await flaky(name)
    elif kind in ("hook", "cancel"):
        payload = await hook("approve", timeout="1h")
        total += int(payload["n"])
    return total + await work(name, 2)


async def _note(line: str) -> None:
    async with await anyio.open_file(os.environ["WORKER_TRAIL"], "a") as trail:
        await trail.write(f"{line}\n")


@step(name="wa_child_work")
async def child_work(name: str, gate: str) -> str:
    """Appends ``"{name} begun {pid}"``, waits until the file ``gate`` exists (if one is
    named), then appends ``"{name} child {pid}"``: the side effect whose count the test
    checks (an execution killed at the gate never makes it)."""
    await _note(f"{name} begun {os.getpid()}")
    if gate:
        with anyio.fail_after(60):
            while not await anyio.Path(gate).exists():  # noqa: ASYNC110 - another process
                await anyio.sleep(0.05)
    await _note(f"{name} child {os.getpid()}")
    return f"{name} child done"


@workflow(durable=True, name="wa_child")
async def child_flow(name: str, gate: str) -> str:
    return await child_work(name, gate)


@workflow(durable=True, name="wa_parent")
async def parent_flow(name: str, gate: str) -> str:
    """A step, then a child (waited for)."""
    before = await work(name, 0)
    return f"{before} {await start_child_workflow(child_flow, name, gate)}"
