"""Schedules: the API, firing in virtual time (a ManualClock drives the Supervisor's timer
service), catch-up, adoption after a crash, and each overlap policy; on memory and file
storage, under asyncio and trio."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import anyio
import anyio.lowlevel
import msgspec
import pytest

from pyworkflow import (
    ConfigurationError,
    OverlapPolicy,
    RunStatus,
    Schedule,
    ScheduleNotFoundError,
    ScheduleSpec,
    ScheduleStatus,
    WorkflowNotRegisteredError,
    create_schedule,
    delete_schedule,
    get_schedule,
    get_workflow_run,
    list_runs,
    list_schedules,
    pause_schedule,
    resume_schedule,
    sleep,
    step,
    trigger_schedule,
    workflow,
)
from pyworkflow._core._events import WorkflowStarted
from pyworkflow._execution._linked import start_linked
from pyworkflow._execution._scheduling import scheduled_run_id
from pyworkflow.actors import Supervisor
from pyworkflow.storage import FileStorageBackend, StorageBackend
from pyworkflow.testing import ManualClock

T0 = datetime(2025, 1, 1, tzinfo=UTC)


@step(name="sch_add")
async def add(a: int, b: int) -> int:
    return a + b


@workflow(durable=True, name="sch_report")
async def report(n: int, label: str = "r") -> str:
    return f"{label}{await add(n, 1)}"


@workflow(durable=True, name="sch_slow")
async def slow(seconds: int) -> int:
    await sleep(seconds)
    return seconds


@workflow(durable=False, name="sch_transient")
async def transient() -> None:
    return None


@pytest.fixture
async def sup(local_storage: StorageBackend, clock: ManualClock) -> AsyncIterator[Supervisor]:
    async with Supervisor(storage=local_storage, clock=clock, poll_interval=1) as supervisor:
        yield supervisor


async def until(check: Callable[[], Any], what: str) -> None:
    """Wait (real time, bounded) until ``check()`` holds: file I/O runs in threads."""
    with anyio.fail_after(10):
        await anyio.lowlevel.checkpoint()
        while not await check():  # noqa: ASYNC110 - polls storage, files in threads
            await anyio.sleep(0.002)


async def run_to(clock: ManualClock, seconds: int, quiet: Callable[[], Any]) -> None:
    """Advance the clock one second at a time, letting the supervisor settle after each."""
    for _ in range(seconds):
        clock.advance(1)
        await until(quiet, "the supervisor to settle")


async def scheduled_runs(storage: StorageBackend) -> list[tuple[datetime | None, RunStatus]]:
    runs = [r for r in await list_runs(storage=storage, limit=100) if r.schedule_id]
    return sorted((r.scheduled_time, r.status) for r in runs)


def settled(sup: Supervisor, storage: StorageBackend, schedule_id: str) -> Callable[[], Any]:
    """True once no actor is active, the timer service sleeps until a time to come, and the
    schedule's next due time is in the future."""

    async def check() -> bool:
        asleep = sup._sleep is not None and sup._sleep_until is not None
        if sup._actors or not asleep or sup._sleep_until <= sup.clock.now():
            return False
        s = await storage.get_schedule(schedule_id)
        if s is None or s.status is ScheduleStatus.PAUSED or s.next_run_time is None:
            return True
        return s.next_run_time > sup.clock.now()

    return check


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


# -- the API -------------------------------------------------------------------------------
async def test_create_returns_the_record_and_get_list_read_it_back(
    local_storage: StorageBackend,
) -> None:
    made = await create_schedule(
        workflow_name="sch_report",
        spec=ScheduleSpec(interval="10s"),
        overlap_policy="allow_all",
        schedule_id="every10",
        args=(1,),
        kwargs={"label": "x"},
    )
    assert isinstance(made, Schedule)
    assert (made.schedule_id, made.workflow_name, made.status) == (
        "every10",
        "sch_report",
        ScheduleStatus.ACTIVE,
    )
    assert made.spec.interval == 10.0 and made.overlap_policy is OverlapPolicy.ALLOW_ALL
    assert made.next_run_time == at(10) and made.last_run_at is None
    assert (made.total_runs, made.successful_runs, made.failed_runs) == (0, 0, 0)
    assert (made.args, made.kwargs) == ([1], {"label": "x"})
    assert await get_schedule("every10") == made
    other = await create_schedule(
        workflow_name="sch_report", spec=ScheduleSpec(cron="0 9 * * *"), args=(2,)
    )
    assert other.schedule_id.startswith("sched_") and other.next_run_time == at(9 * 3600)
    assert [s.schedule_id for s in await list_schedules()] == sorted(["every10", other.schedule_id])
    assert await list_schedules(status="paused") == []
    assert await get_schedule("nope") is None


