"""A real crash (SIGKILL) between a due time's run start and the schedule record's advance,
on file storage: a fresh process fires that due time again, which starts nothing new; one
run exists for it, and it completes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import anyio
import pytest

from pyworkflow import RunStatus, Schedule, ScheduleSpec
from pyworkflow._execution._scheduling import scheduled_run_id
from pyworkflow.storage import FileStorageBackend

from .storage.test_file_crash import TIMEOUT, wait_until

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def children() -> Iterator[list[subprocess.Popen[str]]]:
    started: list[subprocess.Popen[str]] = []
    yield started
    for child in started:
        if child.poll() is None:
            child.kill()
            child.communicate(timeout=TIMEOUT)


def spawn(children: list[subprocess.Popen[str]], base: Path, **env: str) -> subprocess.Popen[str]:
    child = subprocess.Popen(
        [sys.executable, "-m", "tests._schedules_crash_child", str(base)],
        cwd=ROOT,
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    children.append(child)
    return child


def test_a_kill_after_the_runs_start_before_the_advance_fires_the_due_time_once(
    tmp_path: Path, children: list[subprocess.Popen[str]]
) -> None:
    base, paused = tmp_path / "data", tmp_path / "paused"
    due = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=2)
    storage = FileStorageBackend(base, durability="none")
    schedule = Schedule(
        schedule_id="crash",
        workflow_name="schedcrash.report",
        spec=ScheduleSpec(interval="1h"),
        created_at=due,
        updated_at=due,
        next_run_time=due,
    )
    anyio.run(storage.save_schedule, schedule)
    run_id = scheduled_run_id("crash", due)

    first = spawn(children, base, PAUSE_AT_ADVANCE=str(paused))
    wait_until(paused.exists, "the scheduler to start the run and reach the record's advance")
    first.send_signal(signal.SIGKILL)
    first.communicate(timeout=TIMEOUT)
    assert first.returncode == -signal.SIGKILL

    fresh = FileStorageBackend(base, durability="none")
    assert anyio.run(fresh.read, run_id)  # the run for the due time is started...
    record = anyio.run(fresh.get_schedule, "crash")
    assert record is not None and (record.next_run_time, record.total_runs) == (due, 0)  # ...only

    second = spawn(children, base)
    out, err = second.communicate(timeout=TIMEOUT)
    assert second.returncode == 0, err[-3000:]
    assert out.strip() == "total_runs=1 successful_runs=1"

    logs = sorted(p.stem for p in (base / "events").glob("*.jsonl"))
    assert logs == [run_id]  # one run, for that due time
    run = anyio.run(fresh.get_run, run_id)
    assert run is not None and run.status is RunStatus.COMPLETED and run.scheduled_time == due
    record = anyio.run(fresh.get_schedule, "crash")
    assert record is not None and record.next_run_time == due + timedelta(hours=1)
    assert record.last_run_id == run_id and record.running_run_ids == ()
