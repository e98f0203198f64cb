"""Workers and clients on a real broker: commands are records, partitions are placement."""

from __future__ import annotations

import secrets
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import anyio
import pytest

from pyworkflow import (
    ChildWorkflowFailedError,
    ConfigurationError,
    HookAlreadyReceivedError,
    RunStatus,
    WorkflowCancelledError,
    continue_as_new,
    get_workflow_chain,
    hook,
    sleep,
    start_child_workflow,
    step,
    workflow,
)
from pyworkflow._core._events import (
    WorkflowCancelled,
    WorkflowCompleted,
    WorkflowFailed,
    WorkflowStarted,
)
from pyworkflow._core._replay import fold
from pyworkflow._execution._children import child_id
from pyworkflow.actors import Client, Worker
from pyworkflow.actors._commands import StartCommand, decode_command, encode_command
from pyworkflow.storage import KafkaStorageBackend
from pyworkflow.testing import LocalKafka

from ..storage.helpers import raw
from .conftest import MakeBackend

ran: Counter[str] = Counter()


@pytest.fixture(autouse=True)
def _clean() -> None:
    ran.clear()


@step(name="kw_work")
async def work(name: str) -> str:
    ran[name] += 1
    return name.upper()


@workflow(durable=True, name="kw_flow")
async def flow(name: str) -> str:
    first = await work(name)
    await sleep(0.2)
    return first + "!"


@workflow(durable=True, name="kw_chain")
async def chain(n: int) -> int:
    await work(f"chain-{n}")
    if n < 3:
        await continue_as_new(n + 1)
    return n


@workflow(durable=True, name="kw_kid")
async def kid(n: int) -> int:
    await work(f"kid-{n}")
    await sleep(0.2)  # rests: its parent rests too, and is woken by its end
    return n * 10


@workflow(durable=True, name="kw_family")
async def family(n: int) -> int:
    got = [await start_child_workflow(kid, i) for i in range(n)]
    return sum(got)


@workflow(durable=True, name="kw_approval")
async def approval(name: str) -> Any:
    return await hook("ok", timeout="1h")


async def _worker(
    make_backend: MakeBackend, stop: anyio.Event, ready: list[Worker], **options: Any
) -> None:
    storage = await make_backend()
    async with Worker(storage, session_timeout=6, grace_period=5, **options) as worker:
        ready.append(worker)
        with anyio.CancelScope() as scope:
            async with anyio.create_task_group() as tg:
                tg.start_soon(worker.serve)
                await stop.wait()
                scope.cancel()


@asynccontextmanager
async def _serving(make_backend: MakeBackend, count: int = 1) -> AsyncIterator[list[Worker]]:
    """``count`` workers serving on their own backends while the block runs (the list
    fills as they open)."""
    stop = anyio.Event()
    workers: list[Worker] = []
    async with anyio.create_task_group() as tg:
        for _ in range(count):
            tg.start_soon(_worker, make_backend, stop, workers)
        try:
            yield workers
        finally:
            stop.set()


async def test_two_workers_share_the_runs_a_client_starts(make_backend: MakeBackend) -> None:
    async with _serving(make_backend, 2) as workers:
        storage = await make_backend()
        async with Client(storage) as client:
            run_ids = [await client.start(flow, f"r{i}") for i in range(20)]
            results = [await client.result(r, timeout=60) for r in run_ids]
            assert results == [f"R{i}!" for i in range(20)]
            assert all(ran[f"r{i}"] == 1 for i in range(20))
            waiting = await client.start(approval, "a")
            token = await _token(storage, waiting)
            await client.resume_hook(token, {"fine": True})
            assert await client.result(waiting, timeout=30) == {"fine": True}
            with pytest.raises(HookAlreadyReceivedError):
                await client.resume_hook(token, {"fine": False})
            cancelled = await client.start(approval, "b")
            await _token(storage, cancelled)
            assert await client.cancel(cancelled, reason="no") is True
            with pytest.raises(WorkflowCancelledError):
                await client.result(cancelled, timeout=30)
            assert await client.cancel(cancelled) is False
        owned = [w.owned for w in workers]
        assert owned[0] | owned[1] == {0, 1} and not owned[0] & owned[1]


