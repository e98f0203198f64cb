"""The local runtime: start, resume, recovery, idempotency, listing, misuse."""

from __future__ import annotations

import asyncio

import anyio
import anyio.lowlevel
import pytest

import pyworkflow
from pyworkflow import (
    ConfigurationError,
    NonDeterminismError,
    RunLockedError,
    RunNotFoundError,
    RunStatus,
    Workflow,
    WorkflowNotRegisteredError,
    configure,
    get_workflow_events,
    get_workflow_run,
    list_runs,
    resume,
    sleep,
    start,
    step,
    workflow,
)
from pyworkflow._core._events import CancellationRequested, WorkflowStarted
from pyworkflow._execution._registry import registry
from pyworkflow.storage import InMemoryStorageBackend
from pyworkflow.testing import ManualClock

executions: list[str] = []


@pytest.fixture(autouse=True)
def _clear() -> None:
    executions.clear()


@step()
async def record(label: str) -> str:
    executions.append(label)
    return label


@workflow(durable=True, tags=["orders", "demo"])
async def simple(label: str) -> str:
    return await record(label)


async def types_of(run_id: str, storage: object = None) -> list[str]:
    return [e.type.value for e in await get_workflow_events(run_id, storage=storage)]  # type: ignore[arg-type]


async def test_start_returns_the_run_id_and_runs_inline(memory: InMemoryStorageBackend) -> None:
    run_id = await start(simple, "a")
    assert run_id.startswith("run_")
    run = await get_workflow_run(run_id)
    assert run is not None
    assert (run.status, run.result, run.workflow_name) == (RunStatus.COMPLETED, "a", "simple")
    assert run.tags == ("orders", "demo") and run.args == ["a"]
    assert run.completed_at is not None and run.created_at <= run.completed_at
    events = await get_workflow_events(run_id)
    assert [e.sequence for e in events] == list(range(1, len(events) + 1))
    assert all(e.run_id == run_id for e in events)


async def test_resuming_a_finished_run_changes_nothing(memory: InMemoryStorageBackend) -> None:
    run_id = await start(simple, "b")
    before = await types_of(run_id)
    assert await resume(run_id) == "b"
    assert await types_of(run_id) == before
    assert executions == ["b"]


async def test_unknown_ids(memory: InMemoryStorageBackend) -> None:
    assert await get_workflow_run("run_0000000000000000") is None
    assert await get_workflow_events("run_0000000000000000") == []
    with pytest.raises(RunNotFoundError, match="run_0000000000000000"):
        await resume("run_0000000000000000")


async def test_storage_argument_overrides_the_configured_one(
    memory: InMemoryStorageBackend,
) -> None:
    other = InMemoryStorageBackend()
    run_id = await start(simple, "c", storage=other)
    assert await get_workflow_run(run_id) is None
    run = await get_workflow_run(run_id, storage=other)
    assert run is not None and run.result == "c"
    assert await types_of(run_id, other) == [
        "workflow_started",
        "step_started",
        "step_completed",
        "workflow_completed",
    ]


async def test_default_storage_is_a_process_wide_memory_backend() -> None:
    run_id = await start(simple, "d")
    run = await get_workflow_run(run_id)
    assert run is not None and run.status is RunStatus.COMPLETED


async def test_misuse_of_start_raises_and_writes_nothing(memory: InMemoryStorageBackend) -> None:
    async def plain(x: int) -> int:
        return x

    with pytest.raises(ConfigurationError, match="decorated with @workflow"):
        await start(plain, 1)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="bad arguments for simple"):
        await start(simple)
    with pytest.raises(TypeError, match="bad arguments for simple"):
        await start(simple, "x", unknown=1)
    with pytest.raises(ConfigurationError, match="idempotency_key"):
        await start(simple, "x", idempotency_key="")
    assert len(await list_runs()) == 0


def test_misuse_of_the_decorators() -> None:
    with pytest.raises(ConfigurationError, match="async def"):
        workflow(lambda: None)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="tags"):
        workflow(tags="single")(simple.fn)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="durable='yes'"):
        workflow(durable="yes")(simple.fn)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="storage"):
        configure(storage="./data")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="default_durable"):
        configure(default_durable="no")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="log_level"):
        configure(log_level="loud")


