"""04 - Long-running workflow: sleep("1h") suspends the run; another process resumes it.

Run: python 04_long_running.py 2>/dev/null

This script runs as two processes, like a real restart:

1. ``python 04_long_running.py`` starts the run. It does step 1, records ``sleep_started``,
   suspends and the process exits. A ``resume()`` before the hour is up changes nothing.
2. It then re-executes itself, ``python 04_long_running.py resume <run_id>``: a fresh
   process with nothing in memory, whose clock runs one hour ahead (so the sleep is due,
   without waiting an hour). It resumes the run from the files in ``workflow_data_04/``:
   the event log is replayed, step 1 is served from the log, and step 2 runs.

In production a scheduler (Celery, the actor runtime) calls ``resume`` when the timer is due.
"""

import asyncio
import shutil
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

from pyworkflow import (
    configure,
    get_workflow_events,
    get_workflow_run,
    reset_config,
    resume,
    sleep,
    start,
    step,
    workflow,
)
from pyworkflow.storage import FileStorageBackend

DATA = Path(__file__).resolve().parent / "workflow_data_04"


class ClockAhead:
    """The wall clock, moved ahead by ``offset``: this process acts as if time passed."""

    def __init__(self, offset: timedelta) -> None:
        self.offset = offset

    def now(self) -> datetime:
        return datetime.now(UTC) + self.offset

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


@step()
async def prepare_report(report_id: str) -> dict:
    print(f"    [step] prepare_report({report_id!r})")
    return {"report_id": report_id, "prepared": True}


@step()
async def publish_report(report: dict) -> dict:
    print(f"    [step] publish_report({report['report_id']!r})")
    return {**report, "published": True}


@workflow(durable=True)
async def long_running_workflow(report_id: str) -> dict:
    report = await prepare_report(report_id)
    await sleep("1h")  # suspends here: the process may exit
    return await publish_report(report)


async def show(run_id: str) -> None:
    run = await get_workflow_run(run_id)
    print(f"  status: {run.status.value}", end="")
    if run.suspended_reason:
        print(f" (waiting for {run.suspended_reason} until {run.resume_at:%H:%M:%S} UTC)", end="")
    print()
    for event in await get_workflow_events(run_id):
        print(f"    {event.sequence:>2}: {event.type.value}")


async def first_process() -> str:
    shutil.rmtree(DATA, ignore_errors=True)
    reset_config()
    configure(storage=FileStorageBackend(DATA), default_durable=True)

    print("=== Process 1: start the run ===")
    run_id = await start(long_running_workflow, "report-2025-01")
    print(f"  run: {run_id}")
    await show(run_id)

    print("\n  resume() now: the hour is not up, so the run stays suspended")
    await resume(run_id)
    await show(run_id)
    print("\n  process 1 is done: the run lives on in the files\n", flush=True)
    return run_id


async def second_process(run_id: str) -> None:
    reset_config()
    configure(
        storage=FileStorageBackend(DATA),
        default_durable=True,
        clock=ClockAhead(timedelta(hours=1, minutes=1)),
    )
    print("=== Process 2: one hour later, a fresh process resumes the run ===")
    await show(run_id)
    result = await resume(run_id)
    print(f"\n  resumed: result {result}")
    print("  (prepare_report did not run again: its result was replayed from the log)")
    await show(run_id)


if __name__ == "__main__":
    if sys.argv[1:2] == ["resume"]:
        asyncio.run(second_process(sys.argv[2]))
    else:
        run_id = asyncio.run(first_process())
        # Process 2: this very script again, as a new process.
        subprocess.run([sys.executable, str(Path(__file__).resolve()), "resume", run_id], check=True)