async def test_a_start_with_one_key_from_two_clients_starts_one_run(
    make_backend: MakeBackend,
) -> None:
    async with _serving(make_backend):
        one, two = await make_backend(), await make_backend()
        async with Client(one) as a, Client(two) as b:
            ids: list[str] = []

            async def go(client: Client, name: str) -> None:
                ids.append(await client.start(flow, name, idempotency_key="k-1"))

            async with anyio.create_task_group() as starts:
                starts.start_soon(go, a, "x")
                starts.start_soon(go, b, "y")
            assert ids[0] == ids[1]
            assert await a.result(ids[0], timeout=30) in ("X!", "Y!")
            assert sum(ran.values()) == 1


def test_the_command_format_is_plain_json() -> None:
    raw = (
        b'{"v": 1, "type": "start", "run_id": "run_0123456789abcdef", "workflow": "kw_flow",'
        b' "args": ["z"], "kwargs": {}, "idempotency_key": null}'
    )
    command = decode_command(raw)
    assert isinstance(command, StartCommand) and bytes(command.args) == b'["z"]'
    assert decode_command(encode_command(command)) == command
    with pytest.raises(Exception, match="run_id"):
        decode_command(b'{"v": 1, "type": "cancel", "run_id": "nope"}')
    with pytest.raises(Exception, match="not a pyworkflow command"):
        decode_command(b'{"type": "launch"}')


async def _token(storage: KafkaStorageBackend, run_id: str) -> str:
    with anyio.fail_after(30):
        while True:
            hooks = await storage.list_hooks(run_id)
            if hooks:
                return hooks[0].token
            await anyio.sleep(0.05)


_ = RunStatus


async def test_workers_ride_out_a_broker_restart_mid_run(
    make_backend: MakeBackend, kafka_broker: LocalKafka | None
) -> None:
    """The broker is killed while runs sleep between their steps and comes back ~3 s later:
    the workers and the client carry on, every run completes, each step once."""
    if kafka_broker is None:
        pytest.skip("killing needs the local broker (not an external or container one)")
    try:
        async with _serving(make_backend):
            storage = await make_backend(request_timeout=5)
            async with Client(storage) as client:
                run_ids = [await client.start(flow, f"b{i}") for i in range(10)]
                await anyio.sleep(0.1)  # the runs are in their first steps or sleeps
                await anyio.to_thread.run_sync(kafka_broker.kill)
                await anyio.sleep(3)
                await anyio.to_thread.run_sync(kafka_broker.start)
                results = [await client.result(r, timeout=120) for r in run_ids]
            assert results == [f"B{i}!" for i in range(10)]
            assert all(ran[f"b{i}"] <= 2 for i in range(10))  # at most the step in flight
    finally:
        if not kafka_broker.is_running():
            await anyio.to_thread.run_sync(kafka_broker.start)


