"""continue_as_new: a run ends ``continued_as_new`` and a new run of the same workflow goes
on with new arguments; chains are linked both ways and listed by get_workflow_chain.

Memory and file storage, asyncio and trio, virtual time. The SIGKILL crash tests are in
``tests/test_continue_as_new_crash.py``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import anyio
import msgspec
import pytest

from pyworkflow import (
    CancellationError,
    ConfigurationError,
    RunNotFoundError,
    RunStatus,
    SerializationError,
    StorageError,
    cancel_workflow,
    configure,
    continue_as_new,
    get_workflow_chain,
    get_workflow_events,
    get_workflow_run,
    resume,
    sleep,
    start,
    step,
    workflow,
)
from pyworkflow._core._events import WorkflowContinuedAsNew, WorkflowStarted
from pyworkflow._execution._continuation import successor_id
from pyworkflow.actors import Supervisor
from pyworkflow.storage import InMemoryStorageBackend, StorageBackend
from pyworkflow.storage._kafka._codec import (
    EventRecord,
    decode_event_record,
    encode_event_record,
)
from pyworkflow.testing import ManualClock

from .faulty import FaultyStorage, has
from .storage.helpers import History, started

calls: Counter[str] = Counter()


@step(name="can.add")
async def add(a: int, b: int) -> int:
    calls[f"add {a} {b}"] += 1
    return a + b


@workflow(name="can.countdown", durable=True, tags=["batch"])
async def countdown(n: int, total: int = 0) -> int:
    """Adds n, n-1, ..., 1: one link per number."""
    total = await add(total, n)
    if n > 1:
        await continue_as_new(n - 1, total=total)
    return total


@workflow(name="can.napping", durable=True)
async def napping(n: int) -> int:
    await sleep("1h")
    if n > 0:
        await continue_as_new(n - 1)
    return await add(n, 100)


@workflow(name="can.swallowing", durable=True)
async def swallowing(n: int) -> str:
    if n:
        try:
            await continue_as_new(0)
        except Exception:  # a control-flow signal, not an error: never lands here
            return "swallowed"
    return "done"


@step(name="can.in_step")
async def continues_in_a_step() -> None:
    await continue_as_new(1)


@workflow(name="can.misuse", durable=True)
async def misuse(how: str) -> str:
    if how == "step":
        await continues_in_a_step()
    elif how == "args":
        await continue_as_new(1, 2, 3)  # too many arguments
    elif how == "value":
        await continue_as_new(object())
    return how


@workflow(name="can.cleanup", durable=True)
async def cleanup(n: int) -> str:
    try:
        await sleep("1h")
    except CancellationError:
        await continue_as_new(n + 1)  # a pending cancellation is raised instead
    return "slept"


@step(name="can.slow")
async def slow(gate: str) -> str:
    gates[f"{gate}.running"].set()
    await anyio.lowlevel.checkpoint()
    calls["slow"] += 1
    return "slow done"


gates: dict[str, anyio.Event] = {}


@workflow(name="can.branches", durable=True)
async def branches(n: int) -> str:
    if n == 0:
        return "end"
    gates["g.running"] = anyio.Event()

    async def other_branch() -> None:
        await slow("g")

    async with anyio.create_task_group() as tg:
        tg.start_soon(other_branch)
        await gates["g.running"].wait()  # the other branch's step is in its body
        await continue_as_new(0)
    return "unreachable"


@pytest.fixture
def storage(local_storage: StorageBackend) -> StorageBackend:
    calls.clear()
    return local_storage


async def test_a_chain_links_its_runs_both_ways(storage: StorageBackend) -> None:
    head = await start(countdown, 3, idempotency_key="batch-1")

    chain = await get_workflow_chain(head)
    assert [r.status for r in chain] == [
        RunStatus.CONTINUED_AS_NEW,
        RunStatus.CONTINUED_AS_NEW,
        RunStatus.COMPLETED,
    ]
    assert chain[0].run_id == head and chain[-1].result == 6
    assert [r.continued_from_run_id for r in chain] == [None, chain[0].run_id, chain[1].run_id]
    assert [r.continued_to_run_id for r in chain] == [chain[1].run_id, chain[2].run_id, None]
    assert [(r.args, r.kwargs) for r in chain] == [
        ([3], {}),
        ([2], {"total": 3}),
        ([1], {"total": 5}),
    ]
    assert {r.tags for r in chain} == {("batch",)}  # tags and key carry over
    assert {r.idempotency_key for r in chain} == {"batch-1"}
    for member in chain:  # the same chain from any member
        assert await get_workflow_chain(member.run_id) == chain
    assert chain[0].completed_at is not None and chain[0].result is None

    events = await get_workflow_events(head)
    assert [e.type.value for e in events] == [
        "workflow_started",
        "step_started",
        "step_completed",
        "workflow_continued_as_new",
    ]
    end = events[-1]
    assert isinstance(end, WorkflowContinuedAsNew)
    assert end.data == {"new_run_id": chain[1].run_id, "args": [2], "kwargs": {"total": 3}}
    first = (await get_workflow_events(chain[1].run_id))[0]
    assert isinstance(first, WorkflowStarted) and first.continued_from_run_id == head
    assert "continued_from_run_id" not in (await get_workflow_events(head))[0].data

    # The key still names the chain's head: a second start runs nothing.
    assert await start(countdown, 3, idempotency_key="batch-1") == head
    assert calls == {"add 0 3": 1, "add 3 2": 1, "add 5 1": 1}


async def test_a_run_that_never_continued_is_a_chain_of_one(storage: StorageBackend) -> None:
    run_id = await start(countdown, 1)
    assert [r.run_id for r in await get_workflow_chain(run_id)] == [run_id]
    with pytest.raises(RunNotFoundError, match="run_nope"):
        await get_workflow_chain("run_nope")


async def test_resume_follows_the_chain_across_suspensions(
    storage: StorageBackend, clock: ManualClock
) -> None:
    head = await start(napping, 2)
    assert (await get_workflow_run(head)).status is RunStatus.SUSPENDED  # type: ignore[union-attr]

    clock.advance(3600)
    assert await resume(head) is None  # the successor sleeps in turn
    chain = await get_workflow_chain(head)
    assert [r.status for r in chain] == [RunStatus.CONTINUED_AS_NEW, RunStatus.SUSPENDED]

    clock.advance(3600)
    await resume(chain[-1].run_id)
    clock.advance(3600)
    assert await resume(head) == 100  # from the head: on to the last run, which completes
    chain = await get_workflow_chain(head)
    assert [r.args for r in chain] == [[2], [1], [0]]
    assert chain[-1].status is RunStatus.COMPLETED and chain[-1].result == 100


async def test_except_exception_cannot_swallow_it(storage: StorageBackend) -> None:
    head = await start(swallowing, 1)
    chain = await get_workflow_chain(head)
    assert [r.status for r in chain] == [RunStatus.CONTINUED_AS_NEW, RunStatus.COMPLETED]
    assert chain[-1].result == "done"


@pytest.mark.parametrize(
    ("how", "error"),
    [
        ("step", "ConfigurationError: continue_as_new() was called inside a step"),
        ("args", "TypeError: "),
        ("value", "SerializationError: "),
    ],
)
async def test_misuse_fails_the_run_and_starts_nothing(
    storage: StorageBackend, how: str, error: str
) -> None:
    run_id = await start(misuse, how)
    run = await get_workflow_run(run_id)
    assert run is not None and run.status is RunStatus.FAILED
    assert run.error is not None and error in run.error, run.error
    assert await get_workflow_run(successor_id(run_id)) is None
    assert run.continued_to_run_id is None


async def test_steps_running_in_other_branches_finish_first(storage: StorageBackend) -> None:
    head = await start(branches, 1)
    chain = await get_workflow_chain(head)
    assert [r.status for r in chain] == [RunStatus.CONTINUED_AS_NEW, RunStatus.COMPLETED]
    types = [e.type.value for e in await get_workflow_events(head)]
    assert types[-3:] == ["step_started", "step_completed", "workflow_continued_as_new"]
    assert calls["slow"] == 1


async def test_outside_a_workflow_it_is_a_clear_error() -> None:
    with pytest.raises(ConfigurationError, match=r"outside any workflow: call it in the code"):
        await continue_as_new(1)
    assert issubclass(SerializationError, Exception)  # (the error misuse records, above)


async def test_a_pending_cancellation_is_raised_instead(storage: StorageBackend) -> None:
    run_id = await start(cleanup, 1)
    assert await cancel_workflow(run_id, reason="stop")
    run = await get_workflow_run(run_id)
    assert run is not None and run.status is RunStatus.CANCELLED
    assert await get_workflow_run(successor_id(run_id)) is None


async def half_made_link(storage: StorageBackend) -> str:
    """Start ``countdown(2)`` on ``storage`` failing for good at its head's end by
    continue_as_new, after its successor's start: as a crash there leaves it. Returns the
    head's id."""
    faulty = FaultyStorage(storage)
    configure(storage=faulty)
    faulty.fail_when(has("workflow_continued_as_new"), error=StorageError)
    with pytest.raises(StorageError):
        await start(countdown, 2)
    configure(storage=storage)
    return faulty.history[0].run_id


