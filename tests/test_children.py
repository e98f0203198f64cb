"""Child workflows: ``start_child_workflow`` waits for a child or hands back a handle; the
parent's log records the child's start and outcome, replay serves them, the child's record
names its parent, a parent's end cancels its unfinished children (TERMINATE).

Memory and file storage, asyncio and trio, virtual time. The SIGKILL crash test is in
``tests/test_children_crash.py``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import anyio
import pytest

from pyworkflow import (
    CancellationError,
    ChildWorkflowCancelledError,
    ChildWorkflowFailedError,
    ChildWorkflowHandle,
    ConfigurationError,
    EventType,
    MaxNestingDepthError,
    RetryableError,
    RunStatus,
    cancel_workflow,
    continue_as_new,
    get_workflow_events,
    get_workflow_run,
    hook,
    resume,
    resume_hook,
    sleep,
    start,
    start_child_workflow,
    step,
    workflow,
)
from pyworkflow._core._events import WorkflowStarted
from pyworkflow._execution._children import child_id
from pyworkflow.actors import Supervisor
from pyworkflow.storage import StorageBackend
from pyworkflow.testing import ManualClock

calls: Counter[str] = Counter()
tokens: list[str] = []


@pytest.fixture(autouse=True)
def _counters() -> None:
    calls.clear()
    tokens.clear()


@step(name="kids.double")
async def double(x: int) -> int:
    calls[f"double {x}"] += 1
    return 2 * x


@workflow(name="kids.child", durable=True)
async def child(x: int, nap: float = 0) -> int:
    if nap:
        await sleep(nap)
    if x < 0:
        raise ValueError(f"negative: {x}")
    return await double(x)


@workflow(name="kids.parent", durable=True)
async def parent(x: int, nap: float = 0) -> int:
    calls["parent body"] += 1
    got = await start_child_workflow(child, x, nap=nap)
    return int(got) + 1


@workflow(name="kids.catcher", durable=True)
async def catcher(x: int) -> str:
    try:
        await start_child_workflow(child, x)
    except ChildWorkflowFailedError as exc:
        return f"caught {exc.error} from {exc.child_run_id}"
    return "no error"


@workflow(name="kids.hooked", durable=True)
async def hooked() -> str:
    payload = await hook("approve", on_created=tokens.append)
    return f"approved by {payload['by']}"


@workflow(name="kids.waits_for_hook", durable=True)
async def waits_for_hook() -> str:
    return str(await start_child_workflow(hooked))


@workflow(name="kids.fanout", durable=True)
async def fanout(n: int) -> list[Any]:
    handles = [await start_child_workflow(child, i, wait_for_completion=False) for i in range(n)]
    assert all(isinstance(h, ChildWorkflowHandle) for h in handles)
    return [await h.result() for h in handles]


@workflow(name="kids.abandons", durable=True)
async def abandons(fail: bool) -> str:
    await start_child_workflow(child, 1, nap=3600, wait_for_completion=False)
    if fail:
        raise RuntimeError("parent gives up")
    return "left it running"


@workflow(name="kids.canceller", durable=True)
async def canceller() -> str:
    handle = await start_child_workflow(child, 1, nap=3600, wait_for_completion=False)
    status = await handle.get_status()
    await handle.cancel("not needed")
    try:
        await handle.result()
    except ChildWorkflowCancelledError as exc:
        return f"{status} then cancelled: {exc.reason}"
    return "finished"


@workflow(name="kids.impatient", durable=True)
async def impatient() -> str:
    handle = await start_child_workflow(child, 4, nap=600, wait_for_completion=False)
    try:
        return str(await handle.result(timeout=60))
    except TimeoutError:
        pass
    return f"timed out, then {await handle.result()}"


@workflow(name="kids.nested", durable=True)
async def nested(depth: int) -> int:
    if depth == 0:
        return 0
    return 1 + int(await start_child_workflow(nested, depth - 1))


@workflow(name="kids.continuing", durable=True)
async def continuing() -> None:
    await continue_as_new()


@workflow(name="kids.parent_of_continuing", durable=True)
async def parent_of_continuing() -> str:
    try:
        await start_child_workflow(continuing)
    except ChildWorkflowFailedError as exc:
        return exc.error_type
    return "no error"


@step(name="kids.in_step", max_retries=2, retry_delay=10)
async def starts_in_a_step(x: int) -> int:
    calls["step attempt"] += 1
    got = await start_child_workflow(child, x, nap=5)
    return int(got)


@workflow(name="kids.step_parent", durable=True)
async def step_parent(x: int) -> int:
    return await starts_in_a_step(x) + 1


@pytest.fixture
def storage(local_storage: StorageBackend) -> StorageBackend:
    return local_storage


def types(events: list[Any]) -> list[str]:
    return [e.type.value for e in events]


async def test_a_parent_waits_for_its_child_and_gets_its_result(storage: StorageBackend) -> None:
    run_id = await start(parent, 5)
    run = await get_workflow_run(run_id)
    assert run is not None and run.status is RunStatus.COMPLETED and run.result == 11
    events = await get_workflow_events(run_id)
    assert types(events) == [
        "workflow_started",
        "child_workflow_started",
        "child_workflow_completed",
        "workflow_completed",
    ]
    cid = events[1].data["child_run_id"]
    assert cid == child_id(f"{run_id}:1", run_id, storage)  # derived, not random
    assert events[2].data == {"checkpoint": 1, "child_run_id": cid, "result": 10}
    kid = await get_workflow_run(cid)
    assert kid is not None and kid.parent_run_id == run_id and kid.nesting_depth == 1
    assert kid.status is RunStatus.COMPLETED and run.parent_run_id is None
    children = await storage.get_children(run_id)
    assert [(c.run_id, c.workflow_name, c.status, c.nesting_depth) for c in children] == [
        (cid, "kids.child", RunStatus.COMPLETED, 1)
    ]
    assert await storage.get_children(cid) == []
    assert await storage.get_children("run_0000000000000000") == []


async def test_a_sleeping_child_suspends_its_parent_and_its_end_wakes_it(
    storage: StorageBackend, clock: ManualClock
) -> None:
    run_id = await start(parent, 3, nap=60)
    run = await get_workflow_run(run_id)
    assert run is not None and run.status is RunStatus.SUSPENDED
    assert run.suspended_reason == "child_workflow"
    (kid,) = await storage.get_children(run_id)
    assert kid.status is RunStatus.SUSPENDED
    assert await resume(run_id) is None  # the child's timer is not due: both keep resting
    clock.advance(60)
    assert await resume(run_id) == 7  # resumes its due child first, whose end wakes it
    assert calls == {"double 3": 1, "parent body": 2}
    started = [e for e in await storage.read(kid.run_id) if isinstance(e, WorkflowStarted)]
    assert len(started) == 1


async def test_resuming_the_child_hosts_the_parent_too(
    storage: StorageBackend, clock: ManualClock
) -> None:
    run_id = await start(parent, 3, nap=60)
    (kid,) = await storage.get_children(run_id)
    clock.advance(60)
    assert await resume(kid.run_id) == 6  # the child's result
    run = await get_workflow_run(run_id)
    assert run is not None and run.status is RunStatus.COMPLETED and run.result == 7


async def test_a_child_waiting_for_a_hook(storage: StorageBackend) -> None:
    run_id = await start(waits_for_hook)
    assert (await get_workflow_run(run_id)).status is RunStatus.SUSPENDED  # type: ignore[union-attr]
    await resume_hook(tokens[0], {"by": "dana"})
    run = await get_workflow_run(run_id)
    assert run is not None and run.status is RunStatus.COMPLETED
    assert run.result == "approved by dana"


async def test_a_failed_child_raises_in_the_parent_on_every_replay(
    storage: StorageBackend,
) -> None:
    run_id = await start(catcher, -2)
    run = await get_workflow_run(run_id)
    assert run is not None and run.status is RunStatus.COMPLETED
    (kid,) = await storage.get_children(run_id)
    assert run.result == f"caught ValueError: negative: -2 from {kid.run_id}"
    assert kid.status is RunStatus.FAILED and kid.error == "ValueError: negative: -2"
    events = await get_workflow_events(run_id)
    failed = next(e for e in events if e.type is EventType.CHILD_WORKFLOW_FAILED)
    assert failed.data == {
        "checkpoint": 1,
        "child_run_id": kid.run_id,
        "error_type": "ValueError",
        "error_message": "negative: -2",
    }


async def test_replay_serves_the_outcome_and_never_starts_the_child_again(
    storage: StorageBackend, clock: ManualClock
) -> None:
    run_id = await start(parent, 2, nap=30)
    clock.advance(30)
    await resume(run_id)
    before = await get_workflow_events(run_id)
    assert await resume(run_id) == 5  # finished: served from the log, nothing runs
    assert await get_workflow_events(run_id) == before
    assert calls["double 2"] == 1
    assert len(await storage.get_children(run_id)) == 1


async def test_a_crash_between_the_childs_start_and_its_record_starts_it_once(
    storage: StorageBackend,
) -> None:
    """A parent that died after its child's start was written, before it recorded it:
    recovery finds the child by its derived id and records it; one child, run once."""
    run_id = "run_00000000000000aa"
    parent_start = WorkflowStarted(
        run_id=run_id, sequence=1, timestamp=_now(), workflow_name="kids.parent", args=_raw([4])
    )
    await storage.append(run_id, [parent_start], expected_sequence=0)
    cid = child_id(f"{run_id}:1", run_id, storage)
    orphan = WorkflowStarted(
        run_id=cid,
        sequence=1,
        timestamp=_now(),
        workflow_name="kids.child",
        args=_raw([4]),
        parent_run_id=run_id,
        nesting_depth=1,
    )
    await storage.append(cid, [orphan], expected_sequence=0)
    assert await resume(run_id) == 9
    assert calls["double 4"] == 1
    assert [c.run_id for c in await storage.get_children(run_id)] == [cid]
    assert types(await storage.read(cid))[0] == "workflow_started"
    assert sum(isinstance(e, WorkflowStarted) for e in await storage.read(cid)) == 1


async def test_handles_fire_and_forget_then_collect(storage: StorageBackend) -> None:
    run_id = await start(fanout, 3)
    run = await get_workflow_run(run_id)
    assert run is not None and run.status is RunStatus.COMPLETED and run.result == [0, 2, 4]
    children = await storage.get_children(run_id)
    assert [c.nesting_depth for c in children] == [1, 1, 1]
    started = [e for e in await get_workflow_events(run_id) if e.type.value.startswith("child")]
    assert [e.data.get("wait_for_completion") for e in started[:1]] == [False]


@pytest.mark.parametrize("fail", [False, True])
async def test_terminate_cancels_unfinished_children_when_the_parent_ends(
    storage: StorageBackend, fail: bool
) -> None:
    run_id = await start(abandons, fail)
    run = await get_workflow_run(run_id)
    assert run is not None
    assert run.status is (RunStatus.FAILED if fail else RunStatus.COMPLETED)
    (kid,) = await storage.get_children(run_id)
    assert kid.status is RunStatus.CANCELLED  # recorded cancelled, not failed
    assert kid.error_type is None
    assert kid.cancellation_reason == f"parent run {run_id} ended: parent-close policy TERMINATE"


async def test_a_cancelled_parent_cancels_the_child_it_waits_for(
    storage: StorageBackend,
) -> None:
    run_id = await start(parent, 1, nap=3600)
    assert await cancel_workflow(run_id, reason="stop")
    run = await get_workflow_run(run_id)
    assert run is not None and run.status is RunStatus.CANCELLED
    (kid,) = await storage.get_children(run_id)
    assert kid.status is RunStatus.CANCELLED


async def test_a_handle_cancels_its_child_and_reads_its_status(storage: StorageBackend) -> None:
    run_id = await start(canceller)
    run = await get_workflow_run(run_id)
    assert run is not None and run.result == "suspended then cancelled: not needed"
    (kid,) = await storage.get_children(run_id)
    assert kid.status is RunStatus.CANCELLED
    events = await get_workflow_events(run_id)
    assert "child_workflow_cancelled" in types(events)


async def test_a_result_timeout_is_a_durable_timer(
    storage: StorageBackend, clock: ManualClock
) -> None:
    run_id = await start(impatient)
    clock.advance(60)
    assert await resume(run_id) is None  # timed out; waits again, for the child
    clock.advance(540)
    assert await resume(run_id) == "timed out, then 8"
    assert await resume(run_id) == "timed out, then 8"  # the same on replay


async def test_nesting_depth_three_is_the_limit(storage: StorageBackend) -> None:
    deep = await start(nested, 3)
    run = await get_workflow_run(deep)
    assert run is not None and run.result == 3
    too_deep = await start(nested, 4)
    run = await get_workflow_run(too_deep)
    assert run is not None and run.status is RunStatus.FAILED
    # The depth-3 run refused to start a fourth level; its parents failed in turn.
    assert run.error_type == "pyworkflow.ChildWorkflowFailedError"
    assert "MaxNestingDepthError" in (run.error_message or "")
    assert "nesting depth 3" in (run.error_message or "")


async def test_a_child_cant_continue_as_new(storage: StorageBackend) -> None:
    run_id = await start(parent_of_continuing)
    run = await get_workflow_run(run_id)
    assert run is not None and run.result == "pyworkflow.ConfigurationError"


async def test_a_step_starts_a_child_once_across_its_retries(
    storage: StorageBackend, clock: ManualClock
) -> None:
    run_id = await start(step_parent, 6)
    run = await get_workflow_run(run_id)
    assert run is not None and run.status is RunStatus.SUSPENDED  # the step's retry delay
    assert calls["step attempt"] == 1
    clock.advance(10)
    assert await resume(run_id) == 13  # the retry finds the same child, now due
    assert calls == {"step attempt": 2, "double 6": 1}
    await resume(run_id)  # replay: the step's recorded result, no third attempt
    assert calls["step attempt"] == 2
    assert await storage.get_children(run_id) == []  # not a checkpoint of the run
    kids = [r for r in await _all_runs(storage) if r.parent_run_id == run_id]
    assert len(kids) == 1 and kids[0].status is RunStatus.COMPLETED


@pytest.mark.parametrize(
    ("call", "expected"),
    [
        (lambda: start_child_workflow(double, 1), "got <pyworkflow.Step"),
        (lambda: start_child_workflow(print), "got <built-in function print>"),
        (lambda: start_child_workflow(child, 1), "outside any durable workflow"),
    ],
)
async def test_bad_calls_say_what_was_wrong(
    storage: StorageBackend, call: Any, expected: str
) -> None:
    with pytest.raises(ConfigurationError, match="start_child_workflow") as info:
        await call()
    assert expected in str(info.value)


@workflow(name="kids.transient", durable=False)
async def transient_parent() -> int:
    return int(await start_child_workflow(child, 1))


async def test_a_transient_parent_is_refused(storage: StorageBackend) -> None:
    with pytest.raises(ConfigurationError, match="in a transient workflow"):
        await start(transient_parent)


async def test_errors_are_exported_with_their_tree() -> None:
    assert issubclass(ChildWorkflowCancelledError, ChildWorkflowFailedError)
    assert ChildWorkflowFailedError.__module__ == "pyworkflow"
    assert MaxNestingDepthError.__module__ == "pyworkflow"
    assert not issubclass(RetryableError, ChildWorkflowFailedError)
    assert not issubclass(CancellationError, ChildWorkflowFailedError)


# -- under a supervisor ------------------------------------------------------------------------


@pytest.fixture
async def sup(storage: StorageBackend, clock: ManualClock) -> AsyncIterator[Supervisor]:
    async with Supervisor(storage=storage, clock=clock, poll_interval=3600) as supervisor:
        yield supervisor


async def test_a_supervisor_runs_children_in_their_actors_and_wakes_the_parent(
    sup: Supervisor, storage: StorageBackend, clock: ManualClock
) -> None:
    assert await sup.result(await sup.start(parent, 5), timeout=10) == 11
    run_id = await sup.start(parent, 2, nap=120)
    with anyio.fail_after(10):
        while len(await storage.get_children(run_id)) < 1:  # noqa: ASYNC110
            await anyio.sleep(0.002)
        (kid,) = await storage.get_children(run_id)
        while (await get_workflow_run(kid.run_id)).status is not RunStatus.SUSPENDED:  # type: ignore[union-attr]  # noqa: ASYNC110
            await anyio.sleep(0.002)
    clock.advance(120)  # the child's timer fires; its end wakes the parent's actor
    assert await sup.result(run_id, timeout=10) == 5
    assert calls["double 2"] == 1


async def test_a_supervisor_terminates_the_children_of_an_ended_parent(
    sup: Supervisor, storage: StorageBackend
) -> None:
    run_id = await sup.start(abandons, False)
    assert await sup.result(run_id, timeout=10) == "left it running"
    (kid,) = await storage.get_children(run_id)
    with pytest.raises(Exception, match="cancelled"):
        await sup.result(kid.run_id, timeout=10)
    assert (await get_workflow_run(kid.run_id)).status is RunStatus.CANCELLED  # type: ignore[union-attr]


# -- helpers -----------------------------------------------------------------------------------


def _now() -> Any:
    from pyworkflow._config import settings

    return settings().clock.now()


def _raw(value: Any) -> Any:
    import msgspec

    return msgspec.Raw(msgspec.json.encode(value))


async def _all_runs(storage: StorageBackend) -> list[Any]:
    return list(await storage.list_runs(limit=1000))
