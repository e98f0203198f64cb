"""Steps: recorded once, never run twice, retried by policy with durable timers."""

from __future__ import annotations

from datetime import timedelta

import msgspec
import pytest

from pyworkflow import (
    ConfigurationError,
    FatalError,
    RetryableError,
    RunStatus,
    get_workflow_events,
    get_workflow_run,
    resume,
    sleep,
    start,
    step,
    workflow,
)
from pyworkflow._core._events import WorkflowStarted
from pyworkflow.storage import InMemoryStorageBackend
from pyworkflow.testing import ManualClock

calls: dict[str, int] = {}


def count(name: str) -> int:
    calls[name] = calls.get(name, 0) + 1
    return calls[name]


@pytest.fixture(autouse=True)
def _reset_calls() -> None:
    calls.clear()


def types(events: list) -> list[str]:  # type: ignore[type-arg]
    return [e.type.value for e in events]


@step()
async def once(x: int) -> int:
    count("once")
    return x + 1


@workflow(durable=True)
async def two_calls() -> int:
    a = await once(1)
    return await once(a)  # same step twice: distinct checkpoints by call order


async def test_each_call_is_its_own_checkpoint(memory: InMemoryStorageBackend) -> None:
    run_id = await start(two_calls)
    events = await get_workflow_events(run_id)
    completed = [e for e in events if e.type.value == "step_completed"]
    assert [e.data["step_id"] for e in completed] == [f"{run_id}.1", f"{run_id}.2"]
    assert [e.data["result"] for e in completed] == [2, 3]
    assert calls["once"] == 2
    run = await get_workflow_run(run_id)
    assert run is not None and run.result == 3 and run.step_count == 2


@step(max_retries=3, retry_delay=10)
async def flaky() -> str:
    if count("flaky") < 3:
        raise ConnectionError("Temporary failure")
    return "ok"


@workflow(durable=True)
async def flaky_workflow() -> str:
    return await flaky()


async def test_retry_delay_is_a_durable_timer(
    memory: InMemoryStorageBackend, clock: ManualClock
) -> None:
    run_id = await start(flaky_workflow)
    run = await get_workflow_run(run_id)
    assert run is not None and run.status is RunStatus.SUSPENDED
    assert run.suspended_reason == "retry"
    assert (run.resume_at - clock.now()).total_seconds() == 10  # type: ignore[operator]

    assert await resume(run_id) is None  # not due: nothing runs, nothing is written
    assert calls["flaky"] == 1
    before = len(await get_workflow_events(run_id))
    assert len(await get_workflow_events(run_id)) == before

    clock.advance(10)
    assert await resume(run_id) is None  # second attempt fails, suspends again
    clock.advance(10)
    assert await resume(run_id) == "ok"
    assert calls["flaky"] == 3
    events = await get_workflow_events(run_id)
    assert types(events) == [
        "workflow_started",
        "step_started",
        "step_failed",
        "step_retrying",
        "workflow_suspended",
        "workflow_resumed",
        "step_started",
        "step_failed",
        "step_retrying",
        "workflow_suspended",
        "workflow_resumed",
        "step_started",
        "step_completed",
        "workflow_completed",
    ]
    attempts = [e.data["attempt"] for e in events if e.type.value == "step_started"]
    assert attempts == [1, 2, 3]
    retrying = [e for e in events if e.type.value == "step_retrying"]
    assert retrying[0].resume_at == events[2].timestamp + timedelta(seconds=10)
    assert retrying[0].data["resume_at"] == "2025-01-01T00:00:10Z"  # its JSON form
    assert all(e.data["delay"] == 10 for e in retrying)


@step(max_retries=1, retry_delay=0)
async def always_fails() -> None:
    count("always_fails")
    raise ValueError("bad input 42")


@workflow(durable=True)
async def failing_workflow() -> None:
    await always_fails()


async def test_last_failure_fails_the_run_with_type_and_message(
    memory: InMemoryStorageBackend,
) -> None:
    run_id = await start(failing_workflow)  # the workflow's failure does not raise here
    run = await get_workflow_run(run_id)
    assert run is not None and run.status is RunStatus.FAILED
    assert (run.error_type, run.error_message) == ("ValueError", "bad input 42")
    assert run.error == "ValueError: bad input 42"
    assert calls["always_fails"] == 2  # zero delay: retried inline, no suspension
    events = await get_workflow_events(run_id)
    failed = [e.data["final"] for e in events if e.type.value == "step_failed"]
    assert failed == [False, True]
    assert events[-1].type.value == "workflow_failed"
    assert "ValueError" in events[-1].data["traceback"]


@step(max_retries=5)
async def fatal_step() -> None:
    count("fatal")
    raise FatalError("card blocked")


@workflow(durable=True)
async def fatal_workflow() -> None:
    await fatal_step()