async def test_a_crash_between_the_successors_start_and_the_runs_end_is_repaired(
    storage: StorageBackend,
) -> None:
    head = await half_made_link(storage)
    successor = successor_id(head)
    assert (await get_workflow_run(head)).status is RunStatus.RUNNING  # type: ignore[union-attr]
    assert (await get_workflow_run(successor)).status is RunStatus.RUNNING  # type: ignore[union-attr]

    assert await resume(head) == 3  # recovered: ends the head, then hosts its successor
    chain = await get_workflow_chain(head)
    assert [r.run_id for r in chain] == [head, successor]
    assert [r.status for r in chain] == [RunStatus.CONTINUED_AS_NEW, RunStatus.COMPLETED]
    started = [e for e in await storage.read(successor) if isinstance(e, WorkflowStarted)]
    assert len(started) == 1  # started exactly once
    assert calls == {"add 0 2": 1, "add 2 1": 1}


class CountingStorage(FaultyStorage):
    """Counts the events every read returns."""

    events_read = 0

    async def read(self, run_id: str, *, after: int = 0) -> list[Any]:
        events = await super().read(run_id, after=after)
        self.events_read += len(events)
        return events


async def test_each_link_costs_the_same_however_long_the_chain(
    storage: StorageBackend,
) -> None:
    costs = []
    for links in (10, 20, 40):
        counting = CountingStorage(storage, delay=0)
        configure(storage=counting)
        head = await start(countdown, links)
        costs.append((counting.appends, counting.reads, counting.events_read))
        assert len(await get_workflow_chain(head, storage=storage)) == links
    (short, medium, long) = costs
    for i in range(3):  # appends, reads, events read: linear in the links, O(1) per link
        assert long[i] - medium[i] == 2 * (medium[i] - short[i]), costs


