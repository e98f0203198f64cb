"""Cancellation: at the next checkpoint, never mid-step; cleanup under shield()."""

from __future__ import annotations

import anyio
import pytest

from pyworkflow import (
    CancellationError,
    ConfigurationError,
    RunNotFoundError,
    RunStatus,
    cancel_workflow,
    get_workflow_events,
    get_workflow_run,
    resume,
    shield,
    sleep,
    start,
    step,
    workflow,
)
from pyworkflow.storage import InMemoryStorageBackend
from pyworkflow.testing import ManualClock

trail: list[str] = []


@step()
async def reserve(order_id: str) -> str:
    trail.append("reserve")
    return order_id


@step()
async def charge(order_id: str) -> str:
    trail.append("charge")
    return order_id


@step()
async def release(order_id: str) -> None:
    trail.append("release")


@step()
async def refund(order_id: str) -> None:
    trail.append("refund")


@workflow(durable=True)
async def order_flow(order_id: str) -> str:
    try:
        await reserve(order_id)
        await sleep("5s")
        return await charge(order_id)
    except CancellationError:
        async with shield():
            await release(order_id)
            await refund(order_id)
        raise


async def types_of(run_id: str) -> list[str]:
    return [e.type.value for e in await get_workflow_events(run_id)]


@pytest.fixture(autouse=True)
def _clear() -> None:
    trail.clear()


async def test_cancelling_a_suspended_run_wakes_it_for_cleanup(
    memory: InMemoryStorageBackend,
) -> None:
    run_id = await start(order_flow, "o-1")
    assert await cancel_workflow(run_id, reason="Customer cancelled") is True
    run = await get_workflow_run(run_id)
    assert run is not None and run.status is RunStatus.CANCELLED
    assert run.cancellation_reason == "Customer cancelled"
    assert trail == ["reserve", "release", "refund"]  # charge never ran
    assert await types_of(run_id) == [
        "workflow_started",
        "step_started",
        "step_completed",
        "sleep_started",
        "workflow_suspended",
        "cancellation_requested",
        "workflow_resumed",
        "step_started",
        "step_completed",
        "step_started",
        "step_completed",
        "workflow_cancelled",
    ]
    events = await get_workflow_events(run_id)
    assert events[-1].data["reason"] == "Customer cancelled"


async def test_cancelling_a_finished_run_returns_false_and_changes_nothing(
    memory: InMemoryStorageBackend, clock: ManualClock
) -> None:
    run_id = await start(order_flow, "o-2")
    clock.advance(5)
    assert await resume(run_id) == "o-2"
    before = await types_of(run_id)
    assert await cancel_workflow(run_id) is False
    assert await types_of(run_id) == before

    cancelled = await start(order_flow, "o-3")
    await cancel_workflow(cancelled)
    before = await types_of(cancelled)
    assert await cancel_workflow(cancelled) is False
    assert await types_of(cancelled) == before


async def test_unknown_run_is_an_error(memory: InMemoryStorageBackend) -> None:
    with pytest.raises(RunNotFoundError, match="run_nope"):
        await cancel_workflow("run_nope")
    with pytest.raises(ConfigurationError, match="reason"):
        await cancel_workflow("run_nope", reason=5)  # type: ignore[arg-type]


async def test_cancellation_waits_for_the_running_step(memory: InMemoryStorageBackend) -> None:
    """A cancel requested while a step runs lets it finish; the error comes after it."""
    started, proceed = anyio.Event(), anyio.Event()

    @step()
    async def slow(order_id: str) -> str:
        trail.append("slow:start")
        started.set()
        await proceed.wait()
        trail.append("slow:end")
        return order_id

    @workflow(durable=True, name="slow_flow")
    async def slow_flow(order_id: str) -> str:
        try:
            await slow(order_id)
            return await charge(order_id)
        except CancellationError:
            async with shield():
                await release(order_id)
            raise

    async with anyio.create_task_group() as tg:
        run_ids: list[str] = []

        async def run() -> None:
            run_ids.append(await start(slow_flow, "o-4"))

        tg.start_soon(run)
        await started.wait()
        [run] = (await memory.list_runs()).runs
        assert await cancel_workflow(run.run_id, reason="stop") is True
        proceed.set()
    run = await get_workflow_run(run_ids[0])  # type: ignore[assignment]
    assert run is not None and run.status is RunStatus.CANCELLED
    assert trail == ["slow:start", "slow:end", "release"]
    types = await types_of(run.run_id)
    # The step's completion is recorded after the request that arrived mid-step.
    assert types.index("cancellation_requested") < types.index("step_completed")


async def test_swallowing_cancellation_completes_the_run(memory: InMemoryStorageBackend) -> None:
    @workflow(durable=True, name="stubborn")
    async def stubborn() -> str:
        try:
            await sleep("1h")
        except CancellationError:
            return "cleaned up and done"
        return "slept"

    run_id = await start(stubborn)
    assert await cancel_workflow(run_id) is True
    run = await get_workflow_run(run_id)
    assert run is not None and run.status is RunStatus.COMPLETED
    assert run.result == "cleaned up and done"


async def test_cleanup_may_itself_sleep_under_shield(
    memory: InMemoryStorageBackend, clock: ManualClock
) -> None:
    @workflow(durable=True, name="slow_cleanup")
    async def slow_cleanup() -> None:
        try:
            await sleep("1h")
        except CancellationError:
            async with shield():
                await sleep("10s")  # not interrupted by the pending cancellation
                await release("x")
            raise

    run_id = await start(slow_cleanup)
    await cancel_workflow(run_id)
    run = await get_workflow_run(run_id)
    assert run is not None and run.status is RunStatus.SUSPENDED
    clock.advance(10)
    await resume(run_id)
    run = await get_workflow_run(run_id)
    assert run is not None and run.status is RunStatus.CANCELLED
    assert trail == ["release"]


async def test_cancel_before_any_checkpoint_of_a_pending_cleanup(
    memory: InMemoryStorageBackend,
) -> None:
    """Cancelling twice records one request."""
    run_id = await start(order_flow, "o-5")
    async with anyio.create_task_group() as tg:
        tg.start_soon(cancel_workflow, run_id)
        tg.start_soon(cancel_workflow, run_id)
    types = await types_of(run_id)
    assert types.count("cancellation_requested") == 1
    assert types[-1] == "workflow_cancelled"
