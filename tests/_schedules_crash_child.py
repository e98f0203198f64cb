"""Child processes for the SIGKILL test of schedules:
``python -m tests._schedules_crash_child BASE``, from the repo root.

Hosts the file storage at BASE in a Supervisor (which fires its schedules) until schedule
``crash`` has a counted, successful run, then prints its record's counters. With
``PAUSE_AT_ADVANCE`` set (a path), the process writes that file and waits (to be killed)
instead of saving the schedule record that counts a started run: after the due time's run
was started, before the record advanced.
"""

from __future__ import annotations

import os
import sys

import anyio

from pyworkflow import Schedule, step, workflow
from pyworkflow.actors import Supervisor
from pyworkflow.storage import FileStorageBackend


@step(name="schedcrash.measure")
async def measure() -> int:
    return 7


@workflow(name="schedcrash.report", durable=True)
async def report() -> int:
    return await measure()


class PausingStorage(FileStorageBackend):
    async def save_schedule(self, schedule: Schedule) -> None:
        pause = os.environ.get("PAUSE_AT_ADVANCE")
        if pause and schedule.total_runs >= 1:
            await anyio.Path(pause).write_text("paused")
            await anyio.sleep_forever()
        await super().save_schedule(schedule)


async def main(base: str) -> None:
    storage = PausingStorage(base, durability="none")
    async with Supervisor(storage=storage, poll_interval=0.05):
        with anyio.fail_after(15):
            while True:
                s = await storage.get_schedule("crash")
                if s is not None and s.successful_runs >= 1:
                    break
                await anyio.sleep(0.02)
    print(f"total_runs={s.total_runs} successful_runs={s.successful_runs}", flush=True)


if __name__ == "__main__":
    anyio.run(main, sys.argv[1])
