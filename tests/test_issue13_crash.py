"""Real crashes (SIGKILL) around continue_as_new and the step context, on file storage: the
killed process's run is resumed by a fresh process (``tests/_issue13_child.py``)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import anyio
import pytest

from pyworkflow import RunStatus
from pyworkflow._core._events import StepContextSet, WorkflowContinuedAsNew, WorkflowStarted
from pyworkflow._execution._continuation import successor_id
from pyworkflow.storage import FileStorageBackend

from .storage.test_file_crash import TIMEOUT, kill, wait_until

ROOT = Path(__file__).resolve().parents[1]


class Lab:
    def __init__(self, tmp: Path) -> None:
        self.base = tmp / "data"
        self.counter = tmp / "side_effects.txt"
        self.block = tmp / "block"
        self.paused = tmp / "paused"
        self.children: list[subprocess.Popen[str]] = []

    def spawn(self, *args: str, pause: bool = False) -> subprocess.Popen[str]:
        env = {
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "CRASH_COUNTER": str(self.counter),
            "CRASH_BLOCK": str(self.block),
            "PAUSE_AT_END": str(self.paused) if pause else "",
        }
        child = subprocess.Popen(
            [sys.executable, "-m", "tests._issue13_child", args[0], str(self.base), *args[1:]],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.children.append(child)
        return child

    def side_effects(self) -> Counter[str]:
        return Counter(self.counter.read_text().split()) if self.counter.exists() else Counter()

    def head(self) -> str:
        async def find() -> str:
            page = await FileStorageBackend(self.base).list_runs(limit=10)
            (first,) = [r for r in page if r.continued_from_run_id is None]
            return first.run_id

        return anyio.run(find)

    def events(self, run_id: str) -> list[object]:
        return list(anyio.run(FileStorageBackend(self.base).read, run_id))

    def resume(self, run_id: str) -> str:
        child = self.spawn("resume", run_id)
        out, err = child.communicate(timeout=TIMEOUT)
        assert child.returncode == 0, err[-3000:]
        return out.strip()


@pytest.fixture
def lab(tmp_path: Path) -> Lab:
    lab = Lab(tmp_path)
    yield lab  # type: ignore[misc]
    for child in lab.children:
        if child.poll() is None:
            child.kill()
            child.communicate(timeout=TIMEOUT)


def test_a_kill_between_the_successors_start_and_the_runs_end_links_once(lab: Lab) -> None:
    first = lab.spawn("start", pause=True)
    wait_until(lab.paused.exists, "the run to reach its end by continue_as_new")
    kill(first)

    head = lab.head()
    successor = successor_id(head)
    # The successor's start is written; the head's end is not: it is still running.
    assert [type(e) for e in lab.events(head)][-1] is not WorkflowContinuedAsNew
    assert isinstance(lab.events(successor)[0], WorkflowStarted)

    out = lab.resume(head)

    assert out == "continued_as_new completed ['round2@b1#2', 'round1@b1#1']"
    assert lab.side_effects() == {"round2": 1, "round1": 1}  # each round's step ran once
    ends = [e for e in lab.events(head) if isinstance(e, WorkflowContinuedAsNew)]
    assert [e.new_run_id for e in ends] == [successor]
    assert sum(isinstance(e, WorkflowStarted) for e in lab.events(successor)) == 1
    assert not any(isinstance(e, WorkflowStarted) for e in lab.events(successor_id(successor)))


def test_a_kill_in_the_successors_step_resumes_the_chain_with_its_context(lab: Lab) -> None:
    block = Path(f"{lab.block}.round1")
    block.touch()  # the successor's step waits after its side effect
    first = lab.spawn("start")
    wait_until(lambda: lab.side_effects()["round1"] == 1, "the successor's step")
    kill(first)
    block.unlink()

    head = lab.head()
    out = lab.resume(head)

    assert out == "continued_as_new completed ['round2@b1#2', 'round1@b1#1']"
    assert lab.side_effects()["round2"] == 1  # the head's step never ran again
    assert lab.side_effects()["round1"] == 2  # the step in flight: at least once
    successor = successor_id(head)
    contexts = [e for e in lab.events(successor) if isinstance(e, StepContextSet)]
    assert len(contexts) == 1  # recorded once, restored by the replay
    run = anyio.run(FileStorageBackend(lab.base).get_run, successor)
    assert run is not None and run.status is RunStatus.COMPLETED
