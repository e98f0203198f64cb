"""The embedded supervisor: one actor per active run, timers that fire by themselves.

Runs on asyncio and trio, in virtual time (``ManualClock``: the supervisor's timers fire when
the test advances the clock), on the memory backend and on the file backend (whose appends
really yield).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import anyio
import pytest

import pyworkflow
from pyworkflow import (
    CancellationError,
    ConfigurationError,
    HookAlreadyReceivedError,
    HookExpiredError,
    RunNotFoundError,
    RunStatus,
    WorkflowCancelledError,
    WorkflowFailedError,
    cancel_workflow,
    configure,
    hook,
    resume,
    resume_hook,
    shield,
    sleep,
    start,
    step,
    workflow,
)
from pyworkflow._core._events import SleepCompleted, SleepStarted
from pyworkflow._execution._registry import registry
from pyworkflow.actors import Supervisor
from pyworkflow.storage import FileStorageBackend, InMemoryStorageBackend, StorageBackend
from pyworkflow.testing import ManualClock
from tests.faulty import FaultyStorage, has

ran: list[str] = []
tokens: dict[str, str] = {}
gates: dict[str, anyio.Event] = {}


@pytest.fixture(autouse=True)
def _clean() -> None:
    ran.clear()
    tokens.clear()
    gates.clear()


@step(name="sv_add")
async def add(a: int, b: int) -> int:
    ran.append(f"add {a} {b}")
    return a + b


@step(name="sv_blocked")
async def blocked(name: str) -> str:
    ran.append(f"blocked {name}")
    await gates.setdefault(name, anyio.Event()).wait()
    return name


@step(name="sv_fails")
async def fails() -> None:
    raise ValueError("no stock")


@workflow(durable=True, name="sv_sleeper")
async def sleeper(seconds: int) -> int:
    total = await add(seconds, 1)
    await sleep(seconds)
    return total


@workflow(durable=True, name="sv_approval")
async def approval(order: str) -> str:
    payload = await hook("approve", on_created=lambda t: tokens.__setitem__(order, t))
    return f"{order}: {payload}"


@workflow(durable=True, name="sv_timeout")
async def timeout_wf() -> str:
    try:
        await hook("late", timeout="30s")
    except HookExpiredError:
        return "expired"
    return "received"


@workflow(durable=True, name="sv_failing")
async def failing() -> None:
    await fails()


@workflow(durable=True, name="sv_two_steps")
async def two_steps(name: str) -> str:
    first = await blocked(name)
    try:
        await add(1, 2)
    except CancellationError:
        async with shield():
            await add(9, 9)
        raise
    return first


@pytest.fixture(params=["memory", "file"])
def storage(request: pytest.FixtureRequest, tmp_path: Path) -> StorageBackend:
    if request.param == "memory":
        return InMemoryStorageBackend()
    return FileStorageBackend(tmp_path / "data", durability="none")


@pytest.fixture
def clock() -> ManualClock:
    clock = ManualClock()
    configure(clock=clock)
    return clock


@pytest.fixture
async def sup(storage: StorageBackend, clock: ManualClock) -> AsyncIterator[Supervisor]:
    async with Supervisor(storage=storage, clock=clock) as supervisor:
        yield supervisor


async def until(check: Callable[[], Any], what: str, seconds: float = 10.0) -> None:
    """Wait (real time, bounded) until ``check()`` is true: file I/O runs in threads."""
    with anyio.fail_after(seconds):
        while not await _call(check):  # noqa: ASYNC110 - polls storage, files in threads
            await anyio.sleep(0.002)
    assert await _call(check), what


async def _call(check: Callable[[], Any]) -> Any:
    value = check()
    return await value if hasattr(value, "__await__") else value


async def status(storage: StorageBackend, run_id: str) -> RunStatus:
    run = await storage.get_run(run_id)
    assert run is not None
    return run.status


async def types(storage: StorageBackend, run_id: str) -> list[str]:
    return [e.type.value for e in await storage.read(run_id)]


# -- the API ---------------------------------------------------------------------------


async def test_start_returns_once_durably_started_and_result_waits(
    sup: Supervisor, storage: StorageBackend, clock: ManualClock
) -> None:
    run_id = await sup.start(sleeper, 5)
    assert (await storage.read(run_id))[0].type.value == "workflow_started"
    await until(lambda: _suspended(storage, run_id), "the run sleeps")
    clock.advance(5)
    assert await sup.result(run_id, timeout=10) == 6
    assert ran == ["add 5 1"]  # the step ran once; the wake-up replayed it


async def test_result_raises_what_the_run_ended_with(
    sup: Supervisor, storage: StorageBackend
) -> None:
    failed = await sup.start(failing)
    with pytest.raises(WorkflowFailedError) as info:
        await sup.result(failed, timeout=10)
    assert info.value.error_type == "ValueError" and info.value.error_message == "no stock"
    assert info.value.run_id == failed

    waiting = await sup.start(approval, "o-1")
    await until(lambda: "o-1" in tokens, "the hook is created")
    assert await sup.cancel(waiting, reason="customer left") is True
    with pytest.raises(WorkflowCancelledError, match="customer left"):
        await sup.result(waiting, timeout=10)
    assert await sup.cancel(waiting) is False  # finished: nothing to cancel


async def test_result_times_out_with_the_builtin_timeout_error(sup: Supervisor) -> None:
    run_id = await sup.start(approval, "o-2")
    with pytest.raises(TimeoutError):
        await sup.result(run_id, timeout=0.05)
    with pytest.raises(RunNotFoundError):
        await sup.result("run_0000000000000000", timeout=1)


async def test_a_hook_payload_wakes_the_run_by_itself(
    sup: Supervisor, storage: StorageBackend
) -> None:
    run_id = await sup.start(approval, "o-3")
    await until(lambda: "o-3" in tokens, "the hook is created")
    await until(lambda: _suspended(storage, run_id), "the run waits")
    record = await sup.resume_hook(tokens["o-3"], "ok")
    assert record.run_id == run_id
    assert await sup.result(run_id, timeout=10) == "o-3: ok"


async def test_two_deliveries_to_one_hook_record_one_payload(
    sup: Supervisor, storage: StorageBackend
) -> None:
    run_id = await sup.start(approval, "o-4")
    await until(lambda: "o-4" in tokens, "the hook is created")
    outcomes: list[str] = []

    async def deliver(payload: str) -> None:
        try:
            await sup.resume_hook(tokens["o-4"], payload)
        except HookAlreadyReceivedError:
            outcomes.append("refused")
        else:
            outcomes.append(payload)

    async with anyio.create_task_group() as tg:
        tg.start_soon(deliver, "yes")
        tg.start_soon(deliver, "no")
    assert sorted(outcomes) in (["refused", "yes"], ["no", "refused"])
    winner = next(o for o in outcomes if o != "refused")
    assert await sup.result(run_id, timeout=10) == f"o-4: {winner}"
    assert (await types(storage, run_id)).count("hook_received") == 1


async def test_hook_timeouts_fire_by_themselves(
    sup: Supervisor, storage: StorageBackend, clock: ManualClock
) -> None:
    run_id = await sup.start(timeout_wf)
    await until(lambda: _suspended(storage, run_id), "the run waits for its hook")
    clock.advance(29)
    await anyio.sleep(0.01)
    assert await status(storage, run_id) is RunStatus.SUSPENDED
    clock.advance(2)
    assert await sup.result(run_id, timeout=10) == "expired"
    assert "hook_expired" in await types(storage, run_id)


async def test_cancel_beside_a_running_step_lets_it_finish_and_stops_at_the_next_checkpoint(
    sup: Supervisor, storage: StorageBackend
) -> None:
    run_id = await sup.start(two_steps, "c-1")
    await until(lambda: "blocked c-1" in ran, "the step runs")
    assert await sup.cancel(run_id, reason="stop") is True
    gates["c-1"].set()
    with pytest.raises(WorkflowCancelledError):
        await sup.result(run_id, timeout=10)
    kinds = await types(storage, run_id)
    # The running step's outcome is recorded; the next step never started; cleanup ran.
    assert kinds.index("cancellation_requested") < kinds.index("step_completed")
    assert ran == ["blocked c-1", "add 9 9"]
    assert kinds[-1] == "workflow_cancelled"


async def test_max_active_bounds_the_runs_that_execute_at_once(
    storage: StorageBackend, clock: ManualClock
) -> None:
    async with Supervisor(storage=storage, clock=clock, max_active=2) as sup:
        first = [await sup.start(two_steps, f"m-{i}") for i in range(2)]
        await until(lambda: len([r for r in ran if r.startswith("blocked")]) == 2, "2 run")
        with anyio.move_on_after(0.2) as waited:
            await sup.start(two_steps, "m-x")  # waits for a slot, and records nothing
        assert waited.cancelled_caught
        assert len((await storage.list_runs()).runs) == 2
        third: list[str] = []
        async with anyio.create_task_group() as tg:

            async def start_third() -> None:
                third.append(await sup.start(two_steps, "m-2"))

            tg.start_soon(start_third)
            await anyio.sleep(0.05)
            assert not third and sum(r.startswith("blocked") for r in ran) == 2
            for name in ("m-0", "m-1"):
                gates[name].set()
        assert [await sup.result(run_id, timeout=10) for run_id in first] == ["m-0", "m-1"]
        await until(lambda: "blocked m-2" in ran, "the third run gets a slot")
        gates["m-2"].set()
        assert await sup.result(third[0], timeout=10) == "m-2"


async def test_module_level_calls_go_to_the_supervisor(
    sup: Supervisor, storage: StorageBackend, clock: ManualClock
) -> None:
    configure(storage=storage)
    run_id = await start(approval, "r-1")  # returns when the run rests, as without one
    assert await status(storage, run_id) is RunStatus.SUSPENDED
    run = await resume_hook(tokens["r-1"], "fine")
    assert run.status is RunStatus.COMPLETED
    sleeping = await start(sleeper, 10)
    assert await resume(sleeping) is None  # not due: nothing written
    clock.advance(10)
    assert await sup.result(sleeping, timeout=10) == 11
    waiting = await start(approval, "r-2")
    assert await cancel_workflow(waiting, reason="r") is True
    assert await status(storage, waiting) is RunStatus.CANCELLED


async def test_one_supervisor_per_storage_and_only_inside_async_with(
    sup: Supervisor, storage: StorageBackend
) -> None:
    with pytest.raises(ConfigurationError, match="already hosts"):
        async with Supervisor(storage=storage):
            pass
    idle = Supervisor(storage=InMemoryStorageBackend())
    with pytest.raises(ConfigurationError, match="async with"):
        await idle.start(sleeper, 1)
    with pytest.raises(ConfigurationError, match="max_active=0"):
        Supervisor(storage=storage, max_active=0)
    with pytest.raises(ConfigurationError, match="poll_interval"):
        Supervisor(storage=storage, poll_interval=-1)


# -- timers ------------------------------------------------------------------------------


async def test_a_thousand_sleeping_runs_wake_within_one_tick_of_their_due_time(
    clock: ManualClock,
) -> None:
    storage = InMemoryStorageBackend()
    async with Supervisor(storage=storage, clock=clock) as sup:
        run_ids = [await sup.start(sleeper, 1 + i % 20) for i in range(1000)]
        await until(lambda: _all(storage, run_ids, RunStatus.SUSPENDED), "all sleep", 60)
        start_at = clock.now()
        for tick in range(1, 21):
            clock.advance(1)
            due = [r for i, r in enumerate(run_ids) if 1 + i % 20 <= tick]
            await until(lambda d=due: _all(storage, d, RunStatus.COMPLETED), f"tick {tick}", 30)
    for run_id in run_ids:
        events = await storage.read(run_id)
        started = next(e for e in events if isinstance(e, SleepStarted))
        completed = next(e for e in events if isinstance(e, SleepCompleted))
        lag = completed.timestamp - started.resume_at
        assert timedelta(0) <= lag < timedelta(seconds=1), (run_id, lag)
    assert clock.now() == start_at + timedelta(seconds=20)


async def test_resume_racing_the_timer_wakes_the_run_once(
    sup: Supervisor, storage: StorageBackend, clock: ManualClock
) -> None:
    configure(storage=storage)
    run_id = await sup.start(sleeper, 3)
    await until(lambda: _suspended(storage, run_id), "the run sleeps")
    clock.advance(3)  # the timer service wakes it...
    await resume(run_id)  # ...and so does this, at the same moment
    assert await sup.result(run_id, timeout=10) == 4
    kinds = await types(storage, run_id)
    assert kinds.count("sleep_completed") == 1 and kinds.count("workflow_resumed") == 1
    assert ran == ["add 3 1"]


async def _suspended(storage: StorageBackend, run_id: str) -> bool:
    run = await storage.get_run(run_id)
    return run is not None and run.status is RunStatus.SUSPENDED


async def _all(storage: StorageBackend, run_ids: list[str], wanted: RunStatus) -> bool:
    for run_id in run_ids:
        run = await storage.get_run(run_id)
        if run is None or run.status is not wanted:
            return False
    return True


def test_supervisor_is_exported() -> None:
    assert pyworkflow.actors.Supervisor is Supervisor
    assert Supervisor.__module__ == "pyworkflow.actors"


# -- infrastructure failures ---------------------------------------------------------------


@workflow(durable=True, name="sv_five")
async def five() -> int:
    total = 0
    for i in range(5):
        try:
            total += await add(i, 0)
        except Exception as exc:  # the workflow must never see a storage error
            ran.append(f"caught {exc!r}")
            raise
    return total


@pytest.mark.parametrize("when", ["before", "after"])
async def test_transient_failures_at_every_append_are_retried_unseen(
    tmp_path: Path, clock: ManualClock, when: str
) -> None:
    storage = FaultyStorage(FileStorageBackend(tmp_path / "data", durability="none"), delay=1)
    storage.fail_appends(*range(2, 40, 2), when=when)  # every other append, from the 2nd
    async with Supervisor(storage=storage, clock=clock) as sup:
        run_id = await sup.start(five)
        assert await sup.result(run_id, timeout=20) == 10
    assert ran == [f"add {i} 0" for i in range(5)]  # each step once, nothing caught
    kinds = [e.type.value for e in await storage.read(run_id)]
    assert kinds.count("step_completed") == 5 and kinds[-1] == "workflow_completed"


async def test_a_permanent_failure_surfaces_to_the_waiter_and_the_actor_retries_later(
    tmp_path: Path, clock: ManualClock
) -> None:
    storage = FaultyStorage(FileStorageBackend(tmp_path / "data", durability="none"))
    storage.fail_when(has("sleep_started"), error=pyworkflow.StorageError)
    async with Supervisor(storage=storage, clock=clock) as sup:
        run_id = await sup.start(sleeper, 1)
        with pytest.raises(pyworkflow.StorageError, match="injected"):
            await sup.result(run_id, timeout=10)
        assert ran == ["add 1 1"]  # its outcome rode with the sleep's start: not written
        assert await status(storage, run_id) is RunStatus.RUNNING  # recoverable, not failed
        clock.advance(1)  # the actor's restart with backoff comes due...
        await until(lambda: _suspended(storage, run_id), "restarted, it goes on", 10)
        clock.advance(1)
        assert await sup.result(run_id, timeout=10) == 2
    assert ran == ["add 1 1", "add 1 1"]  # at least once: the lost outcome ran it again


async def test_a_start_whose_first_append_fails_for_good_is_not_started(
    tmp_path: Path, clock: ManualClock
) -> None:
    """The actor writes a run's start with its first events (one append): if that append
    fails for good, ``start()`` raises the storage error and nothing was recorded."""
    storage = FaultyStorage(FileStorageBackend(tmp_path / "data", durability="none"))
    storage.fail_when(has("workflow_started"), error=pyworkflow.StorageError)
    async with Supervisor(storage=storage, clock=clock) as sup:
        with pytest.raises(pyworkflow.StorageError, match=r"workflow_started, step_started"):
            await sup.start(sleeper, 1)
        assert (await storage.list_runs()).runs == []
        assert ran == []  # the step started only in memory: nothing of it was written
        run_id = await sup.start(sleeper, 1)  # the fault is spent: a new start goes through
        clock.advance(1)
        assert await sup.result(run_id, timeout=10) == 2


@workflow(durable=True, name="sv_sequence")
async def sequence(n: int) -> int:
    total = 0
    for i in range(n):
        total += await add(i, 1)
    return total


async def test_the_sequential_path_writes_once_per_step(tmp_path: Path, clock: ManualClock) -> None:
    """A step's outcome rides with the next step's start, and the run's start with the
    first step's: n steps, n + 1 appends (one per step, and the outcome of the last with
    the run's end)."""
    storage = FaultyStorage(FileStorageBackend(tmp_path / "data", durability="none"))
    async with Supervisor(storage=storage, clock=clock) as sup:
        run_id = await sup.start(sequence, 20)
        assert await sup.result(run_id, timeout=20) == sum(range(1, 21))
    assert storage.appends == 20 + 1
    assert len(await storage.read(run_id)) == 1 + 20 * 2 + 1