async def test_a_long_chain_runs_in_one_call() -> None:
    storage = InMemoryStorageBackend()
    configure(storage=storage)
    head = await start(countdown, 10_000)
    last = (await get_workflow_chain(head))[-1]
    assert last.result == 10_000 * 10_001 // 2 and last.args == [1]


# -- under a supervisor ----------------------------------------------------------------------


@pytest.fixture
async def sup(storage: StorageBackend, clock: ManualClock) -> AsyncIterator[Supervisor]:
    async with Supervisor(storage=storage, clock=clock) as supervisor:
        yield supervisor


async def test_a_supervisor_hosts_the_successors_and_result_follows_them(
    sup: Supervisor, storage: StorageBackend, clock: ManualClock
) -> None:
    head = await sup.start(countdown, 4)
    assert await sup.result(head, timeout=10) == 10
    chain = await get_workflow_chain(head)
    assert len(chain) == 4 and chain[-1].status is RunStatus.COMPLETED

    sleepy = await start(napping, 1)  # the module-level start, routed through it
    assert (await get_workflow_run(sleepy)).status is RunStatus.SUSPENDED  # type: ignore[union-attr]
    clock.advance(3600)  # its timer wakes it; it continues as a run that sleeps in turn

    async def second_sleeps() -> bool:
        chain = await get_workflow_chain(sleepy)
        return len(chain) == 2 and chain[1].status is RunStatus.SUSPENDED

    with anyio.fail_after(10):
        while not await second_sleeps():  # noqa: ASYNC110 (file I/O runs in threads)
            await anyio.sleep(0.002)
    clock.advance(3600)
    assert await sup.result(sleepy, timeout=10) == 100
    assert await sup.result(head, timeout=10) == 10  # from storage records too


async def test_a_supervisor_repairs_a_half_made_link(
    storage: StorageBackend, clock: ManualClock
) -> None:
    head = await half_made_link(storage)
    async with Supervisor(storage=storage, clock=clock) as supervisor:
        assert await supervisor.result(head, timeout=10) == 3  # found running: recovered
    chain = await get_workflow_chain(head, storage=storage)
    assert [r.status for r in chain] == [RunStatus.CONTINUED_AS_NEW, RunStatus.COMPLETED]
    started = [e for e in await storage.read(chain[1].run_id) if isinstance(e, WorkflowStarted)]
    assert len(started) == 1
    assert calls == {"add 0 2": 1, "add 2 1": 1}


# -- the wire --------------------------------------------------------------------------------


def test_the_new_events_travel_on_the_kafka_wire() -> None:
    h = History()
    events = [
        started(h),
        h.add(
            WorkflowContinuedAsNew,
            new_run_id="run_next",
            args=msgspec.Raw(b"[2]"),
            kwargs=msgspec.Raw(b'{"total":3}'),
        ),
    ]
    successor = msgspec.structs.replace(events[0], continued_from_run_id="run_prev")
    for event in [*events, successor]:
        value = encode_event_record(EventRecord("w", 1, 0, 1, event))
        assert decode_event_record(value, "t").event == event
