"""Regression tests for the defects of issue 10 (one owner per run).

Each test forces its interleaving with ``FaultyStorage`` gates on top of the file backend (so
every append really yields) and asserts what the issue demands, through the public API only.
Each failed on the inline runtime of before (one executor per call, storage I/O inside
workflow code) and passes now that one owner writes each run's log.

Workflow code reads its cues from the module-level ``cue`` (events made by each test), and
step bodies log into ``trail``, so "ran exactly once" is counted where the body runs.
"""

from __future__ import annotations

import asyncio
import functools
import json
import os
import sys
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import anyio.lowlevel
import pytest

import pyworkflow
from pyworkflow import (
    CancellationError,
    HookExpiredError,
    RunLockedError,
    RunStatus,
    StorageError,
    WorkflowRun,
    cancel_workflow,
    configure,
    get_workflow_events,
    get_workflow_run,
    hook,
    list_runs,
    resume,
    resume_hook,
    shield,
    sleep,
    start,
    step,
    workflow,
)
from pyworkflow.storage import FileStorageBackend, InMemoryStorageBackend, StorageBackend
from pyworkflow.testing import ManualClock
from tests.faulty import DEFAULT_ERROR, FaultyStorage, Gate, When, has, step_started

FINISHED = {RunStatus.COMPLETED, RunStatus.FAILED, RunStatus.CANCELLED}

trail: list[str] = []
"""Step bodies append here when they run."""
seen: list[str] = []
"""What a workflow's ``except Exception:`` caught (infrastructure errors must never land here)."""


@dataclass
class Cues:
    """What the workflows below wait on; made afresh (inside the event loop) by each test."""

    hold: bool = False
    """The first execution waits for the test's cues; replays must not."""
    gate: Gate | None = None
    tokens: list[str] = field(default_factory=list)
    token_ready: anyio.Event | None = None
    fast_running: anyio.Event | None = None
    fast_returning: anyio.Event | None = None
    cleanup_running: anyio.Event | None = None
    finish_cleanup: anyio.Event | None = None
    cancel_recorded: anyio.Event | None = None
    other_done: anyio.Event | None = None


cue = Cues()


@pytest.fixture(autouse=True)
def _fresh_cues() -> None:
    global cue
    cue = Cues()
    trail.clear()
    seen.clear()


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    return tmp_path / "workflow_data"


@pytest.fixture
def faulty(folder: Path, clock: ManualClock) -> FaultyStorage:
    """The file backend, every append two checkpoints long, configured with virtual time."""
    storage = FaultyStorage(FileStorageBackend(folder), delay=2)
    configure(storage=storage, clock=clock)
    return storage


# -- helpers ------------------------------------------------------------------------------
async def until(done: Callable[[], bool], seconds: float = 10.0) -> bool:
    """Yield until ``done()`` (True) or ``seconds`` of real time passed (False).

    On the inline runtime every cue below arrives within a few scheduling rounds and file
    writes; the bound only matters for a runtime in which an interleaving cannot happen.
    """
    deadline = anyio.current_time() + seconds
    rounds = 0
    while not done():
        if anyio.current_time() >= deadline:
            return False
        rounds += 1
        await anyio.sleep(0 if rounds < 200 else 0.001)
    return True


@dataclass
class Call:
    """A call running in a task: its value or its exception, once ``finished``."""

    value: Any = None
    error: BaseException | None = None
    finished: bool = False

    async def run(self, fn: Callable[[], Awaitable[Any]]) -> None:
        try:
            self.value = await fn()
        except Exception as exc:
            self.error = exc
        finally:
            self.finished = True


async def types_of(run_id: str, storage: StorageBackend | None = None) -> list[str]:
    return [e.type.value for e in await get_workflow_events(run_id, storage=storage)]


async def steps_with(kind: str, run_id: str, storage: StorageBackend | None = None) -> list[str]:
    """The step names of the run's ``kind`` events (e.g. ``step_completed``), in log order."""
    events = await get_workflow_events(run_id, storage=storage)
    return [e.data["step_name"] for e in events if e.type.value == kind]


