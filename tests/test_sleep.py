"""sleep(): durable timers that suspend the run; plain waits elsewhere."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from pyworkflow import (
    RunStatus,
    configure,
    get_workflow_events,
    get_workflow_run,
    resume,
    sleep,
    start,
    step,
    workflow,
)
from pyworkflow.storage import InMemoryStorageBackend
from pyworkflow.testing import ManualClock

log: list[str] = []


@step()
async def mark(label: str) -> str:
    log.append(label)
    return label


@workflow(durable=True)
async def nap(duration: object) -> str:
    await mark("before")
    await sleep(duration)  # type: ignore[arg-type]
    return await mark("after")


@pytest.mark.parametrize(
    ("duration", "seconds"),
    [("30s", 30), ("5m", 300), ("1h", 3600), ("1d", 86400), ("1h30m", 5400), (45, 45), (2.5, 2.5)],
)
async def test_sleep_suspends_until_due(
    memory: InMemoryStorageBackend, clock: ManualClock, duration: object, seconds: float
) -> None:
    log.clear()
    run_id = await start(nap, duration)
    run = await get_workflow_run(run_id)
    assert run is not None and run.status is RunStatus.SUSPENDED
    assert run.suspended_reason == "sleep"
    assert run.resume_at == clock.now() + timedelta(seconds=seconds)
    started = [e for e in await get_workflow_events(run_id) if e.type.value == "sleep_started"]
    assert started[0].resume_at == run.resume_at
    assert started[0].data["duration"] == seconds

    clock.advance(seconds - 0.001)
    count = len(await get_workflow_events(run_id))
    assert await resume(run_id) is None  # before the due time: still suspended
    assert len(await get_workflow_events(run_id)) == count
    assert (await get_workflow_run(run_id)).status is RunStatus.SUSPENDED  # type: ignore[union-attr]

    clock.advance(0.001)
    assert await resume(run_id) == "after"
    types = [e.type.value for e in await get_workflow_events(run_id)][count:]
    assert types == [
        "workflow_resumed",
        "sleep_completed",
        "step_started",
        "step_completed",
        "workflow_completed",
    ]
    assert log == ["before", "after"]  # "before" was not run again on replay


async def test_resume_before_due_says_so(
    memory: InMemoryStorageBackend, capsys: pytest.CaptureFixture[str]
) -> None:
    configure(log_level="warning")
    run_id = await start(nap, "1h")
    capsys.readouterr()
    await resume(run_id)
    err = capsys.readouterr().err
    assert "resume_not_due" in err and run_id in err


async def test_sleep_zero_is_recorded_without_suspending(memory: InMemoryStorageBackend) -> None:
    run_id = await start(nap, 0)
    run = await get_workflow_run(run_id)
    assert run is not None and run.status is RunStatus.COMPLETED
    types = [e.type.value for e in await get_workflow_events(run_id)]
    assert "sleep_started" in types and "sleep_completed" in types
    assert "workflow_suspended" not in types


@workflow(durable=True)
async def nap_until(target: datetime) -> str:
    await sleep(target)  # arguments decode into their annotated types, here a datetime
    return "after"


async def test_sleep_until_an_absolute_datetime(
    memory: InMemoryStorageBackend, clock: ManualClock
) -> None:
    target = clock.now() + timedelta(days=2)
    run_id = await start(nap_until, target)
    run = await get_workflow_run(run_id)
    assert run is not None and run.resume_at == target
    clock.advance(timedelta(days=2))
    assert await resume(run_id) == "after"


@workflow(durable=True)
async def bad_nap(duration: object) -> None:
    await sleep(duration)  # type: ignore[arg-type]


@pytest.mark.parametrize("bad", ["-5s", -1, "soon", "5x"])
async def test_malformed_or_negative_sleep_fails_the_run_naming_the_input(
    memory: InMemoryStorageBackend, bad: object
) -> None:
    run_id = await start(bad_nap, bad)
    run = await get_workflow_run(run_id)
    assert run is not None and run.status is RunStatus.FAILED
    assert run.error_type == "ValueError" and repr(bad) in (run.error_message or "")
    assert "sleep_started" not in [e.type.value for e in await get_workflow_events(run_id)]


async def test_naive_datetime_is_rejected(memory: InMemoryStorageBackend) -> None:
    run_id = await start(nap_until, datetime(2030, 1, 1))
    run = await get_workflow_run(run_id)
    assert run is not None and "no timezone" in (run.error_message or "")


async def test_sleep_outside_a_workflow_waits_on_the_clock(clock: ManualClock) -> None:
    configure(clock=clock)
    before = clock.now()
    await sleep("90s")
    assert clock.now() - before == timedelta(seconds=90)
    await sleep(datetime(2025, 1, 1, tzinfo=UTC))  # in the past: no wait
    with pytest.raises(ValueError, match="invalid duration"):
        sleep("-1s")
