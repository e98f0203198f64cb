"""The actors' tasks (``pyworkflow.actors._tasks.ActorTasks``): a trio nursery on trio, plain
tasks on asyncio, with a task group's rules; and what the supervisor does when an actor's
task meets a bug (an exception that is neither a workflow outcome nor a storage error)."""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from pathlib import Path

import anyio
import pytest

from pyworkflow import step, workflow
from pyworkflow.actors import Supervisor
from pyworkflow.actors._tasks import ActorTasks
from pyworkflow.storage import FileStorageBackend


async def test_cancel_stops_every_task_and_leaving_waits_for_their_cleanup() -> None:
    started, cleaned = [], []

    async def sleeper(name: str) -> None:
        started.append(name)
        try:
            await anyio.sleep_forever()
        finally:
            with anyio.CancelScope(shield=True):
                await anyio.sleep(0.01)  # cleanup that yields: leaving must wait for it
            cleaned.append(name)

    tasks = ActorTasks()
    await tasks.__aenter__()
    for name in "abc":
        tasks.start_soon(sleeper, name)
    await anyio.sleep(0.01)
    assert sorted(started) == ["a", "b", "c"]
    tasks.cancel()
    await tasks.aclose()
    assert sorted(cleaned) == ["a", "b", "c"]


async def test_an_escaped_exception_is_raised_on_leaving_after_the_others_finished() -> None:
    finished = []

    async def broken() -> None:
        raise RuntimeError("a bug in an actor")

    async def steady() -> None:
        await anyio.sleep(0.02)
        finished.append("steady")

    tasks = ActorTasks()
    await tasks.__aenter__()
    tasks.start_soon(broken)
    tasks.start_soon(steady)
    with pytest.raises(RuntimeError, match="a bug in an actor"):
        await tasks.aclose()
    assert finished == ["steady"]  # a sibling's bug does not cancel the others


async def test_leaving_while_the_caller_is_cancelled_still_waits_for_the_tasks() -> None:
    done = []

    async def short() -> None:
        try:
            await anyio.sleep(0.02)  # trio cancels it with the scope around the group
        finally:
            with anyio.CancelScope(shield=True):
                await anyio.sleep(0.01)
            done.append(1)

    tasks = ActorTasks()
    with anyio.CancelScope() as scope:
        await tasks.__aenter__()
        tasks.start_soon(short)
        scope.cancel()
        try:
            await anyio.sleep(1)
        finally:
            await tasks.aclose()
    assert done == [1]


@step(name="at_echo")
async def echo(value: str) -> str:
    return value


@workflow(durable=True, name="at_flow")
async def flow(value: str) -> str:
    return await echo(value)


async def test_a_bug_in_an_actor_reaches_the_waiter_and_the_supervisors_exit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    storage = FileStorageBackend(tmp_path / "data", durability="none")
    sup = Supervisor(storage=storage)

    def bug(run_id: str) -> AbstractAsyncContextManager[None]:
        raise RuntimeError("engine bug")  # not a storage error: a bug under the actor

    async def session() -> None:
        async with sup:
            good = await sup.start(flow, "fine")
            assert await sup.result(good) == "fine"
            # Injected through the storage the activation uses (the engine may be compiled:
            # its methods can't be patched).
            monkeypatch.setattr(storage, "lock_run", bug)
            # The actor writes a run's start with its first events: a start whose activation
            # broke first was never written, and its starter hears why.
            with pytest.raises(RuntimeError, match="engine bug"):
                await sup.start(flow, "x")
            assert await sup.result(good) == "fine"  # the supervisor goes on serving

    with pytest.raises(RuntimeError, match="engine bug"):  # raised again on leaving
        await session()