async def settle(run_id: str, storage: StorageBackend | None = None) -> WorkflowRun | None:
    """Resume the run until it is finished (a transient error reaching the caller is
    retried); its record."""
    for _ in range(5):
        run = await get_workflow_run(run_id, storage=storage)
        if run is None or run.status in FINISHED:
            return run
        try:
            await resume(run_id, storage=storage)
        except (StorageError, RunLockedError):
            continue
    return await get_workflow_run(run_id, storage=storage)


async def run_id_of(workflow_name: str) -> str:
    page = await list_runs(workflow_name=workflow_name)
    [run] = page.runs
    return run.run_id


# -- defect 1: a step started beside a suspending branch ----------------------------------
@step(name="owner_defects_charge")
async def charge(order: str) -> str:
    trail.append("charge")
    await anyio.lowlevel.checkpoint()  # a real step awaits I/O: a scheduling point
    trail.append("charged")
    return f"charged {order}"


async def announce_approval(token: str) -> None:
    """on_created: hand out the token, then let the charge branch get its ``step_started``
    append under way (held at the gate) before this branch suspends."""
    cue.tokens.append(token)
    if cue.hold:
        assert cue.token_ready is not None and cue.gate is not None
        cue.token_ready.set()
        await until(cue.gate.reached.is_set)
        cue.gate.release()  # the append goes on in the charge branch once this one suspended


@workflow(durable=True, name="owner_defects_approve_and_charge")
async def approve_and_charge(order: str, form: str) -> list[Any]:
    calls = [hook("approval", on_created=announce_approval), charge(order)]

    async def charge_branch() -> str:
        if cue.hold:
            assert cue.token_ready is not None
            await cue.token_ready.wait()
        return await calls[1]

    if form == "gather":
        return list(await asyncio.gather(calls[0], charge_branch()))
    results: dict[int, Any] = {}

    async def hook_branch() -> None:
        results[0] = await calls[0]

    async def other_branch() -> None:
        results[1] = await charge_branch()

    async with anyio.create_task_group() as tg:
        tg.start_soon(hook_branch)
        tg.start_soon(other_branch)
    return [results[0], results[1]]


@pytest.mark.parametrize("form", ["gather", "task_group"])
async def test_a_step_started_beside_a_suspending_hook_runs_once(
    faulty: FaultyStorage, form: str, anyio_backend: str
) -> None:
    if form == "gather" and anyio_backend != "asyncio":
        pytest.skip("asyncio.gather needs asyncio; the task group form covers trio")
    cue.hold = True
    cue.token_ready = anyio.Event()
    cue.gate = faulty.pause(step_started("owner_defects_charge"))
    run_id = await start(approve_and_charge, "o-1", form)
    cue.hold = False
    [token] = cue.tokens
    await resume_hook(token, {"approved": True})
    await until(lambda: len(trail) >= 2)  # a gather orphan may still be finishing its body
    run = await settle(run_id)

    log = await types_of(run_id)
    assert trail == ["charge", "charged"], f"charge's body ran {trail}; log: {log}"
    assert await steps_with("step_started", run_id) == ["owner_defects_charge"], log
    assert await steps_with("step_completed", run_id) == ["owner_defects_charge"], log
    assert run is not None and run.status is RunStatus.COMPLETED, log
    assert run.result == [{"approved": True}, "charged o-1"]


# -- the lost outcome: a step finishing while a sibling's append is in flight -------------
@step(name="owner_defects_fast")
async def fast() -> str:
    trail.append("fast")
    if cue.hold:
        assert cue.fast_running is not None and cue.fast_returning is not None
        assert cue.gate is not None
        cue.fast_running.set()
        await until(cue.gate.reached.is_set)  # slow's step_started append is in flight
        cue.fast_returning.set()
    return "fast"


@step(name="owner_defects_slow")
async def slow() -> str:
    trail.append("slow")
    return "slow"


@workflow(durable=True, name="owner_defects_fast_and_slow_then_sleep")
async def fast_and_slow_then_sleep() -> list[str]:
    calls = [fast(), slow()]
    results: dict[int, str] = {}

    async def fast_branch() -> None:
        results[0] = await calls[0]

    async def slow_branch() -> None:
        if cue.hold:  # start slow's step once fast's body runs
            assert cue.fast_running is not None
            await cue.fast_running.wait()
        results[1] = await calls[1]

    async with anyio.create_task_group() as tg:
        tg.start_soon(fast_branch)
        tg.start_soon(slow_branch)
    await sleep("1h")
    return [results[0], results[1]]