async def test_a_start_that_meets_a_transient_error_comes_again(
    make_backend: MakeBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A start command that meets a transient error is not committed as done: the worker
    reads it again and the run starts (it was once lost as "refused"). The error is met
    where the worker's start begins: its claim of the start's idempotency key (injected
    into the worker's storage: the engine may be compiled, its methods can't be patched)."""
    from pyworkflow import TransientStorageError

    failures: list[str] = []
    async with _serving(make_backend) as workers:
        while not workers:  # noqa: ASYNC110 - the worker task appends itself when open
            await anyio.sleep(0.01)
        storage = workers[0]._engine.storage
        real = storage.claim_idempotency_key

        async def flaky(key: str, run_id: str) -> str:
            if not failures:
                failures.append(run_id)
                raise TransientStorageError("the broker is away (injected)")
            return await real(key, run_id)

        monkeypatch.setattr(storage, "claim_idempotency_key", flaky)
        async with Client(await make_backend()) as client:
            run_id = await client.start(flow, "flaky", idempotency_key="flaky-start")
            assert await client.result(run_id, timeout=60) == "FLAKY!"
        assert failures == [run_id] and ran["flaky"] == 1


async def test_a_start_whose_first_append_fails_transiently_is_retried_by_its_owner(
    make_backend: MakeBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A worker's actor writes the run's start with its first step's (one append); a
    transient failure of that append is retried by the run's owner, the step body runs
    once, and the start is written once."""
    from pyworkflow import TransientStorageError

    failed: list[list[str]] = []
    async with _serving(make_backend) as workers:
        while not workers:  # noqa: ASYNC110 - the worker task appends itself when open
            await anyio.sleep(0.01)
        storage = workers[0].storage
        real = storage.append

        async def flaky(run_id: str, events: Any, *, expected_sequence: int) -> None:
            if not failed and expected_sequence == 0:
                failed.append([e.type.value for e in events])
                raise TransientStorageError("the broker is away (injected)")
            await real(run_id, events, expected_sequence=expected_sequence)

        monkeypatch.setattr(storage, "append", flaky)
        async with Client(await make_backend()) as client:
            run_id = await client.start(flow, "opening")
            assert await client.result(run_id, timeout=60) == "OPENING!"
            events = [e.type.value for e in await client.storage.read(run_id)]
    assert failed == [["workflow_started", "step_started"]]
    assert events[:2] == ["workflow_started", "step_started"]
    assert events.count("workflow_started") == 1 and ran["opening"] == 1


async def test_two_workers_fire_a_schedule_once_per_due_time(make_backend: MakeBackend) -> None:
    """A schedule on Kafka is fired by the worker that owns its partition: with two workers,
    each due time starts exactly one run, and the runs complete."""
    from pyworkflow import ScheduleSpec, create_schedule, get_schedule

    async with _serving(make_backend, 2) as workers:
        storage = await make_backend()
        with anyio.fail_after(30):
            while len(workers) < 2 or not all(w.owned for w in workers):  # noqa: ASYNC110
                await anyio.sleep(0.05)
        schedule = await create_schedule(
            workflow_name="kw_flow", spec=ScheduleSpec(interval="1s"), args=("sched",),
            storage=storage,
        )  # fmt: skip
        with anyio.fail_after(30):
            while True:
                found = await get_schedule(schedule.schedule_id, storage=storage)
                if found is not None and found.successful_runs >= 2:
                    break
                await anyio.sleep(0.1)
        runs = [
            r for r in (await storage.list_runs(limit=100)).runs
            if r.schedule_id == schedule.schedule_id
        ]  # fmt: skip
    times = [r.scheduled_time for r in runs]
    assert len(times) == len(set(times)) >= 2  # one run per due time
    assert ran["sched"] >= 2


async def test_module_level_calls_on_a_prefix_with_workers_are_refused(
    make_backend: MakeBackend,
) -> None:
    """Local mode beside workers: a module-level start() would execute the run here while a
    worker owns its partition. Once the workers have fenced the partitions, the append is
    refused with an error that says to use Client, and nothing is stored or executed."""
    import pyworkflow
    from pyworkflow import RunLockedError

    async with _serving(make_backend) as workers:
        with anyio.fail_after(30):
            while not workers or workers[0].owned != {0, 1}:  # noqa: ASYNC110
                await anyio.sleep(0.05)
        storage = await make_backend()
        with pytest.raises(RunLockedError, match=r"served by pyworkflow workers.*Client"):
            await pyworkflow.start(flow, "inline", storage=storage)
        assert ran["inline"] == 0
        assert (await storage.list_runs()).runs == []


async def test_a_client_start_with_a_key_of_another_workflow_is_refused(
    make_backend: MakeBackend,
) -> None:
    async with _serving(make_backend), Client(await make_backend()) as client:
        first = await client.start(flow, "k", idempotency_key="order-7")
        assert await client.result(first, timeout=30) == "K!"
        assert await client.start(flow, "other", idempotency_key="order-7") == first
        with pytest.raises(ConfigurationError, match=r"'order-7' belongs to run .*kw_flow"):
            await client.start(approval, "a", idempotency_key="order-7")


async def test_a_run_continued_as_new_goes_on_with_its_worker(make_backend: MakeBackend) -> None:
    """On Kafka a successor is placed in its run's partition: the worker that owns the run
    (and folds, fences and executes only its own partitions) starts and runs it. The client
    follows the chain to its last run."""
    async with _serving(make_backend, 2), Client(await make_backend()) as client:
        first = await client.start(chain, 0)
        assert await client.result(first, timeout=60) == 3
        links = await get_workflow_chain(first, storage=client.storage)
        assert [r.status for r in links] == [RunStatus.CONTINUED_AS_NEW] * 3 + [
            RunStatus.COMPLETED
        ]
        assert len({client.storage.partition_of(r.run_id) for r in links}) == 1
        assert [ran[f"chain-{n}"] for n in range(4)] == [1, 1, 1, 1]


async def test_children_run_with_their_parents_worker(make_backend: MakeBackend) -> None:
    """On Kafka a child is placed in its parent's partition (as a successor is): the worker
    that owns the parent starts and runs it, and its end wakes the parent there."""
    async with _serving(make_backend, 2), Client(await make_backend()) as client:
        parent = await client.start(family, 3)
        assert await client.result(parent, timeout=60) == 30
        children = await client.storage.get_children(parent)
        assert [c.status for c in children] == [RunStatus.COMPLETED] * 3
        assert {c.parent_run_id for c in children} == {parent}
        runs = [parent, *(c.run_id for c in children)]
        assert len({client.storage.partition_of(r) for r in runs}) == 1
        assert [ran[f"kid-{n}"] for n in range(3)] == [1, 1, 1]


@workflow(durable=True, name="kw_quick_kid")
async def quick_kid(n: int) -> int:
    return len(await work(f"quick-{n}"))  # ends without resting: races its parent


@workflow(durable=True, name="kw_quick_family")
async def quick_family(n: int) -> int:
    return sum([await start_child_workflow(quick_kid, i) for i in range(n)])


async def test_a_child_ending_as_its_parent_suspends_on_it_wakes_the_parent(
    make_backend: MakeBackend,
) -> None:
    """A child that ends without resting (no sleep, no hook) ends while its parent, on the
    same worker, looks at it (still running) and suspends on it: its outcome is written by
    the parent's live owner just before the parent's ``workflow_suspended``. The parent goes
    on anyway (it rested for good before, its outcome unread: the supervisor's wake found
    it still active)."""
    async with _serving(make_backend, 1), Client(await make_backend()) as client:
        parents = [await client.start(quick_family, 3) for _ in range(30)]
        results = [await client.result(p, timeout=30) for p in parents]
        assert results == [21] * 30  # len("QUICK-i") for each of 3 children
        assert sum(ran.values()) == 90  # each child's step once


@workflow(durable=True, name="kw_one_child")
async def one_child(n: int) -> str:
    try:
        return f"got {await start_child_workflow(kid, n)}"
    except ChildWorkflowFailedError as exc:  # ChildWorkflowCancelledError too
        return f"{exc.error_type}: {exc.error_message}"


CHILD_ENDS = {
    "completed": (WorkflowCompleted, {"result": raw(70)}, "got 70"),
    "failed": (WorkflowFailed, {"error_type": "KeyError", "error_message": "x"}, "KeyError: x"),
    "cancelled": (WorkflowCancelled, {"reason": "no"}, "CancellationError: no"),
}


@pytest.mark.parametrize("end", list(CHILD_ENDS))
async def test_a_recovered_parent_takes_the_outcome_of_a_child_that_ended_unrecorded(
    make_backend: MakeBackend, end: str
) -> None:
    """What a worker SIGKILLed between a child's start and its parent's record of it can
    leave, once the next worker ran the child to its end before the parent's replay got
    there (the child's end found no record in the parent to write its outcome to): the
    parent's log is its start, the child's log is whole. The worker recovers the parent,
    finds the child started (its own backend dropped the child's log: it ended) and takes
    its outcome from its record, without running it again."""
    writer = await make_backend()
    now = datetime.now(UTC)
    parent = f"run_{secrets.token_hex(8)}"
    kid_id = child_id(f"{parent}:1", parent, writer)  # the checkpoint of the first call
    common = {"sequence": 1, "timestamp": now, "args": raw([7])}
    top = WorkflowStarted(run_id=parent, workflow_name="kw_one_child", **common)
    await writer.append(parent, [top], expected_sequence=0)
    kid_start = WorkflowStarted(
        run_id=kid_id, workflow_name="kw_kid", parent_run_id=parent, nesting_depth=1, **common
    )
    cls, fields, expected = CHILD_ENDS[end]
    kid_end = cls(run_id=kid_id, sequence=2, timestamp=now, **fields)
    await writer.append(kid_id, [kid_start], expected_sequence=0)
    await writer.append(kid_id, [kid_end], expected_sequence=1)
    async with _serving(make_backend, 1), Client(await make_backend()) as client:
        assert await client.result(parent, timeout=20) == expected
    assert not ran  # the child did not run again
    events = await (await make_backend()).read(parent)
    fold(parent, events)
    kinds = [(e.type.value, getattr(e, "child_run_id", None)) for e in events]
    assert ("child_workflow_started", kid_id) in kinds
    assert (f"child_workflow_{end}", kid_id) in kinds