async def test_idempotency_key_returns_the_same_run(memory: InMemoryStorageBackend) -> None:
    first = await start(simple, "e", idempotency_key="order-123")
    second = await start(simple, "e", idempotency_key="order-123")
    assert first == second
    assert executions == ["e"]
    run = await get_workflow_run(first)
    assert run is not None and run.idempotency_key == "order-123"


@workflow(durable=True, name="engine.refund")
async def refund(label: str) -> str:
    return await record(f"refund {label}")


async def test_an_idempotency_key_names_one_workflow(memory: InMemoryStorageBackend) -> None:
    first = await start(simple, "e", idempotency_key="order-7")
    # The same workflow with other arguments: the existing run, nothing executes again.
    assert await start(simple, "other", idempotency_key="order-7") == first
    with pytest.raises(ConfigurationError) as info:
        await start(refund, "e", idempotency_key="order-7")
    message = str(info.value)
    assert "'order-7'" in message and "'simple'" in message and "'engine.refund'" in message
    assert first in message
    assert executions == ["e"]
    assert [r.run_id for r in await list_runs()] == [first]


async def test_idempotency_under_concurrent_starts(memory: InMemoryStorageBackend) -> None:
    gate = anyio.Event()

    @step(name="engine.slow")
    async def slow(label: str) -> str:
        executions.append(label)
        await gate.wait()
        return label

    @workflow(durable=True, name="slow_idem")
    async def slow_idem(label: str) -> str:
        return await slow(label)

    ids: list[str] = []

    async def starter() -> None:
        ids.append(await start(slow_idem, "f", idempotency_key="k-1"))

    async with anyio.create_task_group() as tg:
        for _ in range(10):
            tg.start_soon(starter)
        # Nine starts return while the first is still running.
        with anyio.fail_after(5):
            while len(ids) < 9:
                await anyio.lowlevel.checkpoint()
        gate.set()
    assert len(set(ids)) == 1 and len(ids) == 10
    assert executions == ["f"]
    assert len(await list_runs()) == 1


def _gated(name: str) -> tuple[Workflow[[str], str], anyio.Event, anyio.Event]:
    """A workflow ``name`` that sets the first event, waits for the second (not durable:
    nothing is written yet), then runs one step recording its label in ``executions``."""
    before_first_step, release = anyio.Event(), anyio.Event()

    @step(name=f"{name}.step")
    async def after_gate(label: str) -> str:
        executions.append(label)
        return label

    @workflow(durable=True, name=name)
    async def gated(label: str) -> str:
        before_first_step.set()
        await release.wait()
        return await after_gate(label)

    return gated, before_first_step, release


async def test_a_start_with_a_key_whose_run_is_not_written_yet_returns_that_run(
    memory: InMemoryStorageBackend,
) -> None:
    """A run's start is written with its first step's: between the key's claim and that
    write, the claimer's workflow code runs. A second start with the key then finds no
    start in the log and the run locked by the claimer: it returns the run, not an error."""
    gated_idem, before_first_step, release = _gated("engine.gated_idem")
    ids: list[str] = []

    async def starter() -> None:
        ids.append(await start(gated_idem, "h", idempotency_key="k-3"))

    async with anyio.create_task_group() as tg:
        tg.start_soon(starter)
        with anyio.fail_after(5):
            await before_first_step.wait()
        assert await memory.read(ids[0] if ids else "none") == []
        second = await start(gated_idem, "h", idempotency_key="k-3")
        release.set()
    assert ids == [second]
    assert executions == ["h"]
    assert len(await list_runs()) == 1


class _ClaimThenWait(InMemoryStorageBackend):
    """Memory storage whose first idempotency claim waits, once made, for ``go``."""

    def __init__(self) -> None:
        super().__init__()
        self.claimed, self.go = anyio.Event(), anyio.Event()

    async def claim_idempotency_key(self, key: str, run_id: str) -> str:
        holder = await super().claim_idempotency_key(key, run_id)
        if not self.claimed.is_set():
            self.claimed.set()
            await self.go.wait()
        return holder