async def test_leaving_lets_running_steps_finish_and_starts_no_new_one(
    storage: StorageBackend, clock: ManualClock
) -> None:
    async with Supervisor(storage=storage, clock=clock, grace_period=10) as sup:
        run_id = await sup.start(two_steps, "d-1")
        await until(lambda: "blocked d-1" in ran, "the first step runs")
        gates["d-1"].set()  # it finishes during the grace period
    kinds = await types(storage, run_id)
    assert kinds[-1] == "step_completed"  # recorded, and no second step_started
    assert kinds.count("step_started") == 1
    assert await status(storage, run_id) is RunStatus.RUNNING  # for the next host
    async with Supervisor(storage=storage, clock=clock) as sup:
        assert await sup.result(run_id, timeout=10) == "d-1"
    assert ran == ["blocked d-1", "add 1 2"]  # nothing ran twice


async def test_a_due_run_without_code_here_is_left_alone_after_one_warning(
    tmp_path: Path, clock: ManualClock, capsys: pytest.CaptureFixture[str]
) -> None:
    storage = FileStorageBackend(tmp_path / "data", durability="none")
    configure(log_level="warning")
    run_id = await start(approval, "u-1", storage=storage)
    await resume_hook(tokens["u-1"], "later", storage=storage)  # completes: use a new one
    run_id = await start(approval, "u-2", storage=storage)
    known = registry._workflows  # as in a process without this workflow's code
    saved = known.pop("sv_approval")
    try:
        await resume_hook(tokens["u-2"], "ok", storage=storage)  # recorded: due, no code
        async with Supervisor(storage=storage, clock=clock, poll_interval=1):
            for _ in range(5):
                clock.advance(1)
                await anyio.sleep(0.02)
    finally:
        known["sv_approval"] = saved
    assert capsys.readouterr().err.count("run_not_hosted") == 1
    assert await status(storage, run_id) is RunStatus.SUSPENDED


