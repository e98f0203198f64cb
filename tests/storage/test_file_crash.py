"""Real crashes: child processes running FileStorageBackend are killed with SIGKILL.

The children are ``tests/storage/_crash_child.py`` run with ``python -m`` from the repo root.
Waits poll a file with short sleeps up to a timeout; nothing depends on timing otherwise.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import anyio
import msgspec
import pytest

from pyworkflow import RunStatus, StepRecord, WorkflowRun
from pyworkflow._core._events import Event, StepCompleted, StepStarted, WorkflowResumed
from pyworkflow._core._projection import project
from pyworkflow.storage import FileStorageBackend

from .helpers import History, started

ROOT = Path(__file__).resolve().parents[2]
LOCKED_EXIT = 3
TIMEOUT = 20.0


@dataclass
class Lab:
    """A storage folder, the side-effect counter and the block file shared with children."""

    base: Path
    counter: Path
    block: Path
    children: list[subprocess.Popen[str]]

    child_module: ClassVar[str] = "tests.storage._crash_child"

    def spawn(self, *args: str, offset: float = 0, **extra_env: str) -> subprocess.Popen[str]:
        env = {
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "CRASH_COUNTER": str(self.counter),
            "CRASH_BLOCK": str(self.block),
            "CRASH_CLOCK_OFFSET": str(offset),
            **extra_env,
        }
        child = subprocess.Popen(
            [sys.executable, "-m", self.child_module, *args],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.children.append(child)
        return child

    def side_effects(self) -> Counter[str]:
        if not self.counter.exists():
            return Counter()
        return Counter(self.counter.read_text().split())

    def run_id(self) -> str:
        (log,) = (self.base / "events").iterdir()
        return log.stem

    def run(self, run_id: str) -> WorkflowRun:
        record = anyio.run(FileStorageBackend(self.base).get_run, run_id)
        assert record is not None
        return record

    def events(self, run_id: str) -> list[Event]:
        return anyio.run(FileStorageBackend(self.base).read, run_id)

    def steps(self, run_id: str) -> dict[str, StepRecord]:
        """The step records of the run, read by a new process (the backend's get_step)."""

        async def read() -> dict[str, StepRecord]:
            storage = FileStorageBackend(self.base)
            found = {}
            for checkpoint in range(1, 10):
                step = await storage.get_step(f"{run_id}.{checkpoint}")
                if step is not None:
                    found[step.step_id] = step
            return found

        return anyio.run(read)

    def stored_run(self, run_id: str) -> WorkflowRun:
        """The run record in runs/{run_id}.json, as it is on disk."""
        data = (self.base / "runs" / f"{run_id}.json").read_bytes()
        return msgspec.json.decode(data, type=WorkflowRun)


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[Lab]:
    lab = Lab(tmp_path / "data", tmp_path / "side_effects.txt", tmp_path / "block", [])
    yield lab
    for child in lab.children:
        if child.poll() is None:
            child.kill()
            child.communicate(timeout=TIMEOUT)


def wait_until(predicate: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + TIMEOUT
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.01)


def finish(child: subprocess.Popen[str]) -> tuple[int, str]:
    out, err = child.communicate(timeout=TIMEOUT)
    assert child.returncode in (0, LOCKED_EXIT), err[-3000:]
    return child.returncode, out.strip()


def kill(child: subprocess.Popen[str]) -> None:
    child.send_signal(signal.SIGKILL)
    child.communicate(timeout=TIMEOUT)
    assert child.returncode == -signal.SIGKILL


# -- (a) a run killed in a step resumes in another process -----------------------------------
def test_a_killed_run_resumes_elsewhere_and_completed_steps_never_rerun(lab: Lab) -> None:
    lab.block.touch()  # charge_payment hangs after its side effect
    first = lab.spawn("start", str(lab.base), "order")
    wait_until(lambda: lab.side_effects()["charge_payment"] == 1, "step 2 to start")
    kill(first)

    run_id = lab.run_id()
    assert lab.run(run_id).status is RunStatus.RUNNING  # as the dead process left it
    # It died before its first flush point: no record file at all; reads see the log.
    died = project(None, lab.events(run_id))
    assert lab.run(run_id) == died.run and died.run.step_count == 1
    assert not (lab.base / "runs" / f"{run_id}.json").exists()
    assert lab.steps(run_id) == died.steps  # one completed, one started, none in steps/
    assert not any((lab.base / "steps").iterdir())
    lab.block.unlink()
    code, out = finish(lab.spawn("resume", str(lab.base), run_id))

    assert (code, out) == (0, "completed")
    assert lab.side_effects() == {"process_order": 1, "charge_payment": 2, "send_notification": 1}
    run = lab.run(run_id)
    assert run.status is RunStatus.COMPLETED and run.result["notified"] is True
    events = lab.events(run_id)
    assert [e.sequence for e in events] == list(range(1, len(events) + 1))
    recovered = [e for e in events if isinstance(e, WorkflowResumed)]
    assert [e.reason for e in recovered] == ["recovered"]
    charge = [e for e in events if isinstance(e, StepStarted) and e.checkpoint == 2]
    assert len(charge) == 2  # at-least-once for the step in flight, and only for it
    # The run finished: a flush point, so every record file is the log's projection.
    done = project(None, events)
    assert lab.stored_run(run_id) == done.run
    for step_id, step in done.steps.items():
        stored = (lab.base / "steps" / f"{step_id}.json").read_bytes()
        assert msgspec.json.decode(stored, type=StepRecord) == step


# -- (b) a process killed in the middle of appending ---------------------------------------------
def _seeded_run(lab: Lab) -> History:
    h = History()
    storage = FileStorageBackend(lab.base)
    anyio.run(lambda: storage.append(h.run_id, [started(h)], expected_sequence=0))
    return h


def _append_one_more(lab: Lab, run_id: str) -> list[Event]:
    async def go() -> list[Event]:
        storage = FileStorageBackend(lab.base)
        events = await storage.read(run_id)
        last = events[-1]
        h = History(run_id, start=last.timestamp)
        h.sequence = last.sequence
        event = h.step(StepStarted, 10_000, "after_the_crash")
        await storage.append(run_id, [event], expected_sequence=last.sequence)
        return await FileStorageBackend(lab.base).read(run_id)

    return anyio.run(go)


@pytest.mark.parametrize("attempt", range(3))
def test_a_process_killed_while_appending_leaves_a_usable_log(lab: Lab, attempt: int) -> None:
    h = _seeded_run(lab)
    log = lab.base / "events" / f"{h.run_id}.jsonl"
    # Multi-megabyte writes, so a kill often lands inside one (a short write, a torn line).
    child = lab.spawn("append-loop", str(lab.base), h.run_id, str(2 * 1024 * 1024))
    wait_until(lambda: log.stat().st_size > (4 + 3 * attempt) * 1024 * 1024, "appends")
    kill(child)

    events = _append_one_more(lab, h.run_id)

    assert [e.sequence for e in events] == list(range(1, len(events) + 1))
    assert len(events) > 3
    assert events[-1].step_name == "after_the_crash"  # type: ignore[union-attr]
    data = log.read_bytes()
    assert data.endswith(b"\n") and data.count(b"\n") == len(events)


def test_a_half_written_line_of_a_killed_process_is_recovered(lab: Lab) -> None:
    h = _seeded_run(lab)
    log = lab.base / "events" / f"{h.run_id}.jsonl"
    child = lab.spawn("torn-self", str(lab.base), h.run_id)
    child.communicate(timeout=TIMEOUT)
    assert child.returncode == -signal.SIGKILL
    assert not log.read_bytes().endswith(b"\n")  # the torn line is there

    events = _append_one_more(lab, h.run_id)

    assert [e.type.value for e in events] == ["workflow_started", "step_started"]
    assert log.read_bytes().endswith(b"\n") and log.read_bytes().count(b"\n") == 2


@pytest.mark.parametrize("loop", ["asyncio", "trio"])
def test_readers_see_whole_appends_while_another_process_appends(lab: Lab, loop: str) -> None:
    """A fresh reader (what another process opens) while a process appends two events per
    append, the second spanning pages: every read is the log up to a whole append, whether
    or not a run file (written by the 64 KiB flushes) vouches for part of it."""
    h = _seeded_run(lab)
    log = lab.base / "events" / f"{h.run_id}.jsonl"
    child = lab.spawn("append-batches", str(lab.base), h.run_id, "9000")
    wait_until(lambda: log.stat().st_size > 64 * 1024, "appends")
    counts = set()
    deadline = time.monotonic() + 1.5
    while time.monotonic() < deadline or len(counts) < 20:
        reader = FileStorageBackend(lab.base, durability="none")
        events = anyio.run(reader.read, h.run_id, backend=loop)
        counts.add(len(events))
        assert [e.sequence for e in events] == list(range(1, len(events) + 1))
        assert len(events) % 2 == 1, "half an append was read"
        assert isinstance(events[-1], StepCompleted) or len(events) == 1
    assert (lab.base / "runs" / f"{h.run_id}.json").exists()  # the hint was there to use
    kill(child)
    events = lab.events(h.run_id)
    # SIGKILL may cut the last append between its two events (Linux ends a write between
    # pages when a fatal signal is pending): its torn line is dropped, its whole first event
    # stays, a commit's prefix (what readers above never saw: they read under the lock).
    assert [e.sequence for e in events] == list(range(1, len(events) + 1))
    assert len(events) >= max(counts)


# -- (c) two processes resume the same run at once ------------------------------------------------
def test_two_processes_resuming_one_run_exactly_one_executes(lab: Lab) -> None:
    code, run_id = finish(lab.spawn("start", str(lab.base), "sleepy_order"))
    assert code == 0 and lab.run(run_id).status is RunStatus.SUSPENDED
    lab.block.touch()

    # Both see the 1h sleep as due; whoever takes the run's lock hangs in charge_payment
    # until the other one has given up.
    one = lab.spawn("resume", str(lab.base), run_id, offset=7200)
    two = lab.spawn("resume", str(lab.base), run_id, offset=7200)
    wait_until(lambda: one.poll() is not None or two.poll() is not None, "one resume to fail")
    loser, winner = (one, two) if one.poll() is not None else (two, one)
    code, out = finish(loser)
    assert code == LOCKED_EXIT and out.startswith("locked:") and run_id in out
    assert f"pid {winner.pid} " in out  # the holder is named
    assert winner.poll() is None
    lab.block.unlink()

    assert finish(winner) == (0, "completed")
    assert lab.side_effects() == {"process_order": 1, "charge_payment": 1, "send_notification": 1}
    assert lab.run(run_id).status is RunStatus.COMPLETED


# -- (d) two processes start with one idempotency key ---------------------------------------------
def test_one_idempotency_key_from_two_processes_starts_one_run(lab: Lab, tmp_path: Path) -> None:
    go = tmp_path / "go"
    children = [lab.spawn("start", str(lab.base), "order", "order-77", str(go)) for _ in range(3)]
    wait_until(lambda: len(list(tmp_path.glob("go.ready.*"))) == 3, "children ready")
    go.touch()

    answers = {finish(child) for child in children}

    assert len(answers) == 1
    ((code, run_id),) = answers
    assert code == 0 and run_id.startswith("run_")
    assert lab.side_effects() == {"process_order": 1, "charge_payment": 1, "send_notification": 1}
    assert [p.stem for p in (lab.base / "runs").iterdir()] == [run_id]
    assert len(list((lab.base / "idempotency").iterdir())) == 1
    assert lab.run(run_id).status is RunStatus.COMPLETED