async def test_the_claimer_of_a_key_whose_run_another_start_took_over_returns_that_run() -> None:
    """The key's claimer is slow to lock its run; a second start finds the run unstarted and
    starts it for the claimer. The claimer then finds the run locked: it returns the run, not
    an error (three processes on file storage raced this way: test_file_crash)."""
    storage = _ClaimThenWait()
    configure(storage=storage)
    taken_over, before_first_step, release = _gated("engine.taken_over")
    ids: list[str] = []

    async def starter() -> None:
        ids.append(await start(taken_over, "t", idempotency_key="k-4"))

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(starter)  # the claimer: waits after its claim
            await storage.claimed.wait()
            tg.start_soon(starter)  # finds the run unstarted: starts it, holds its lock
            await before_first_step.wait()
            storage.go.set()  # the claimer goes on: the run is locked by the other start
            while len(ids) < 1:
                await anyio.lowlevel.checkpoint()
            release.set()
    assert len(ids) == 2 and ids[0] == ids[1]
    assert executions == ["t"]
    assert len(await list_runs()) == 1


async def test_an_orphaned_idempotency_claim_is_taken_over(memory: InMemoryStorageBackend) -> None:
    """A claimer that died before writing workflow_started doesn't block the key forever."""
    await memory.claim_idempotency_key("k-2", "run_00000000000000aa")
    run_id = await start(simple, "g", idempotency_key="k-2")
    assert run_id == "run_00000000000000aa"
    run = await get_workflow_run(run_id)
    assert run is not None and run.status is RunStatus.COMPLETED


async def test_a_second_concurrent_resume_cannot_execute_the_run_twice(
    memory: InMemoryStorageBackend, clock: ManualClock
) -> None:
    entered, release = anyio.Event(), anyio.Event()

    @step()
    async def guarded() -> str:
        executions.append("guarded")
        entered.set()
        await release.wait()
        return "ok"

    @workflow(durable=True, name="guarded_flow")
    async def guarded_flow() -> str:
        await sleep("1m")
        return await guarded()

    run_id = await start(guarded_flow)
    clock.advance(60)
    async with anyio.create_task_group() as tg:
        tg.start_soon(resume, run_id)
        await entered.wait()
        with pytest.raises(RunLockedError, match=run_id):
            await resume(run_id)
        release.set()
    assert executions == ["guarded"]
    run = await get_workflow_run(run_id)
    assert run is not None and run.status is RunStatus.COMPLETED


async def test_a_running_run_whose_executor_died_is_recovered(
    memory: InMemoryStorageBackend,
) -> None:
    """Cancel the executing task mid-step (its process "died"): resume recovers the run."""
    entered = anyio.Event()
    attempts: list[int] = []

    @step()
    async def first() -> int:
        executions.append("first")
        return 1

    @step()
    async def hangs() -> int:
        attempts.append(1)
        if len(attempts) == 1:
            entered.set()
            await anyio.sleep_forever()
        return 2

    @workflow(durable=True, name="dies_midway")
    async def dies_midway() -> int:
        return await first() + await hangs()

    async with anyio.create_task_group() as tg:
        tg.start_soon(start, dies_midway)
        await entered.wait()
        tg.cancel_scope.cancel()
    [run] = (await list_runs()).runs
    assert run.status is RunStatus.RUNNING  # nobody holds it any more
    assert await resume(run.run_id) == 3
    assert executions == ["first"]  # the completed step was served from the log
    assert len(attempts) == 2  # the in-flight step ran again (at-least-once)
    types = await types_of(run.run_id)
    assert types.count("workflow_resumed") == 1 and types[-1] == "workflow_completed"