async def test_cron_is_evaluated_in_the_schedules_time_zone(local_storage: StorageBackend) -> None:
    made = await create_schedule(
        workflow_name="sch_report",
        spec=ScheduleSpec(cron="30 8 * * *", timezone="America/New_York"),
        args=(1,),
    )
    assert made.next_run_time == datetime(2025, 1, 1, 13, 30, tzinfo=UTC)  # 08:30 EST


async def test_pause_resume_delete(local_storage: StorageBackend, clock: ManualClock) -> None:
    await create_schedule(
        workflow_name="sch_report", spec=ScheduleSpec(interval="1m"), schedule_id="p", args=(1,)
    )
    paused = await pause_schedule("p")
    assert paused.status is ScheduleStatus.PAUSED and paused.revision == 2
    clock.advance(150)
    resumed = await resume_schedule("p")
    assert resumed.status is ScheduleStatus.ACTIVE
    assert resumed.next_run_time == at(180)  # the first due time after the resume
    assert (await resume_schedule("p")).revision == resumed.revision  # already active
    await delete_schedule("p")
    assert await get_schedule("p") is None


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: ScheduleSpec(cron="61 * * * *"), r"cron='61 \* \* \* \*'.*bad minute"),
        (lambda: ScheduleSpec(cron="* * * *"), "4 fields, not 5"),
        (lambda: ScheduleSpec(cron="* * * * *", interval=5), "sets both"),
        (lambda: ScheduleSpec(), "sets neither"),
        (lambda: ScheduleSpec(interval="soon"), "'soon'"),
        (lambda: ScheduleSpec(interval=0), "interval=0.*> 0"),
        (lambda: ScheduleSpec(cron="0 * * * *", timezone="Mars/Olympus"), "'Mars/Olympus'"),
        (lambda: ScheduleSpec(interval=5, start_at=datetime(2025, 1, 1)), "aware datetime"),
    ],
)
def test_a_bad_spec_is_refused_naming_the_value(call: Callable[[], Any], match: str) -> None:
    with pytest.raises(ConfigurationError, match=match):
        call()


async def test_bad_create_calls_say_what_to_do(local_storage: StorageBackend) -> None:
    spec = ScheduleSpec(interval=5)
    with pytest.raises(WorkflowNotRegisteredError, match=r"'nope'.*import the module"):
        await create_schedule(workflow_name="nope", spec=spec)
    with pytest.raises(ConfigurationError, match="transient"):
        await create_schedule(workflow_name="sch_transient", spec=spec)
    with pytest.raises(ConfigurationError, match=r"'sometimes'.*OverlapPolicy.SKIP"):
        await create_schedule(workflow_name="sch_report", spec=spec, overlap_policy="sometimes")
    with pytest.raises(ConfigurationError, match=r"'../x'"):
        await create_schedule(workflow_name="sch_report", spec=spec, schedule_id="../x", args=(1,))
    with pytest.raises(TypeError):
        await create_schedule(workflow_name="sch_report", spec=spec)  # n is missing
    with pytest.raises(ConfigurationError, match="pass a ScheduleSpec"):
        await create_schedule(workflow_name="sch_report", spec="5m", args=(1,))  # type: ignore[arg-type]
    await create_schedule(workflow_name="sch_report", spec=spec, schedule_id="dup", args=(1,))
    with pytest.raises(ConfigurationError, match="'dup' exists already"):
        await create_schedule(workflow_name="sch_report", spec=spec, schedule_id="dup", args=(1,))


@pytest.mark.parametrize(
    "call", [pause_schedule, resume_schedule, delete_schedule, trigger_schedule]
)
async def test_an_unknown_schedule_id_is_named(
    local_storage: StorageBackend, call: Callable[[str], Any]
) -> None:
    with pytest.raises(ScheduleNotFoundError, match=r"'ghost'.*list_schedules"):
        await call("ghost")


async def test_trigger_starts_a_run_now_and_it_executes_inline(
    local_storage: StorageBackend,
) -> None:
    await create_schedule(
        workflow_name="sch_report", spec=ScheduleSpec(interval="1h"), schedule_id="t", args=(4,)
    )
    await pause_schedule("t")  # a trigger ignores the status
    run_id = await trigger_schedule("t")
    run = await get_workflow_run(run_id)
    assert run is not None and run.status is RunStatus.COMPLETED and run.result == "r5"
    assert (run.schedule_id, run.scheduled_time) == ("t", T0)
    s = await get_schedule("t")
    assert s is not None and (s.total_runs, s.last_run_id, s.last_run_at) == (1, run_id, T0)


