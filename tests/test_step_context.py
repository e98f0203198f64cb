"""Step context: a typed frozen value set in workflow code (recorded as step_context_set)
that steps read, restored on replay and after a suspension, seen by concurrent steps.

Memory and file storage, asyncio and trio, virtual time. A SIGKILL test is in
``tests/test_issue13_crash.py``.
"""

from __future__ import annotations

import re
from datetime import date

import anyio
import pytest

from pyworkflow import (
    ConfigurationError,
    NonDeterminismError,
    RunStatus,
    StepContext,
    get_step_context,
    get_workflow_events,
    get_workflow_run,
    has_step_context,
    resume,
    set_step_context,
    sleep,
    start,
    step,
    workflow,
)
from pyworkflow._core._events import StepContextSet
from pyworkflow.storage import InMemoryStorageBackend, StorageBackend
from pyworkflow.testing import ManualClock

from .isolation import isolated_registry

seen: list[str] = []


class OrderContext(StepContext):
    order_id: str = ""
    amount: float = 0.0
    tags: list[str] = []
    due: date | None = None


class OtherContext(StepContext):
    name: str = ""


@step(name="sc.look")
async def look(label: str) -> str:
    ctx = get_step_context()
    assert isinstance(ctx, OrderContext)
    seen.append(f"{label}:{ctx.order_id}:{ctx.amount}")
    return f"{ctx.order_id}:{ctx.amount}"


@step(name="sc.tamper")
async def tamper() -> str:
    try:
        await set_step_context(OrderContext(order_id="changed"))
    except ConfigurationError as exc:
        return str(exc)
    return "set"


@step(name="sc.probe")
async def probe() -> bool:
    return has_step_context()


@workflow(name="sc.order", durable=True, context_class=OrderContext)
async def order(order_id: str) -> dict[str, object]:
    before = has_step_context()
    await set_step_context(OrderContext(order_id=order_id, amount=10.0))
    first = await look("first")
    await sleep("1h")
    ctx = get_step_context()
    assert isinstance(ctx, OrderContext)
    await set_step_context(ctx.with_updates(amount=ctx.amount * 2))
    results: list[str] = []

    async def branch(label: str) -> None:
        results.append(await look(label))

    async with anyio.create_task_group() as tg:  # concurrent steps see it too
        tg.start_soon(branch, "left")
        tg.start_soon(branch, "right")
    return {
        "before": before,
        "first": first,
        "branches": sorted(results),
        "tamper": await tamper(),
        "after": get_step_context().to_dict(),
    }


@workflow(name="sc.without_class", durable=True)
async def without_class() -> None:
    await set_step_context(OtherContext(name="x"))


@workflow(name="sc.wrong_class", durable=True, context_class=OrderContext)
async def wrong_class() -> None:
    await set_step_context(OtherContext(name="x"))  # type: ignore[arg-type]


@workflow(name="sc.nothing_set", durable=True, context_class=OrderContext)
async def nothing_set() -> bool:
    if await probe():
        return True
    get_step_context()
    return False


@workflow(name="sc.transient", durable=False, context_class=OrderContext)
async def transient(order_id: str) -> str:
    await set_step_context(OrderContext(order_id=order_id))
    return await look("transient")


@pytest.fixture
def storage(local_storage: StorageBackend) -> StorageBackend:
    seen.clear()
    return local_storage


async def test_steps_see_it_across_a_suspension_and_concurrently(
    storage: StorageBackend, clock: ManualClock
) -> None:
    run_id = await start(order, "o-1")
    assert seen == ["first:o-1:10.0"]
    clock.advance(3600)

    result = await resume(run_id)

    assert result == {
        "before": False,
        "first": "o-1:10.0",
        "branches": ["o-1:20.0", "o-1:20.0"],
        "tamper": (
            "set_step_context() was called inside a step: steps see the step context "
            "read-only; return what changed from the step and call set_step_context() in "
            "the workflow"
        ),
        "after": {"order_id": "o-1", "amount": 20.0, "tags": [], "due": None},
    }
    assert sorted(seen) == ["first:o-1:10.0", "left:o-1:20.0", "right:o-1:20.0"]  # no rerun
    recorded = [e for e in await get_workflow_events(run_id) if isinstance(e, StepContextSet)]
    assert [e.data for e in recorded] == [
        {"checkpoint": 1, "context": {"order_id": "o-1", "amount": 10.0, "tags": [], "due": None}},
        {"checkpoint": 4, "context": {"order_id": "o-1", "amount": 20.0, "tags": [], "due": None}},
    ]