async def test_changed_code_is_a_non_determinism_error_and_the_log_is_untouched(
    memory: InMemoryStorageBackend, clock: ManualClock
) -> None:
    @step()
    async def alpha() -> int:
        return 1

    @step()
    async def beta() -> int:
        return 2

    registry._workflows.pop("evolving", None)  # v2 of this test's previous run
    @workflow(durable=True, name="evolving")
    async def v1() -> int:
        await alpha()
        await sleep("1m")
        return await beta()

    run_id = await start(v1)
    before = await get_workflow_events(run_id)

    registry._workflows.pop("evolving")  # as in a new process, with the changed code
    @workflow(durable=True, name="evolving")  # a deploy changed the code
    async def v2() -> int:
        try:  # noqa: SIM105 (the point: a broad except must not hide it)
            await beta()  # the log recorded alpha() here
        except Exception:
            pass
        return await alpha()

    clock.advance(60)
    with pytest.raises(NonDeterminismError) as info:
        await resume(run_id)
    text = str(info.value)
    assert "checkpoint 1" in text and "'alpha'" in text and "'beta'" in text
    assert await get_workflow_events(run_id) == before
    run = await get_workflow_run(run_id)
    assert run is not None and run.status is RunStatus.SUSPENDED


async def test_a_run_of_an_unknown_workflow_names_it(memory: InMemoryStorageBackend) -> None:
    started = WorkflowStarted(
        run_id="run_00000000000000bb",
        sequence=1,
        timestamp=ManualClock().now(),
        workflow_name="never_imported",
    )
    await memory.append("run_00000000000000bb", [started], expected_sequence=0)
    with pytest.raises(WorkflowNotRegisteredError, match="never_imported"):
        await resume("run_00000000000000bb")


async def test_list_runs_filters_newest_first_and_pages(
    memory: InMemoryStorageBackend, clock: ManualClock
) -> None:
    @workflow(durable=True, name="napper")
    async def napper() -> None:
        await sleep("1h")

    ids = []
    for i in range(5):
        clock.advance(1)
        ids.append(await start(simple, str(i)))
        clock.advance(1)
        ids.append(await start(napper))
    page = await list_runs(limit=3)
    assert [r.run_id for r in page] == ids[::-1][:3]
    page2 = await list_runs(limit=3, cursor=page.next_cursor)
    assert [r.run_id for r in page2] == ids[::-1][3:6]
    suspended = await list_runs(status="suspended")
    assert {r.run_id for r in suspended} == set(ids[1::2])
    assert all(r.workflow_name == "napper" for r in suspended)
    by_name = await list_runs(workflow_name="simple", status=RunStatus.COMPLETED, limit=2)
    assert [r.run_id for r in by_name] == [ids[8], ids[6]] and by_name.next_cursor
    with pytest.raises(ValueError, match="'paused'"):
        await list_runs(status="paused")
    with pytest.raises(ConfigurationError, match="limit 0"):
        await list_runs(limit=0)


async def test_transient_workflows_run_without_a_log(memory: InMemoryStorageBackend) -> None:
    @workflow(durable=False, name="quick")
    async def quick(x: int) -> int:
        await sleep(0)
        return int(await record(str(x)))

    assert await quick(5) == 5  # a direct call
    run_id = await start(quick, 6)
    assert run_id.startswith("run_")
    assert await get_workflow_run(run_id) is None
    assert memory._events == {}
    assert executions == ["5", "6"]


async def test_default_durable_decides_for_undecided_workflows(
    memory: InMemoryStorageBackend,
) -> None:
    @workflow(name="undecided")
    async def undecided() -> str:
        return await record("u")

    configure(default_durable=False)
    assert await get_workflow_run(await start(undecided)) is None
    configure(default_durable=True)
    run = await get_workflow_run(await start(undecided))
    assert run is not None and run.status is RunStatus.COMPLETED


async def test_the_workflows_failure_is_recorded_not_raised(memory: InMemoryStorageBackend) -> None:
    @workflow(durable=True, name="explodes")
    async def explodes() -> None:
        await record("before")
        raise LookupError("no such customer: 7")

    run_id = await start(explodes)
    run = await get_workflow_run(run_id)
    assert run is not None and run.status is RunStatus.FAILED
    assert run.error == "LookupError: no such customer: 7"
    assert await resume(run_id) is None  # finished: nothing happens