# -- firing --------------------------------------------------------------------------------
async def test_an_interval_fires_once_per_due_time(
    local_storage: StorageBackend, clock: ManualClock, sup: Supervisor
) -> None:
    await create_schedule(
        workflow_name="sch_report", spec=ScheduleSpec(interval="10s"), schedule_id="i", args=(1,)
    )
    await run_to(clock, 35, settled(sup, local_storage, "i"))
    assert await scheduled_runs(local_storage) == [
        (at(t), RunStatus.COMPLETED) for t in (10, 20, 30)
    ]
    s = await get_schedule("i")
    assert s is not None and s.next_run_time == at(40)
    assert s.last_run_id == scheduled_run_id("i", at(30))
    assert (s.total_runs, s.successful_runs, s.failed_runs, s.skipped_runs) == (3, 3, 0, 0)


async def test_a_cron_fires_at_its_minutes(
    local_storage: StorageBackend, clock: ManualClock, sup: Supervisor
) -> None:
    await create_schedule(
        workflow_name="sch_report",
        spec=ScheduleSpec(cron="*/2 * * * *"),
        schedule_id="c",
        args=(1,),
    )
    await run_to(clock, 300, settled(sup, local_storage, "c"))
    assert [t for t, _ in await scheduled_runs(local_storage)] == [at(120), at(240)]


async def test_a_paused_schedule_fires_nothing(
    local_storage: StorageBackend, clock: ManualClock, sup: Supervisor
) -> None:
    await create_schedule(
        workflow_name="sch_report", spec=ScheduleSpec(interval="10s"), schedule_id="z", args=(1,)
    )
    await pause_schedule("z")
    await run_to(clock, 25, settled(sup, local_storage, "z"))
    assert await scheduled_runs(local_storage) == []


async def test_missed_times_fire_the_latest_once_and_skip_the_rest(
    local_storage: StorageBackend, clock: ManualClock
) -> None:
    await create_schedule(
        workflow_name="sch_report", spec=ScheduleSpec(interval="10s"), schedule_id="m", args=(1,)
    )
    clock.advance(55)  # no scheduler ran at 10, 20, 30, 40, 50
    async with Supervisor(storage=local_storage, clock=clock) as sup:
        await until(settled(sup, local_storage, "m"), "the catch-up")
    assert await scheduled_runs(local_storage) == [(at(50), RunStatus.COMPLETED)]
    s = await get_schedule("m")
    assert s is not None and (s.skipped_runs, s.total_runs, s.next_run_time) == (4, 1, at(60))


async def test_a_due_time_whose_run_was_started_before_a_crash_is_adopted(
    local_storage: StorageBackend, clock: ManualClock
) -> None:
    """The scheduler died after starting the run for 10s, before advancing the record."""
    await create_schedule(
        workflow_name="sch_report",
        spec=ScheduleSpec(interval="10s"),
        schedule_id="a",
        args=(1,),
        overlap_policy=OverlapPolicy.ALLOW_ALL,  # the adopted run is unfinished at 20
    )
    run_id = scheduled_run_id("a", at(10))
    clock.advance(10)
    started = WorkflowStarted(
        run_id=run_id, sequence=1, timestamp=at(10), workflow_name="sch_report",
        args=msgspec.Raw(b"[1]"), kwargs=msgspec.Raw(b"{}"), schedule_id="a", scheduled_time=at(10),
    )  # fmt: skip
    assert await start_linked(local_storage, started, lambda _: True)
    clock.advance(15)  # and the restart comes after the next due time too
    async with Supervisor(storage=local_storage, clock=clock) as sup:
        await until(settled(sup, local_storage, "a"), "the adoption")
        await until(lambda: _no_actors(sup), "the runs to end")
    assert await scheduled_runs(local_storage) == [
        (at(10), RunStatus.COMPLETED),
        (at(20), RunStatus.COMPLETED),
    ]
    s = await get_schedule("a")
    assert s is not None and s.total_runs == 2 and s.next_run_time == at(30)


async def _no_actors(sup: Supervisor) -> bool:
    return not sup._actors


# -- overlap policies ------------------------------------------------------------------------
async def overlap(
    storage: StorageBackend, clock: ManualClock, sup: Supervisor, policy: OverlapPolicy, run: int
) -> Schedule:
    """A 10 s schedule whose runs sleep 25 s, run for ``run`` seconds."""
    await create_schedule(
        workflow_name="sch_slow",
        spec=ScheduleSpec(interval="10s"),
        overlap_policy=policy,
        schedule_id="o",
        args=(25,),
    )
    await run_to(clock, run, settled(sup, storage, "o"))
    s = await get_schedule("o")
    assert s is not None
    return s


