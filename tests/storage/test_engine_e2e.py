"""Real workflows through the public API (start, resume, resume_hook, cancel) on every
backend of the contract suite."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest

from pyworkflow import (
    RunStatus,
    cancel_workflow,
    configure,
    get_workflow_events,
    get_workflow_run,
    hook,
    list_runs,
    resume,
    resume_hook,
    sleep,
    start,
    step,
    workflow,
)
from pyworkflow.storage import StorageBackend
from pyworkflow.testing import ManualClock

calls: Counter[str] = Counter()
tokens: list[str] = []


@pytest.fixture(autouse=True)
def _fresh(clock: ManualClock) -> None:
    calls.clear()
    tokens.clear()
    configure(clock=clock)


@step(name="e2e.process_order")
async def process_order(order_id: str) -> dict[str, Any]:
    calls["process_order"] += 1
    return {"order_id": order_id, "status": "processed"}


@step(name="e2e.charge_payment", max_retries=2, retry_delay="30s")
async def charge_payment(order: dict[str, Any], amount: float) -> dict[str, Any]:
    calls["charge_payment"] += 1
    if order.get("flaky") and calls["charge_payment"] == 1:
        raise ConnectionError("payment gateway timeout")
    return {**order, "charged": amount}


@step(name="e2e.send_notification")
async def send_notification(order: dict[str, Any]) -> dict[str, Any]:
    calls["send_notification"] += 1
    return {**order, "notified": True}


@workflow(name="e2e.order", durable=True)
async def order_workflow(order_id: str, amount: float, flaky: bool = False) -> dict[str, Any]:
    order = await process_order(order_id)
    order = await charge_payment({**order, "flaky": flaky}, amount)
    return await send_notification(order)


@workflow(name="e2e.long_running", durable=True)
async def long_running(order_id: str) -> dict[str, Any]:
    order = await process_order(order_id)
    await sleep("1h")
    return await send_notification(order)


@workflow(name="e2e.approval", durable=True)
async def approval(order_id: str) -> dict[str, Any]:
    order = await process_order(order_id)
    decision = await hook("approval", on_created=tokens.append)
    return await send_notification({**order, "approved": decision["approved"]})


async def types_of(run_id: str, backend: StorageBackend) -> list[str]:
    return [e.type.value for e in await get_workflow_events(run_id, storage=backend)]


async def test_a_three_step_order_completes(backend: StorageBackend) -> None:
    run_id = await start(order_workflow, "order-1", 99.5, storage=backend)

    run = await get_workflow_run(run_id, storage=backend)
    assert run is not None and run.status is RunStatus.COMPLETED
    assert run.result == {"order_id": "order-1", "status": "processed", "flaky": False,
                          "charged": 99.5, "notified": True}  # fmt: skip
    assert await types_of(run_id, backend) == [
        "workflow_started",
        *["step_started", "step_completed"] * 3,
        "workflow_completed",
    ]
    assert calls == {"process_order": 1, "charge_payment": 1, "send_notification": 1}
    step = await backend.get_step(f"{run_id}.2")
    assert step is not None and step.status == "completed" and step.result["charged"] == 99.5
    assert [r.run_id for r in await list_runs(storage=backend)] == [run_id]


async def test_a_sleep_suspends_and_resumes_when_due(
    backend: StorageBackend, clock: ManualClock
) -> None:
    run_id = await start(long_running, "order-2", storage=backend)
    run = await get_workflow_run(run_id, storage=backend)
    assert run is not None and run.status is RunStatus.SUSPENDED
    assert run.suspended_reason == "sleep" and run.resume_at is not None

    assert await resume(run_id, storage=backend) is None  # not due yet
    run = await get_workflow_run(run_id, storage=backend)
    assert run is not None and run.status is RunStatus.SUSPENDED

    clock.advance(3600)
    result = await resume(run_id, storage=backend)

    assert result == {"order_id": "order-2", "status": "processed", "notified": True}
    events = await types_of(run_id, backend)
    for name in ("sleep_started", "workflow_suspended", "workflow_resumed", "sleep_completed"):
        assert name in events
    assert calls == {"process_order": 1, "send_notification": 1}


async def test_a_hook_payload_continues_the_run(backend: StorageBackend) -> None:
    run_id = await start(approval, "order-3", storage=backend)
    run = await get_workflow_run(run_id, storage=backend)
    assert run is not None and run.status is RunStatus.SUSPENDED and len(tokens) == 1

    run = await resume_hook(tokens[0], {"approved": True}, storage=backend)

    assert run.status is RunStatus.COMPLETED and run.result["approved"] is True
    hooks = await backend.list_hooks(run_id)
    assert [h.status.value for h in hooks] == ["received"]
    assert hooks[0].payload == {"approved": True}
    assert "hook_received" in await types_of(run_id, backend)


async def test_a_retry_waits_on_a_durable_timer(
    backend: StorageBackend, clock: ManualClock
) -> None:
    run_id = await start(order_workflow, "order-4", 5.0, flaky=True, storage=backend)
    run = await get_workflow_run(run_id, storage=backend)
    assert run is not None and run.status is RunStatus.SUSPENDED
    step = await backend.get_step(f"{run_id}.2")
    assert step is not None and step.status == "retrying"

    clock.advance(30)
    await resume(run_id, storage=backend)

    run = await get_workflow_run(run_id, storage=backend)
    assert run is not None and run.status is RunStatus.COMPLETED
    step = await backend.get_step(f"{run_id}.2")
    assert step is not None and (step.status, step.attempt) == ("completed", 2)
    assert calls == {"process_order": 1, "charge_payment": 2, "send_notification": 1}


async def test_an_idempotency_key_starts_one_run(backend: StorageBackend) -> None:
    first = await start(order_workflow, "order-5", 1.0, idempotency_key="o5", storage=backend)
    second = await start(order_workflow, "order-5", 1.0, idempotency_key="o5", storage=backend)

    assert first == second
    assert calls["process_order"] == 1
    run = await get_workflow_run(first, storage=backend)
    assert run is not None and run.idempotency_key == "o5"


async def test_a_suspended_run_can_be_cancelled(backend: StorageBackend) -> None:
    run_id = await start(long_running, "order-6", storage=backend)

    assert await cancel_workflow(run_id, reason="customer", storage=backend) is True

    run = await get_workflow_run(run_id, storage=backend)
    assert run is not None and run.status is RunStatus.CANCELLED
    assert run.cancellation_reason == "customer"
    assert (await types_of(run_id, backend))[-1] == "workflow_cancelled"
    assert await cancel_workflow(run_id, storage=backend) is False