async def test_concurrent_steps_with_gather_get_stable_identities(
    memory: InMemoryStorageBackend, clock: ManualClock, anyio_backend: str
) -> None:
    """Identity is taken at call time, so finishing order doesn't matter on replay."""

    @step()
    async def fetch(name: str, delay: int) -> str:
        executions.append(name)
        for _ in range(delay):
            await anyio.lowlevel.checkpoint()
        return name

    async def both() -> list[str]:
        calls = [fetch("slow", 20), fetch("fast", 0)]  # identities 1 and 2, in call order
        if anyio_backend == "asyncio":
            return list(await asyncio.gather(*calls))
        results: dict[int, str] = {}

        async def run(i: int) -> None:
            results[i] = await calls[i]

        async with anyio.create_task_group() as tg:
            for i in range(len(calls)):
                tg.start_soon(run, i)
        return [results[0], results[1]]

    @workflow(durable=True, name="fan_out")
    async def fan_out() -> list[str]:
        first = await both()
        await sleep("1s")
        return [*first, await fetch("after", 0)]

    run_id = await start(fan_out)
    completed = [
        e.data for e in await get_workflow_events(run_id) if e.type.value == "step_completed"
    ]
    assert [(d["checkpoint"], d["result"]) for d in completed] == [(2, "fast"), (1, "slow")]
    clock.advance(1)
    assert await resume(run_id) == ["slow", "fast", "after"]
    assert sorted(executions) == ["after", "fast", "slow"]  # nothing ran twice


async def test_a_branch_suspending_lets_running_steps_finish(
    memory: InMemoryStorageBackend, clock: ManualClock
) -> None:
    """A sleep in one branch waits for a step in flight in another to record its result."""
    started = anyio.Event()

    @step()
    async def busy() -> str:
        started.set()
        for _ in range(10):
            await anyio.lowlevel.checkpoint()
        executions.append("busy")
        return "busy"

    @workflow(durable=True, name="mixed")
    async def mixed() -> list[str]:
        out: list[str] = []
        work = busy()  # checkpoint 1

        async def worker() -> None:
            out.append(await work)
            started.set()  # on replay the step is served without running

        async def napper() -> None:
            await started.wait()
            await sleep("10s")  # checkpoint 2, while busy() is still running
            out.append("slept")

        async with anyio.create_task_group() as tg:
            tg.start_soon(worker)
            tg.start_soon(napper)
        return sorted(out)

    run_id = await start(mixed)
    run = await get_workflow_run(run_id)
    assert run is not None and run.status is RunStatus.SUSPENDED
    assert executions == ["busy"]
    types = await types_of(run_id)
    assert types.index("sleep_started") < types.index("step_completed")
    assert types[-1] == "workflow_suspended"
    started = anyio.Event()
    clock.advance(10)
    assert await resume(run_id) == ["busy", "slept"]
    assert executions == ["busy"]


def test_workflow_keeps_its_signature_and_name() -> None:
    import inspect

    assert simple.__name__ == "simple" and simple.__doc__ == simple.fn.__doc__
    assert inspect.signature(simple) == inspect.signature(simple.fn)
    assert list(inspect.signature(simple).parameters) == ["label"]
    assert pyworkflow.Workflow is type(simple)


async def test_a_resume_folds_only_what_was_appended_since_the_last_execution(
    memory: InMemoryStorageBackend, clock: ManualClock
) -> None:
    """The folded state is kept between executions in this process; a resume reads only
    the newer events, including ones another writer appended meanwhile."""
    @workflow(durable=True, name="kept_state")
    async def kept_state() -> str:
        for i in range(5):
            await record(str(i))
        try:
            await sleep("1h")
        except pyworkflow.CancellationError:
            return "cleaned up"
        return "slept"

    run_id = await start(kept_state)
    seq = len(await memory.read(run_id))
    # Another writer (another process, say) records a cancellation behind our back.
    cancel = CancellationRequested(
        run_id=run_id, sequence=seq + 1, timestamp=clock.now(), reason="elsewhere"
    )
    await memory.append(run_id, [cancel], expected_sequence=seq)

    reads: list[int] = []
    real_read = memory.read

    async def spy(run_id: str, *, after: int = 0) -> list:  # type: ignore[type-arg]
        reads.append(after)
        return await real_read(run_id, after=after)

    memory.read = spy  # type: ignore[method-assign]
    assert await resume(run_id) == "cleaned up"
    assert reads[0] == seq  # not a fold from the first event
    assert executions == ["0", "1", "2", "3", "4"]  # nothing ran twice