async def test_an_outcome_ready_during_a_siblings_append_is_recorded(
    faulty: FaultyStorage, clock: ManualClock
) -> None:
    cue.hold = True
    cue.fast_running, cue.fast_returning = anyio.Event(), anyio.Event()
    gate = cue.gate = faulty.pause(step_started("owner_defects_slow"))
    starting = Call()
    async with anyio.create_task_group() as tg:
        tg.start_soon(starting.run, functools.partial(start, fast_and_slow_then_sleep))
        await until(gate.reached.is_set)  # slow's step_started append is in flight...
        await until(cue.fast_returning.is_set)  # fast returned: its outcome is ready
        gate.release()
    cue.hold = False
    assert starting.error is None, starting.error
    run_id = starting.value
    log = await types_of(run_id)
    recorded = sorted(await steps_with("step_completed", run_id))
    assert recorded == ["owner_defects_fast", "owner_defects_slow"], f"log at suspension: {log}"

    clock.advance(3600)
    assert await resume(run_id) == ["fast", "slow"]
    assert sorted(trail) == ["fast", "slow"], f"bodies ran: {trail}"


# -- defect 2: hook payload vs hook timeout -------------------------------------------------
@workflow(durable=True, name="owner_defects_approval_with_timeout")
async def approval_with_timeout() -> str:
    try:
        payload = await hook("approval", timeout="1h", on_created=cue.tokens.append)
    except HookExpiredError:
        return "expired"
    except Exception as exc:  # a user's catch-all: engine and storage errors must not land here
        seen.append(f"{type(exc).__name__}: {exc}")
        return "caught"
    return f"approved by {payload['by']}"


async def test_a_hook_payload_racing_its_timeout_leaves_one_outcome(
    folder: Path, faulty: FaultyStorage, clock: ManualClock
) -> None:
    run_id = await start(approval_with_timeout)
    [token] = cue.tokens
    sender = FaultyStorage(FileStorageBackend(folder), delay=2)  # another process's view
    clock.advance(1800)
    payload_gate = sender.pause(has("hook_received"))
    expiry_gate = faulty.pause(has("hook_expired"))
    delivery, expiry = Call(), Call()
    async with anyio.create_task_group() as tg:
        # The payload is checked in time, and its append is held...
        tg.start_soon(
            delivery.run, functools.partial(resume_hook, token, {"by": "ann"}, storage=sender)
        )
        await until(lambda: payload_gate.reached.is_set() or delivery.finished)
        # ...while the timeout comes due and the executor records the expiry.
        clock.advance(3600)
        tg.start_soon(expiry.run, functools.partial(resume, run_id))
        await until(lambda: expiry_gate.reached.is_set() or expiry.finished)
        payload_gate.release()
        await until(lambda: delivery.finished)
        expiry_gate.release()
    assert seen == [], "the workflow's except Exception caught an engine error"

    later = FileStorageBackend(folder)  # a process that folds the whole log afresh
    log = await types_of(run_id, later)
    outcomes = [t for t in log if t in ("hook_received", "hook_expired")]
    assert len(outcomes) == 1, log
    try:
        run = await settle(run_id, later)
        resumed: BaseException | None = None
    except Exception as exc:
        run, resumed = None, exc
    assert resumed is None, f"resume() after the race raised {resumed!r}; log: {log}"
    assert run is not None and run.status is RunStatus.COMPLETED, log
    if outcomes == ["hook_received"]:
        assert run.result == "approved by ann"
        assert delivery.error is None, delivery.error
    else:
        assert run.result == "expired"
        assert isinstance(delivery.error, HookExpiredError), delivery.error
    assert expiry.error is None or isinstance(expiry.error, RunLockedError), expiry.error


# -- defect 3: a storage failure becomes the workflow's outcome ---------------------------
@step(name="owner_defects_ship")
async def ship(order: str) -> str:
    trail.append(f"ship {order}")
    return f"shipped {order}"


@step(name="owner_defects_pack")
async def pack(order: str) -> str:
    trail.append(f"pack {order}")
    return f"packed {order}"


@workflow(durable=True, name="owner_defects_ship_or_skip")
async def ship_or_skip(order: str) -> str:
    await pack(order)  # the run's first write carries its start: ship's start is a later one
    try:
        return await ship(order)
    except Exception as exc:
        seen.append(f"{type(exc).__name__}: {exc}")
        return "ship failed, skipped"