@step(name="sv_ghost")
async def ghost() -> Ghost:  # type: ignore[name-defined]  # noqa: F821
    raise AssertionError("never runs: its annotation can't be resolved")


@workflow(durable=True, name="sv_haunted")
async def haunted() -> object:
    return await ghost()


async def test_a_code_error_at_the_first_step_leaves_the_run_started(
    storage: StorageBackend, clock: ManualClock
) -> None:
    """The actor writes a run's start with its first events; a code error (here a step's
    annotation that can't be resolved) stops the execution before any: the start alone is
    written, so the run is there to resume once the code is fixed, as inline. (A code error
    crashes the actor: the supervisor's exit raises it too.)"""
    started: list[str] = []

    async def host() -> None:
        async with Supervisor(storage=storage, clock=clock) as sup:
            run_id = await sup.start(haunted)
            started.append(run_id)
            assert await types(storage, run_id) == ["workflow_started"]
            with pytest.raises(ConfigurationError, match=r"step 'sv_ghost'.*'Ghost'"):
                await sup.result(run_id, timeout=10)

    with pytest.raises(ConfigurationError, match=r"step 'sv_ghost'.*'Ghost'"):
        await host()
    assert await status(storage, started[0]) is RunStatus.RUNNING  # not failed: fix, resume


