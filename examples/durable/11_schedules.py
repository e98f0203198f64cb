"""11 - Schedules: start a workflow by itself, on an interval or a cron.

``create_schedule(...)`` stores a schedule (here in files, in a temporary folder:
``schedules/{schedule_id}.json`` is readable JSON). A ``LocalScheduler`` (a thin face over
the embedded ``Supervisor``) fires it at each due time and executes the runs; each due time
starts exactly one run, whose id is derived from the schedule and the due time, even across
a crash of the scheduler. ``trigger_schedule`` starts a run at once; ``pause_schedule`` stops
the firing. This example fires every second for three seconds.

Run: python 11_schedules.py 2>/dev/null
"""

import asyncio
import shutil
import tempfile
from pathlib import Path

from pyworkflow import (
    LocalScheduler,
    OverlapPolicy,
    ScheduleSpec,
    configure,
    create_schedule,
    get_schedule,
    get_workflow_run,
    list_runs,
    pause_schedule,
    reset_config,
    step,
    trigger_schedule,
    workflow,
)
from pyworkflow.storage import FileStorageBackend


@step()
async def measure(sensor: str) -> float:
    return 21.5 if sensor == "greenhouse" else 18.0


@workflow(durable=True, name="sensor_report")
async def sensor_report(sensor: str) -> str:
    celsius = await measure(sensor)
    return f"{sensor}: {celsius} C"


async def main() -> None:
    folder = Path(tempfile.mkdtemp(prefix="workflow_data_11_"))
    storage = FileStorageBackend(folder, durability="none")
    configure(storage=storage, default_durable=True)
    try:
        schedule = await create_schedule(
            workflow_name="sensor_report",
            spec=ScheduleSpec(interval="1s"),
            overlap_policy=OverlapPolicy.SKIP,
            schedule_id="greenhouse-every-second",
            args=("greenhouse",),
        )
        print(
            f"Created {schedule.schedule_id}: {schedule.spec.describe()}, "
            f"policy {schedule.overlap_policy.value}"
        )
        print(f"Record file: schedules/{schedule.schedule_id}.json")

        run_id = await trigger_schedule(schedule.schedule_id)
        run = await get_workflow_run(run_id)
        print(f"Triggered now: {run.status.value} -> {run.result!r}")

        await LocalScheduler(poll_interval=0.2).run(duration=3.3)
        await pause_schedule(schedule.schedule_id)

        runs = [r for r in await list_runs(limit=20) if r.schedule_id == schedule.schedule_id]
        fired = [r for r in runs if r.scheduled_time != r.created_at]
        print(f"Runs of the schedule: {len(runs)} (fired by the scheduler: {len(fired)})")
        for r in sorted(runs, key=lambda r: r.created_at):
            print(f"  {r.run_id}  {r.status.value:<9}  {r.result}")
        final = await get_schedule(schedule.schedule_id)
        print(
            f"Status: {final.status.value}, total_runs={final.total_runs}, "
            f"successful_runs={final.successful_runs}, failed_runs={final.failed_runs}"
        )
    finally:
        await storage.aclose()
        reset_config()
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    asyncio.run(main())
