"""Hooks: tokens, payload delivery, typed validation, timeouts, misuse."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import msgspec
import pydantic
import pytest

from pyworkflow import (
    ConfigurationError,
    HookAlreadyReceivedError,
    HookExpiredError,
    HookPayloadError,
    InvalidTokenError,
    RunStatus,
    SerializationError,
    define_hook,
    get_workflow_events,
    get_workflow_run,
    hook,
    resume,
    resume_hook,
    start,
    workflow,
)
from pyworkflow.storage import InMemoryStorageBackend
from pyworkflow.testing import ManualClock

tokens: list[str] = []


@workflow(durable=True)
async def wait_for_payload() -> Any:
    return await hook("payment_webhook", on_created=tokens.append)


async def events_of(run_id: str) -> list[str]:
    return [e.type.value for e in await get_workflow_events(run_id)]


async def test_hook_suspends_and_resume_hook_continues(memory: InMemoryStorageBackend) -> None:
    tokens.clear()
    run_id = await start(wait_for_payload)
    run = await get_workflow_run(run_id)
    assert run is not None and run.status is RunStatus.SUSPENDED
    assert run.suspended_reason == "hook" and run.resume_at is None
    [token] = tokens
    assert token.startswith(f"{run_id}:hook_")

    run = await resume_hook(token, {"paid": True, "amount": 12})
    assert run.status is RunStatus.COMPLETED
    assert run.result == {"paid": True, "amount": 12}
    assert await events_of(run_id) == [
        "workflow_started",
        "hook_created",
        "workflow_suspended",
        "hook_received",
        "workflow_resumed",
        "workflow_completed",
    ]
    hooks = await memory.list_hooks(run_id)
    assert [h.status.value for h in hooks] == ["received"]


async def test_token_has_128_random_bits_not_derived_from_the_run(
    memory: InMemoryStorageBackend,
) -> None:
    tokens.clear()
    run_ids = [await start(wait_for_payload) for _ in range(20)]
    hook_ids = [t.split(":", 1)[1] for t in tokens]
    assert all(re.fullmatch(r"hook_[0-9a-f]{32}", h) for h in hook_ids)  # 32 hex = 128 bits
    assert len(set(hook_ids)) == 20
    assert not any(r[4:] in h for r, h in zip(run_ids, hook_ids, strict=True))


async def test_on_created_can_resume_the_hook_at_once(memory: InMemoryStorageBackend) -> None:
    """A payload that arrives before the run suspended is not lost."""

    async def answer_now(token: str) -> None:
        run = await resume_hook(token, "early")
        assert run.status is RunStatus.RUNNING  # the run is still being executed

    @workflow(durable=True, name="answered_early")
    async def answered_early() -> Any:
        return await hook("early", on_created=answer_now)

    run_id = await start(answered_early)
    run = await get_workflow_run(run_id)
    assert run is not None and run.status is RunStatus.COMPLETED and run.result == "early"


async def test_misused_tokens_are_clear_errors_that_change_nothing(
    memory: InMemoryStorageBackend,
) -> None:
    tokens.clear()
    run_id = await start(wait_for_payload)
    [token] = tokens
    before = await events_of(run_id)
    for bad in ["nonsense", run_id, f"{run_id}:hook_1234", "", 42, f"../{token}"]:
        with pytest.raises(InvalidTokenError, match="malformed hook token"):
            await resume_hook(bad, {})  # type: ignore[arg-type]
    unknown = f"{run_id}:hook_{'0' * 32}"
    with pytest.raises(InvalidTokenError, match="unknown hook token"):
        await resume_hook(unknown, {})
    other_run = f"run_{'f' * 16}:{token.split(':')[1]}"
    with pytest.raises(InvalidTokenError, match="unknown hook token"):
        await resume_hook(other_run, {})
    assert await events_of(run_id) == before

    await resume_hook(token, 1)
    after = await events_of(run_id)
    with pytest.raises(HookAlreadyReceivedError, match="already received"):
        await resume_hook(token, 2)
    assert await events_of(run_id) == after


@dataclass
class Approval:
    approved: bool
    approver: str


class Shipment(msgspec.Struct):
    tracking: str
    weight_kg: float


class Review(pydantic.BaseModel):
    score: int
    comment: str


@pytest.mark.parametrize(
    ("model", "good", "bad"),
    [
        (Approval, {"approved": True, "approver": "dana"}, {"approved": "nope"}),
        (Shipment, {"tracking": "1Z", "weight_kg": 2.5}, {"tracking": 5}),
        (Review, {"score": 5, "comment": "great"}, {"score": "many"}),
    ],
)
async def test_typed_hooks_validate_before_writing(
    memory: InMemoryStorageBackend, model: type, good: dict[str, Any], bad: dict[str, Any]
) -> None:
    typed = define_hook(f"typed_{model.__name__}", model)
    seen: list[str] = []

    @workflow(durable=True, name=f"typed_wf_{model.__name__}")
    async def typed_workflow() -> bool:
        payload = await typed(on_created=seen.append)
        return isinstance(payload, model)  # decoded into the model, live and on replay

    run_id = await start(typed_workflow)
    before = await events_of(run_id)
    with pytest.raises(HookPayloadError, match=model.__qualname__):
        await resume_hook(seen[0], bad)
    assert await events_of(run_id) == before  # nothing written
    run = await resume_hook(seen[0], good)
    assert run.status is RunStatus.COMPLETED and run.result is True


async def test_typed_hook_accepts_an_instance(memory: InMemoryStorageBackend) -> None:
    typed = define_hook("approval_instance", Approval)
    seen: list[str] = []

    @workflow(durable=True, name="approval_instance_wf")
    async def approval_wf() -> str:
        return (await typed(on_created=seen.append)).approver

    run_id = await start(approval_wf)
    run = await resume_hook(seen[0], Approval(approved=True, approver="lee"))
    assert run.run_id == run_id and run.result == "lee"


@workflow(durable=True)
async def wait_with_timeout() -> str:
    try:
        await hook("approval", timeout="1h", on_created=tokens.append)
    except HookExpiredError as exc:
        return f"expired: {exc}"
    return "approved"


async def test_hook_timeout_records_expiry_and_raises_inside(
    memory: InMemoryStorageBackend, clock: ManualClock
) -> None:
    tokens.clear()
    run_id = await start(wait_with_timeout)
    run = await get_workflow_run(run_id)
    assert run is not None and run.resume_at is not None
    assert (run.resume_at - clock.now()).total_seconds() == 3600  # type: ignore[operator]
    clock.advance(3599)
    assert await resume(run_id) is None
    clock.advance(1)
    result = await resume(run_id)
    assert result.startswith("expired: hook 'approval'")
    assert "hook_expired" in await events_of(run_id)
    before = await events_of(run_id)
    with pytest.raises(HookExpiredError):
        await resume_hook(tokens[0], {})
    assert await events_of(run_id) == before


async def test_payload_after_the_timeout_is_refused(
    memory: InMemoryStorageBackend, clock: ManualClock
) -> None:
    tokens.clear()
    run_id = await start(wait_with_timeout)
    clock.advance(7200)  # nobody resumed the run yet, but its hook has timed out
    before = await events_of(run_id)
    with pytest.raises(HookExpiredError, match="timed out"):
        await resume_hook(tokens[0], {})
    assert await events_of(run_id) == before


async def test_hook_outside_a_durable_workflow_is_an_error() -> None:
    with pytest.raises(ConfigurationError, match="inside a durable workflow"):
        hook("anywhere")


async def test_non_serializable_payload_writes_nothing(memory: InMemoryStorageBackend) -> None:
    tokens.clear()
    run_id = await start(wait_for_payload)
    before = await events_of(run_id)
    with pytest.raises(SerializationError):
        await resume_hook(tokens[0], object())
    assert await events_of(run_id) == before


async def test_on_created_runs_again_if_the_run_died_before_suspending(
    memory: InMemoryStorageBackend,
) -> None:
    """A crash between hook_created and the suspension must not lose the token."""
    announced: list[str] = []

    def crash_once(token: str) -> None:
        announced.append(token)
        if len(announced) == 1:
            raise KeyboardInterrupt  # stands in for the process dying here

    @workflow(durable=True, name="announces")
    async def announces() -> Any:
        return await hook("approval", on_created=crash_once)

    with pytest.raises(KeyboardInterrupt):
        await start(announces)
    [run] = (await memory.list_runs()).runs
    assert run.status is RunStatus.RUNNING
    await resume(run.run_id)  # recovery: the pending hook is announced again
    assert len(announced) == 2 and announced[0] == announced[1]
    assert (await get_workflow_run(run.run_id)).status is RunStatus.SUSPENDED  # type: ignore[union-attr]
    done = await resume_hook(announced[0], "yes")
    assert done.result == "yes"
    assert len(announced) == 2  # not again once the run had suspended