async def test_a_storage_failure_is_never_the_workflows_outcome(faulty: FaultyStorage) -> None:
    faulty.fail_when(step_started("owner_defects_ship"))
    run_id = await start(ship_or_skip, "o-3")
    run = await settle(run_id)
    assert seen == [], "the workflow's except Exception caught the storage failure"
    assert trail == ["pack o-3", "ship o-3"]
    assert run is not None and run.status is RunStatus.COMPLETED
    assert run.result == "shipped o-3"


async def test_a_failure_of_the_runs_first_write_goes_to_the_caller_of_start(
    faulty: FaultyStorage,
) -> None:
    """Inline, a run's start is written with its first step's start: when that write fails,
    start() raises the storage error (nothing started, as when the start was written alone),
    and the workflow never sees it."""
    faulty.fail_when(step_started("owner_defects_pack"))
    with pytest.raises(DEFAULT_ERROR, match=r"workflow_started, step_started"):
        await start(ship_or_skip, "o-4")
    assert seen == [] and trail == []
    assert (await faulty.list_runs()).runs == []
    run_id = await start(ship_or_skip, "o-4")  # the fault is spent
    run = await settle(run_id)
    assert run is not None and run.result == "shipped o-4" and seen == []


# -- defect 4: shield() is per run, not per task ------------------------------------------
@step(name="owner_defects_release_stock")
async def release_stock(order: str) -> str:
    assert cue.cleanup_running is not None and cue.finish_cleanup is not None
    trail.append("release_stock")
    cue.cleanup_running.set()
    await cue.finish_cleanup.wait()
    return f"released {order}"


@step(name="owner_defects_send_invoice")
async def send_invoice(order: str) -> str:
    trail.append("send_invoice")
    return f"invoiced {order}"


@workflow(durable=True, name="owner_defects_cleanup_beside_work")
async def cleanup_beside_work(order: str) -> str:
    calls = [release_stock(order), send_invoice(order)]

    async def cleanup() -> None:
        async with shield():
            await calls[0]

    async def other_work() -> None:
        assert cue.cancel_recorded is not None and cue.other_done is not None
        try:
            await cue.cancel_recorded.wait()
            await calls[1]  # unshielded, after the cancellation: must not start
        finally:
            cue.other_done.set()

    async with anyio.create_task_group() as tg:
        tg.start_soon(cleanup)
        tg.start_soon(other_work)
    return "done"


async def test_shield_covers_only_its_own_branch(faulty: FaultyStorage) -> None:
    cue.cleanup_running, cue.finish_cleanup = anyio.Event(), anyio.Event()
    cue.cancel_recorded, cue.other_done = anyio.Event(), anyio.Event()
    starting = Call()
    async with anyio.create_task_group() as tg:
        tg.start_soon(starting.run, functools.partial(start, cleanup_beside_work, "o-4"))
        assert await until(cue.cleanup_running.is_set)
        run_id = await run_id_of("owner_defects_cleanup_beside_work")
        assert await cancel_workflow(run_id, reason="customer left")
        cue.cancel_recorded.set()
        await until(cue.other_done.is_set)
        cue.finish_cleanup.set()
    run = await settle(run_id)
    log = await types_of(run_id)
    assert "send_invoice" not in trail, f"an unshielded step ran after the cancellation: {log}"
    assert await steps_with("step_started", run_id) == ["owner_defects_release_stock"], log
    assert await steps_with("step_completed", run_id) == ["owner_defects_release_stock"], log
    assert run is not None and run.status is RunStatus.CANCELLED, log


# -- resume_hook / cancel_workflow from a process that doesn't import the workflow ---------
@workflow(durable=True, name="owner_defects_wait_for_approval")
async def wait_for_approval(order: str) -> Any:
    return await hook("approval", on_created=cue.tokens.append)


@step(name="owner_defects_bill")
async def bill(order: str) -> str:
    trail.append("bill")
    return f"billed {order}"


@step(name="owner_defects_refund")
async def refund(order: str) -> str:
    trail.append("refund")
    return f"refunded {order}"


