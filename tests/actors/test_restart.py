"""A supervisor restarted on file storage resumes every due run and every run that was
running when the previous one was SIGKILLed, from the storage's due index."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import pytest

from pyworkflow import RunStatus, configure
from pyworkflow.actors import Supervisor
from pyworkflow.storage import FileStorageBackend
from pyworkflow.testing import ManualClock

from . import restart_app  # registers the workflows in this process too

ROOT = Path(__file__).resolve().parents[2]


def _spawn(folder: Path) -> tuple[subprocess.Popen[str], list[str], list[str]]:
    env = {**os.environ, "RESTART_FOLDER": str(folder), "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.actors.restart_app", str(folder)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline().split()
    assert line[:1] == ["READY"], line
    bar = line.index("|")
    return proc, line[1:bar], line[bar + 1 :]


@pytest.fixture
def killed(tmp_path: Path) -> tuple[Path, list[str], list[str]]:
    folder = tmp_path / "data"
    folder.mkdir()
    proc, nappers, stucks = _spawn(folder)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    return folder, nappers, stucks


async def test_a_restarted_supervisor_resumes_due_and_running_runs(
    killed: tuple[Path, list[str], list[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    folder, nappers, stucks = killed
    monkeypatch.setenv("RESTART_FOLDER", str(folder))
    (folder / "flag").touch()  # the stuck steps can finish now
    clock = ManualClock(datetime.now(UTC))
    configure(clock=clock)
    storage = FileStorageBackend(folder)
    assert restart_app.napper.name == "rs_napper"
    async with Supervisor(storage=storage, clock=clock) as sup:
        # Runs left running by the dead process are due at once: recovered, no prompt.
        assert [await sup.result(r, timeout=20) for r in stucks] == ["s0", "s1"]
        for run_id in nappers:
            run = await storage.get_run(run_id)
            assert run is not None and run.status is RunStatus.SUSPENDED
        clock.advance(3)  # the sleeps come due: woken from the index, no resume() call
        assert [await sup.result(r, timeout=20) for r in nappers] == ["n0", "n1", "n2"]
    trail = Counter((folder / "trail").read_text().splitlines())
    # Completed steps never ran again; the steps in flight at the kill ran once more.
    assert trail == Counter(
        {
            "before n0": 1,
            "before n1": 1,
            "before n2": 1,
            "after n0": 1,
            "after n1": 1,
            "after n2": 1,
            "stuck s0": 2,
            "stuck s1": 2,
        }
    )
    for run_id in stucks:
        kinds = [e.type.value for e in await storage.read(run_id)]
        assert "workflow_resumed" in kinds  # recovered, as the log says


@pytest.fixture
def parts_killed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, str]:
    """A child runs ``parts`` (gather of a, b, c); SIGKILLed 0.5 s after c finished."""
    folder = tmp_path / "data"
    folder.mkdir()
    monkeypatch.setenv("RESTART_FOLDER", str(folder))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.actors.restart_app", str(folder), "parts"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    run_id = proc.stdout.readline().split()[1]
    trail = folder / "trail"
    deadline = time.monotonic() + 20
    wanted = {"part a", "part b", "part c"}
    while not (trail.exists() and wanted <= set(trail.read_text().split("\n"))):
        assert time.monotonic() < deadline, "the three parts never started"
        time.sleep(0.01)
    time.sleep(0.5)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    return folder, run_id


async def test_an_outcome_is_durable_promptly_while_a_sibling_step_still_runs(
    parts_killed: tuple[Path, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """c's outcome was written as soon as c finished, not with the run's next append: the
    recovery serves it from the log and runs only b again."""
    folder, run_id = parts_killed
    storage = FileStorageBackend(folder)
    done = [e for e in await storage.read(run_id) if e.type.value == "step_completed"]
    assert len(done) == 2  # a and c were durable before the kill, though b still ran
    configure(clock=ManualClock(datetime.now(UTC)))
    monkeypatch.setattr(restart_app, "_BLOCK_B", False)  # b finishes this time
    async with Supervisor(storage=storage) as sup:
        assert await sup.result(run_id, timeout=20) == ["a", "b", "c"]
    trail = Counter((folder / "trail").read_text().splitlines())
    assert trail == Counter({"part a": 1, "part c": 1, "part b": 2})