async def test_skip_starts_nothing_while_a_run_is_unfinished(
    local_storage: StorageBackend, clock: ManualClock, sup: Supervisor
) -> None:
    s = await overlap(local_storage, clock, sup, OverlapPolicy.SKIP, 45)
    # 10: starts (ends at 35); 20, 30: skipped; 40: starts.
    assert await scheduled_runs(local_storage) == [
        (at(10), RunStatus.COMPLETED),
        (at(40), RunStatus.SUSPENDED),
    ]
    assert (s.total_runs, s.skipped_runs, s.successful_runs) == (2, 2, 1)


async def test_buffer_one_starts_one_kept_time_when_the_run_ends(
    local_storage: StorageBackend, clock: ManualClock, sup: Supervisor
) -> None:
    s = await overlap(local_storage, clock, sup, OverlapPolicy.BUFFER_ONE, 38)
    # 10: starts (ends at 35); 20: kept; 30: skipped; 35: the run for 20 starts.
    runs = [r for r in await list_runs(limit=100) if r.schedule_id]
    by_time = {r.scheduled_time: r for r in runs}
    assert sorted(by_time) == [at(10), at(20)]
    assert by_time[at(10)].status is RunStatus.COMPLETED
    assert by_time[at(20)].status is RunStatus.SUSPENDED
    assert by_time[at(20)].created_at >= at(35)
    assert (s.total_runs, s.skipped_runs, s.buffered_time) == (2, 1, None)


async def test_allow_all_lets_runs_overlap(
    local_storage: StorageBackend, clock: ManualClock, sup: Supervisor
) -> None:
    s = await overlap(local_storage, clock, sup, OverlapPolicy.ALLOW_ALL, 31)
    assert await scheduled_runs(local_storage) == [
        (at(t), RunStatus.SUSPENDED) for t in (10, 20, 30)
    ]
    assert (s.total_runs, s.skipped_runs, len(s.running_run_ids)) == (3, 0, 3)


async def test_cancel_other_cancels_the_running_run_then_starts(
    local_storage: StorageBackend, clock: ManualClock, sup: Supervisor
) -> None:
    await overlap(local_storage, clock, sup, OverlapPolicy.CANCEL_OTHER, 21)
    assert await scheduled_runs(local_storage) == [
        (at(10), RunStatus.CANCELLED),
        (at(20), RunStatus.SUSPENDED),
    ]
    await run_to(clock, 1, settled(sup, local_storage, "o"))  # the next look counts it
    s = await get_schedule("o")
    assert s is not None and (s.total_runs, s.failed_runs) == (2, 1)


# -- the stored format -----------------------------------------------------------------------
GOLDEN_RECORD = Path(__file__).parent / "golden" / "schedule_record.json"


async def test_the_schedule_record_format_is_stable(tmp_path: Path) -> None:
    """``schedules/{id}.json`` is API: a record written by an older version still reads the
    same, and the same record is written byte for byte the same."""
    expected = Schedule(
        schedule_id="nightly-report",
        workflow_name="report",
        spec=ScheduleSpec(cron="0 3 * * *", timezone="Europe/Riga"),
        overlap_policy=OverlapPolicy.BUFFER_ONE,
        args=[1, "x"],
        kwargs={"full": True},
        created_at=T0,
        updated_at=datetime(2025, 1, 2, 1, 0, 0, 5000, tzinfo=UTC),
        next_run_time=datetime(2025, 1, 3, 1, tzinfo=UTC),
        last_run_at=datetime(2025, 1, 2, 1, 0, 0, 4000, tzinfo=UTC),
        last_run_id="run_0123456789abcdef",
        total_runs=3,
        successful_runs=1,
        failed_runs=1,
        skipped_runs=2,
        running_run_ids=("run_0123456789abcdef",),
        revision=9,
    )
    folder = tmp_path / "data" / "schedules"
    folder.mkdir(parents=True)
    (folder / "nightly-report.json").write_bytes(GOLDEN_RECORD.read_bytes())
    storage = FileStorageBackend(tmp_path / "data", durability="none")
    assert await storage.get_schedule("nightly-report") == expected
    await storage.delete_schedule("nightly-report")
    await storage.save_schedule(msgspec.structs.replace(expected, revision=1))
    written = (folder / "nightly-report.json").read_text()
    assert written == GOLDEN_RECORD.read_text().replace('"revision": 9', '"revision": 1')