async def test_fatal_error_never_retries(memory: InMemoryStorageBackend) -> None:
    run_id = await start(fatal_workflow)
    run = await get_workflow_run(run_id)
    assert run is not None and run.status is RunStatus.FAILED
    assert run.error_type == "pyworkflow.FatalError"
    assert calls["fatal"] == 1


@step(max_retries=2, retry_delay=1)
async def asks_for_later() -> str:
    if count("later") == 1:
        raise RetryableError("rate limited", retry_after="2m")
    return "done"


@workflow(durable=True)
async def later_workflow() -> str:
    return await asks_for_later()


async def test_retryable_error_sets_the_next_delay(
    memory: InMemoryStorageBackend, clock: ManualClock
) -> None:
    run_id = await start(later_workflow)
    run = await get_workflow_run(run_id)
    assert run is not None and run.resume_at is not None
    assert (run.resume_at - clock.now()).total_seconds() == 120
    clock.advance(119)
    assert await resume(run_id) is None
    clock.advance(1)
    assert await resume(run_id) == "done"


@step(max_retries=4, retry_delay=1, backoff=2, max_retry_delay=5)
async def backs_off() -> None:
    raise OSError("down")


@workflow(durable=True)
async def backoff_workflow() -> None:
    await backs_off()


async def test_exponential_backoff_is_capped(
    memory: InMemoryStorageBackend, clock: ManualClock
) -> None:
    run_id = await start(backoff_workflow)
    for _ in range(5):
        clock.advance(60)
        await resume(run_id)
    events = await get_workflow_events(run_id)
    delays = [e.data["delay"] for e in events if e.type.value == "step_retrying"]
    assert delays == [1, 2, 4, 5]
    run = await get_workflow_run(run_id)
    assert run is not None and run.status is RunStatus.FAILED


async def test_completed_steps_never_run_again_on_replay(
    memory: InMemoryStorageBackend, clock: ManualClock
) -> None:
    @step()
    async def side_effect(n: int) -> int:
        count(f"side{n}")
        return n

    @step(max_retries=1, retry_delay=5)
    async def fails_once() -> int:
        if count("fails_once") == 1:
            raise RuntimeError("boom")
        return 99

    @workflow(durable=True, name="replay_check")
    async def replay_check() -> list[int]:
        return [await side_effect(1), await side_effect(2), await fails_once()]

    run_id = await start(replay_check)
    clock.advance(5)
    assert await resume(run_id) == [1, 2, 99]
    assert (calls["side1"], calls["side2"], calls["fails_once"]) == (1, 1, 2)


def test_bad_step_options_are_clear_errors() -> None:
    with pytest.raises(ConfigurationError, match="max_retries=-1"):
        step(max_retries=-1)
    with pytest.raises(ConfigurationError, match="retry_delay"):
        step(retry_delay="soon")
    with pytest.raises(ConfigurationError, match=r"backoff=0\.5"):
        step(backoff=0.5)

    def not_async() -> None: ...

    with pytest.raises(ConfigurationError, match="async def"):
        step(not_async)  # type: ignore[arg-type]


async def test_step_outside_a_workflow_is_a_plain_call() -> None:
    assert await once(41) == 42


async def test_error_caught_by_workflow_replays_as_the_same_type(
    memory: InMemoryStorageBackend, clock: ManualClock
) -> None:
    @step()
    async def lookup() -> int:
        raise KeyError("missing")

    @workflow(durable=True, name="catches")
    async def catches() -> str:
        try:
            await lookup()
        except KeyError as exc:
            caught = f"{type(exc).__name__}:{exc.args[0]}"
        await sleep("1m")
        return caught

    run_id = await start(catches)
    clock.advance(60)
    # On replay the recorded KeyError is rebuilt with its recorded args, so the same except
    # branch runs and sees what the live run saw (not the message str(exc) = "'missing'").
    assert await resume(run_id) == "KeyError:missing"


async def test_write_ahead_a_steps_outcome_is_durable_before_the_next_body_runs(
    memory: InMemoryStorageBackend,
) -> None:
    seen: list[list[str]] = []

    @step(name="write_ahead.first")
    async def first() -> int:
        return 1

    @step(name="write_ahead.second")
    async def second(run_id: str) -> int:
        # Inside the body: step_started of this step and the outcome of the previous one
        # are already in the log (one append carried both).
        seen.append(types(await memory.read(run_id)))
        return 2

    @workflow(durable=True, name="write_ahead")
    async def write_ahead(run_id_box: list[str]) -> int:
        return await first() + await second(run_id_box[0])

    run_id = "run_00000000000000cc"
    started = WorkflowStarted(
        run_id=run_id,
        sequence=1,
        timestamp=ManualClock().now(),
        workflow_name="write_ahead",
        args=msgspec.Raw(msgspec.json.encode([[run_id]])),
    )
    await memory.append(run_id, [started], expected_sequence=0)
    assert await resume(run_id) == 3
    assert seen == [
        ["workflow_started", "workflow_resumed", "step_started", "step_completed", "step_started"]
    ]