@workflow(durable=True, name="owner_defects_nap_then_bill")
async def nap_then_bill(order: str) -> str:
    try:
        await sleep("1h")
        return await bill(order)
    except CancellationError:
        async with shield():
            await refund(order)
        raise


# Run in a child process that opens the same folder and imports only pyworkflow: it never
# registers the workflows above (a webhook receiver, an admin script).
_REMOTE = """
import json, sys
import anyio
import pyworkflow
from pyworkflow.storage import FileStorageBackend

async def main():
    storage = FileStorageBackend(sys.argv[1])
    try:
        if sys.argv[2] == "resume_hook":
            run = await pyworkflow.resume_hook(sys.argv[3], {"approved": True}, storage=storage)
            returned = {"run_id": run.run_id, "status": run.status.value}
        else:
            returned = await pyworkflow.cancel_workflow(
                sys.argv[3], reason="customer left", storage=storage
            )
    except Exception as exc:
        return {"raised": f"{type(exc).__name__}: {exc}"}
    return {"returned": returned, "tests_imported": "tests" in sys.modules}

print(json.dumps(anyio.run(main)))
"""


_PYWORKFLOW_ROOT = str(Path(pyworkflow.__file__).resolve().parent.parent)


async def remote(folder: Path, *args: str) -> Any:
    """Run ``_REMOTE`` in a child process on the pyworkflow this process imported."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYWORKFLOW_")}
    env["PYTHONPATH"] = _PYWORKFLOW_ROOT
    proc = await anyio.run_process(
        [sys.executable, "-c", _REMOTE, str(folder), *args], cwd=folder, env=env, check=False
    )
    assert proc.returncode == 0, proc.stderr.decode()
    return json.loads(proc.stdout)


async def test_resume_hook_from_a_process_without_the_workflow(
    folder: Path, clock: ManualClock
) -> None:
    configure(storage=FileStorageBackend(folder), clock=clock)
    run_id = await start(wait_for_approval, "o-5")
    [token] = cue.tokens
    report = await remote(folder, "resume_hook", token)
    log = await types_of(run_id)
    assert log.count("hook_received") == 1, log  # the payload is recorded either way
    assert "raised" not in report, report
    assert report["tests_imported"] is False
    assert report["returned"]["run_id"] == run_id
    assert report["returned"]["status"] not in ("failed", "cancelled"), report
    run = await settle(run_id)  # here, where its code runs, the run goes on
    assert run is not None and run.status is RunStatus.COMPLETED
    assert run.result == {"approved": True}


async def test_cancel_workflow_from_a_process_without_the_workflow(
    folder: Path, clock: ManualClock
) -> None:
    configure(storage=FileStorageBackend(folder), clock=clock)
    run_id = await start(nap_then_bill, "o-6")
    report = await remote(folder, "cancel_workflow", run_id)
    log = await types_of(run_id)
    assert log.count("cancellation_requested") == 1, log
    assert report == {"returned": True, "tests_imported": False}
    run = await settle(run_id)  # here, where its code runs, the cleanup runs
    assert run is not None and run.status is RunStatus.CANCELLED
    assert trail == ["refund"]


# -- storage failures injected at every append of a 5-step run ----------------------------
@step(name="owner_defects_part")
async def part(i: int) -> int:
    trail.append(f"part {i}")
    await anyio.lowlevel.checkpoint()
    return i * 10


@workflow(durable=True, name="owner_defects_five_parts")
async def five_parts() -> list[int]:
    done = []
    for i in range(1, 6):
        try:
            done.append(await part(i))
        except Exception as exc:
            seen.append(f"part {i}: {type(exc).__name__}: {exc}")
            raise
    return done


async def drive_five_parts(
    storage: FaultyStorage, key: str
) -> tuple[str | None, list[tuple[str, Exception]]]:
    """Start (retrying a start whose failure reached the caller) and settle a run; its id
    and the errors that reached the caller."""
    to_caller: list[tuple[str, Exception]] = []
    run_id = None
    for _ in range(3):
        try:
            run_id = await start(five_parts, idempotency_key=key, storage=storage)
            break
        except Exception as exc:
            to_caller.append(("start", exc))
    if run_id is None:
        return None, to_caller
    for _ in range(5):
        run = await get_workflow_run(run_id, storage=storage)
        if run is not None and run.status in FINISHED:
            break
        try:
            await resume(run_id, storage=storage)
        except Exception as exc:
            to_caller.append(("resume", exc))
    return run_id, to_caller


async def check_five_parts(
    folder: Path, schedule: str, numbers: tuple[int, ...], when: When
) -> list[str]:
    """Run the 5-step run with appends ``numbers`` failing ``when``; what went wrong."""
    trail.clear()
    seen.clear()
    storage = FaultyStorage(FileStorageBackend(folder), delay=2)
    storage.fail_appends(*numbers, when=when)
    run_id, to_caller = await drive_five_parts(storage, key=schedule)
    storage.stop_failing()
    problems: list[str] = []
    if seen:
        problems.append(f"the workflow saw {seen}")
    if run_id is None:
        return [*problems, f"never started: {to_caller}"]
    run = await get_workflow_run(run_id, storage=storage)
    if run is None or run.status is not RunStatus.COMPLETED or run.result != [10, 20, 30, 40, 50]:
        status = None if run is None else (run.status.value, run.result, run.error)
        problems.append(f"run ended {status}")
    counts = Counter(trail)
    if counts != Counter(f"part {i}" for i in range(1, 6)):
        problems.append(f"step bodies ran {dict(counts)}")
    completed = Counter(await steps_with("step_completed", run_id, storage))
    if completed != Counter({"owner_defects_part": 5}):
        problems.append(f"step_completed events {dict(completed)}")
    foreign = [f"{call}: {exc!r}" for call, exc in to_caller if not isinstance(exc, DEFAULT_ERROR)]
    if foreign:
        problems.append(f"callers got {foreign}")
    if not problems:
        return []
    history = [(r.number, r.types, r.outcome) for r in storage.history if r.outcome != "written"]
    return [f"{schedule}: {'; '.join(problems)} (appends not written: {history})"]


@pytest.mark.parametrize("when", ["before", "after"])
async def test_a_storage_failure_at_any_append_of_a_5_step_run(
    tmp_path: Path, clock: ManualClock, when: When
) -> None:
    configure(clock=clock)
    clean = FaultyStorage(FileStorageBackend(tmp_path / "clean"))
    run_id, _ = await drive_five_parts(clean, key="clean")
    assert run_id is not None and trail.count("part 5") == 1
    appends = clean.appends

    # "no failure" shows that the checks themselves pass on a clean run.
    schedules: dict[str, tuple[int, ...]] = {"no failure": ()}
    schedules |= {f"append {n} fails {when} writing": (n,) for n in range(1, appends + 2)}
    schedules[f"every other append fails {when} writing"] = tuple(range(1, 4 * appends, 2))
    problems: list[str] = []
    for i, (name, numbers) in enumerate(schedules.items()):
        problems += await check_five_parts(tmp_path / f"run{i}", name, numbers, when)
    assert problems == [], "\n".join(problems)


# -- the harness itself ---------------------------------------------------------------------
@step(name="owner_defects_noop")
async def noop() -> str:
    return "ok"


@workflow(durable=True, name="owner_defects_one_step")
async def one_step() -> str:
    return await noop()


async def test_faulty_storage_fails_holds_and_yields_as_programmed(clock: ManualClock) -> None:
    inner = InMemoryStorageBackend()
    storage = FaultyStorage(inner, delay=3)
    configure(storage=storage, clock=clock)
    storage.fail_appends(1)  # the start's write (with the step's start): to the caller
    with pytest.raises(DEFAULT_ERROR, match=r"append #1 .*workflow_started.*before writing"):
        await start(one_step)
    assert (await inner.list_runs()).runs == []  # nothing written

    storage.fail_appends(2, when="after")
    with pytest.raises(DEFAULT_ERROR, match="after writing"):
        await start(one_step)
    [run] = (await inner.list_runs()).runs  # written all the same
    assert run.status is RunStatus.RUNNING

    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await anyio.lowlevel.checkpoint()

    gate = storage.pause(has("workflow_completed"))
    done = Call()
    async with anyio.create_task_group() as tg:
        tg.start_soon(ticker)
        tg.start_soon(done.run, functools.partial(start, one_step))
        assert await until(gate.reached.is_set)
        assert [e.type.value for e in gate.held][-1] == "workflow_completed"
        assert not done.finished and ticks > 0  # other tasks ran while the append was held
        gate.release()
        assert await until(lambda: done.finished)
        tg.cancel_scope.cancel()
    assert done.error is None
    completed = await get_workflow_run(done.value)
    assert completed is not None and completed.result == "ok"
    assert [r.outcome for r in storage.history] == [
        "failed before writing",
        "failed after writing",
        "written",  # the start with the step's start
        "written",  # the step's outcome with the run's end
    ]


@step(name="od_lead_slow")
async def lead_slow() -> str:
    trail.append("lead_slow")
    return "slow"


async def fail_soon() -> None:
    await anyio.lowlevel.checkpoint()
    trail.append("boom")
    raise ValueError("boom")


@workflow(durable=True, name="od_leader_cancelled")
async def leader_cancelled() -> None:
    async with anyio.create_task_group() as tg:
        tg.start_soon(lead_slow)  # its start is held at the gate: its task leads that commit
        tg.start_soon(fail_soon)  # ...and is cancelled by the task group when this fails


async def test_a_branch_cancelled_while_it_leads_a_commit_leaves_a_consistent_log(
    tmp_path: Path, clock: ManualClock
) -> None:
    """The task that leads a group commit may be cancelled by its own task group (a sibling
    failed): the commit is finished by the owner's writer, and the run ends as the
    workflow did (failed with the sibling's error), its log gap-free and valid."""
    # Appends are not shielded here: the cancellation reaches the leader in mid-commit.
    storage = FaultyStorage(
        FileStorageBackend(tmp_path / "data", durability="none"), delay=3, shield=False
    )
    await start(leader_cancelled, storage=storage)
    runs = (await list_runs(storage=storage)).runs
    run = runs[0]
    assert run.status is RunStatus.FAILED and "boom" in (run.error_message or "")
    events = await storage.read(run.run_id)
    assert [e.sequence for e in events] == list(range(1, len(events) + 1))
    assert trail.count("boom") == 1 and "lead_slow" not in trail  # cancelled before its body
    assert any(r.outcome != "written" for r in storage.history) or len(events) >= 3


class _HeldAppend(InMemoryStorageBackend):
    """Memory storage whose appends wait for ``release`` while ``held`` (they yield)."""

    def __init__(self) -> None:
        super().__init__()
        self.held = False
        self.entered, self.release = anyio.Event(), anyio.Event()

    async def append(self, run_id: str, events: Any, *, expected_sequence: int) -> None:
        if self.held:
            self.entered.set()
            await self.release.wait()
        await super().append(run_id, events, expected_sequence=expected_sequence)


async def test_a_refusal_left_by_a_cancelled_leader_does_not_reach_the_next_asker() -> None:
    """A leader whose own request was refused (its derive raised) and that is then cancelled
    during the commit's append leaves the refusal unread: the next asker must not get it."""
    from datetime import UTC, datetime

    from pyworkflow._core._events import StepStarted, WorkflowStarted
    from pyworkflow._core._replay import fold
    from pyworkflow._execution._clock import SystemClock
    from pyworkflow._execution._drafts import UNSTAMPED
    from pyworkflow._execution._owner import Backoff, RunOwner

    storage = _HeldAppend()
    first = WorkflowStarted(run_id="r", sequence=1, timestamp=datetime.now(UTC), workflow_name="w")
    await storage.append("r", [first], expected_sequence=0)
    owner = RunOwner(fold("r", [first]), storage, SystemClock(), None, Backoff())
    started = StepStarted(
        run_id="r", sequence=0, timestamp=UNSTAMPED, step_id="r.1", step_name="s",
        checkpoint=1, attempt=1,
    )  # fmt: skip

    def refused(state: Any) -> Any:
        raise CancellationError("refused")

    owner.submit(lambda state: (started,) if 1 not in state.checkpoints else ())
    storage.held = True
    with anyio.CancelScope() as scope:

        async def cancel_when_appending() -> None:
            await storage.entered.wait()
            scope.cancel()

        async with anyio.create_task_group() as tg:
            tg.start_soon(cancel_when_appending)
            await owner.ask(refused)  # refused, then cancelled in the commit's append
    assert scope.cancelled_caught
    storage.held = False
    await owner.ask(lambda state: ())  # must not raise the earlier refusal
    assert [e.type.value for e in await storage.read("r")] == ["workflow_started", "step_started"]