async def test_a_replay_restores_it_without_recording_it_again(
    storage: StorageBackend, clock: ManualClock
) -> None:
    run_id = await start(order, "o-2")
    events = await get_workflow_events(run_id)
    # Replay the whole run from a log cut before its end: a fresh storage, same events.
    clock.advance(3600)
    await resume(run_id)
    full = await get_workflow_events(run_id)
    fresh = InMemoryStorageBackend()
    await fresh.append(run_id, full[:-1], expected_sequence=0)
    seen.clear()
    await resume(run_id, storage=fresh)  # recovers: every checkpoint is served from the log
    replayed = await fresh.read(run_id)
    assert seen == []  # no step ran again, yet every step's view held the context
    assert replayed[-1].type.value == "workflow_completed"
    assert replayed[-1].data == full[-1].data
    assert sum(isinstance(e, StepContextSet) for e in replayed) == 2
    assert len(events) < len(full)


async def test_the_context_is_a_checked_frozen_model() -> None:
    ctx = OrderContext(order_id="o", amount=1.5, tags=["a"], due=date(2025, 1, 2))
    assert ctx.to_dict() == {"order_id": "o", "amount": 1.5, "tags": ["a"], "due": "2025-01-02"}
    assert ctx.with_updates(amount=3.0) == OrderContext(
        order_id="o", amount=3.0, tags=["a"], due=date(2025, 1, 2)
    )
    assert OrderContext().order_id == "" and OrderContext().amount == 0.0  # defaults
    with pytest.raises(AttributeError):
        ctx.amount = 2.0  # type: ignore[misc]
    with pytest.raises(ConfigurationError, match=r"OrderContext.amount = 'lots'.*float"):
        OrderContext(amount="lots")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match=r"OrderContext.tags = \[1\]"):
        ctx.with_updates(tags=[1])
    with pytest.raises(ConfigurationError, match=r"no field colour; its fields are amount"):
        ctx.with_updates(colour="red")
    assert StepContext.__module__ == "pyworkflow"


async def test_misuse_is_a_clear_error_and_records_nothing(storage: StorageBackend) -> None:
    with pytest.raises(ConfigurationError, match="outside any workflow"):
        await set_step_context(OrderContext())
    with pytest.raises(ConfigurationError, match=r"no step context is set.*has_step_context"):
        get_step_context()
    assert not has_step_context()

    for wf, needle in [
        (without_class, r"has no context_class: declare @workflow\(context_class=OtherContext\)"),
        (wrong_class, r"declares context_class=OrderContext; pass an instance of it"),
    ]:
        run = await get_workflow_run(await start(wf))
        assert run is not None and run.status is RunStatus.FAILED
        assert run.error is not None and "ConfigurationError" in run.error
        assert re.search(needle, run.error), run.error
        assert not any(
            isinstance(e, StepContextSet) for e in await get_workflow_events(run.run_id)
        )

    run = await get_workflow_run(await start(nothing_set))
    assert run is not None and run.error is not None and "no step context is set" in run.error

    with pytest.raises(ConfigurationError, match=r"context_class=<class 'int'>.*StepContext"):
        workflow(durable=True, context_class=int)(without_class.fn)  # type: ignore[arg-type]


async def test_a_transient_workflow_keeps_it_in_memory(storage: StorageBackend) -> None:
    await start(transient, "t-1")
    assert seen == ["transient:t-1:0.0"]


async def test_setting_it_where_the_log_recorded_a_step_is_non_determinism(
    storage: StorageBackend,
) -> None:
    with isolated_registry():

        @workflow(name="sc.changing", durable=True, context_class=OrderContext)
        async def changing() -> None:
            await look("x")  # recorded at checkpoint 1 as a step...

        run_id = await start(changing)
        events = await get_workflow_events(run_id)
    fresh = InMemoryStorageBackend()
    await fresh.append(run_id, events[:-1], expected_sequence=0)
    with isolated_registry():

        @workflow(name="sc.changing", durable=True, context_class=OrderContext)
        async def changed() -> None:
            await set_step_context(OrderContext())  # ...now a context at checkpoint 1

        with pytest.raises(NonDeterminismError, match=r"recorded as step 'sc.look'"):
            await resume(run_id, storage=fresh)