before_first_step = {"reached": anyio.Event(), "release": anyio.Event()}


@workflow(durable=True, name="sv_gated")
async def gated(label: str) -> int:
    before_first_step["reached"].set()
    await before_first_step["release"].wait()  # not durable: nothing is written yet
    return await add(1, 2)


async def test_a_key_whose_run_another_process_is_starting_returns_that_run(
    tmp_path: Path, clock: ManualClock
) -> None:
    """Two supervisors on one folder (two processes, as far as the storage can tell). The
    first claims a key and executes its run, whose start is written with its first step's;
    a start with that key on the second, meanwhile, finds no start in the log and the run
    locked: it returns the run (which the first executes), not an internal error."""
    before_first_step["reached"], before_first_step["release"] = anyio.Event(), anyio.Event()
    first_store = FileStorageBackend(tmp_path / "data", durability="none")
    second_store = FileStorageBackend(tmp_path / "data", durability="none")
    ids: list[str] = []
    first_returned = anyio.Event()
    async with (
        Supervisor(storage=first_store, clock=clock) as one,
        Supervisor(storage=second_store, clock=clock) as two,
        anyio.create_task_group() as tg,
    ):

        async def first_start() -> None:
            ids.append(await one.start(gated, "x", idempotency_key="k-gated"))
            first_returned.set()

        tg.start_soon(first_start)
        with anyio.fail_after(10):
            await before_first_step["reached"].wait()
        second = await two.start(gated, "x", idempotency_key="k-gated")
        before_first_step["release"].set()
        with anyio.fail_after(10):
            await first_returned.wait()
        assert await one.result(ids[0], timeout=10) == 3
    assert second == ids[0]
    assert ran == ["add 1 2"]
    assert len((await first_store.list_runs()).runs) == 1
