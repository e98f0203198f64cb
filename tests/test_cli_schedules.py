"""``pyworkflow schedules list/pause/resume/trigger`` and the schedule line of ``runs show``,
run as the real console script."""

from __future__ import annotations

from pathlib import Path

import anyio

from pyworkflow import ScheduleSpec, create_schedule
from pyworkflow.storage import FileStorageBackend

from .test_cli import APP, as_json, cli, one_error_line


def test_schedules_commands(tmp_path: Path) -> None:
    base = tmp_path / "data"
    storage = FileStorageBackend(base, durability="none")

    async def make() -> None:
        await create_schedule(
            workflow_name="cli.napper",
            spec=ScheduleSpec(cron="0 9 * * 1-5", timezone="Europe/Riga"),
            schedule_id="weekday",
            args=("o-1", 0),
            storage=storage,
        )

    anyio.run(make)
    where = f"file:{base}"
    listed = cli("schedules", "list", storage=where)
    assert listed.returncode == 0, listed.stderr
    assert "weekday" in listed.stdout and "cron '0 9 * * 1-5' (Europe/Riga)" in listed.stdout

    paused = as_json(cli("--json", "schedules", "pause", "weekday", storage=where))
    assert paused["status"] == "paused"
    resumed = cli("schedules", "resume", "weekday", storage=where)
    assert resumed.returncode == 0 and "weekday active, next run" in resumed.stdout

    triggered = as_json(
        cli("--json", "--app", APP, "schedules", "trigger", "weekday", storage=where)
    )
    assert triggered["status"] == "completed"
    shown = cli("runs", "show", triggered["run_id"], storage=where)
    assert shown.returncode == 0, shown.stderr
    assert "weekday (due " in shown.stdout
    record = anyio.run(storage.get_schedule, "weekday")
    assert record is not None and record.total_runs == 1

    one_error_line(cli("schedules", "pause", "ghost", storage=where), 3, "'ghost'")
