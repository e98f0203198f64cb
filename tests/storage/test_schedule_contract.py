"""The storage contract for schedule records, against every backend of ``conftest.BACKENDS``:
a compare-and-set on ``revision``, seen by other instances (another process)."""

from __future__ import annotations

import anyio
import msgspec
import pytest

from pyworkflow import ConflictError, OverlapPolicy, Schedule, ScheduleSpec, ScheduleStatus
from pyworkflow._core._events import WorkflowStarted
from pyworkflow.storage import StorageBackend

from .conftest import Reopen
from .helpers import T0


def record(schedule_id: str = "nightly", **changes: object) -> Schedule:
    base = Schedule(
        schedule_id=schedule_id,
        workflow_name="report",
        spec=ScheduleSpec(cron="0 3 * * *", timezone="Europe/Riga"),
        overlap_policy=OverlapPolicy.BUFFER_ONE,
        args=[1, "x"],
        kwargs={"k": [True, None]},
        created_at=T0,
        updated_at=T0,
        next_run_time=T0,
    )
    return msgspec.structs.replace(base, **changes)


async def test_a_saved_schedule_reads_back_equal(backend: StorageBackend) -> None:
    created = record()
    await backend.save_schedule(created)
    assert await backend.get_schedule("nightly") == created
    assert await backend.list_schedules() == [created]
    assert await backend.get_schedule("other") is None


async def test_a_save_is_a_compare_and_set_on_the_revision(backend: StorageBackend) -> None:
    await backend.save_schedule(record())
    with pytest.raises(ConflictError, match="revision 1"):
        await backend.save_schedule(record(status=ScheduleStatus.PAUSED))  # a second create
    paused = record(status=ScheduleStatus.PAUSED, revision=2)
    await backend.save_schedule(paused)
    with pytest.raises(ConflictError, match="nightly"):
        await backend.save_schedule(record(total_runs=5, revision=2))  # a stale writer
    with pytest.raises(ConflictError):
        await backend.save_schedule(record(revision=4))  # skipping a revision
    assert await backend.get_schedule("nightly") == paused


async def test_concurrent_writers_of_one_revision_have_exactly_one_winner(
    backend: StorageBackend,
) -> None:
    await backend.save_schedule(record())
    outcomes: list[int] = []

    async def write(n: int) -> None:
        try:
            await backend.save_schedule(record(total_runs=n, revision=2))
        except ConflictError:
            return
        outcomes.append(n)

    async with anyio.create_task_group() as tg:
        for n in range(5):
            tg.start_soon(write, n)
    assert len(outcomes) == 1
    stored = await backend.get_schedule("nightly")
    assert stored is not None and stored.total_runs == outcomes[0]


async def test_delete_removes_the_record_and_a_stale_save_cannot_bring_it_back(
    backend: StorageBackend,
) -> None:
    await backend.save_schedule(record())
    await backend.save_schedule(record("b"))
    assert await backend.delete_schedule("nightly") is True
    assert await backend.delete_schedule("nightly") is False
    assert [s.schedule_id for s in await backend.list_schedules()] == ["b"]
    with pytest.raises(ConflictError, match="there is none"):
        await backend.save_schedule(record(revision=2))
    await backend.save_schedule(record())  # created again, from revision 1
    assert [s.schedule_id for s in await backend.list_schedules()] == ["b", "nightly"]


async def test_other_instances_see_schedule_writes(backend: StorageBackend, reopen: Reopen) -> None:
    await backend.save_schedule(record())
    async with reopen() as other:
        assert await other.get_schedule("nightly") == record()
        await other.save_schedule(record(total_runs=1, revision=2))
        with pytest.raises(ConflictError):
            await backend.save_schedule(record(total_runs=9, revision=2))
        stored = await backend.get_schedule("nightly")
        assert stored is not None and stored.total_runs == 1
    async with reopen() as restarted:
        assert [s.revision for s in await restarted.list_schedules()] == [2]


async def test_a_scheduled_run_records_its_schedule(backend: StorageBackend) -> None:
    started = WorkflowStarted(
        run_id="run_sched1",
        sequence=1,
        timestamp=T0,
        workflow_name="report",
        schedule_id="nightly",
        scheduled_time=T0,
    )
    await backend.append("run_sched1", [started], expected_sequence=0)
    run = await backend.get_run("run_sched1")
    assert run is not None and (run.schedule_id, run.scheduled_time) == ("nightly", T0)
