"""Real crashes (SIGKILL) around continue_as_new and the step context, on file storage: the
killed process's run is resumed by a fresh process (``tests/_issue13_child.py``)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest

from pyworkflow import RunStatus
from pyworkflow._core._events import (
    Event,
    StepContextSet,
    WorkflowContinuedAsNew,
    WorkflowStarted,
)
from pyworkflow._execution._continuation import successor_id
from pyworkflow.storage import FileStorageBackend

from .storage.test_file_crash import TIMEOUT, Lab, kill, wait_until


class ChainLab(Lab):
    """The crash lab of the file storage tests, with this feature's child process."""

    child_module = "tests._issue13_child"

    @property
    def paused(self) -> Path:
        return self.base.parent / "paused"

    def head(self) -> str:
        async def find() -> str:
            page = await FileStorageBackend(self.base).list_runs(limit=10)
            (first,) = [r for r in page if r.continued_from_run_id is None]
            return first.run_id

        return anyio.run(find)

    def resume(self, run_id: str) -> str:
        child = self.spawn("resume", str(self.base), run_id)
        out, err = child.communicate(timeout=TIMEOUT)
        assert child.returncode == 0, err[-3000:]
        return out.strip()

    def log(self, run_id: str) -> list[Event]:
        return self.events(run_id)


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[ChainLab]:
    lab = ChainLab(tmp_path / "data", tmp_path / "side_effects.txt", tmp_path / "block", [])
    yield lab
    for child in lab.children:
        if child.poll() is None:
            child.kill()
            child.communicate(timeout=TIMEOUT)


def test_a_kill_between_the_successors_start_and_the_runs_end_links_once(lab: ChainLab) -> None:
    first = lab.spawn("start", str(lab.base), PAUSE_AT_END=str(lab.paused))
    wait_until(lab.paused.exists, "the run to reach its end by continue_as_new")
    kill(first)

    head = lab.head()
    successor = successor_id(head)
    # The successor's start is written; the head's end is not: it is still running.
    assert not isinstance(lab.log(head)[-1], WorkflowContinuedAsNew)
    assert isinstance(lab.log(successor)[0], WorkflowStarted)

    out = lab.resume(head)

    assert out == "continued_as_new completed ['round2@b1#2', 'round1@b1#1']"
    assert lab.side_effects() == {"round2": 1, "round1": 1}  # each round's step ran once
    ends = [e for e in lab.log(head) if isinstance(e, WorkflowContinuedAsNew)]
    assert [e.new_run_id for e in ends] == [successor]
    assert sum(isinstance(e, WorkflowStarted) for e in lab.log(successor)) == 1
    assert lab.log(successor_id(successor)) == []  # the chain ends there


def test_a_kill_in_the_successors_step_resumes_the_chain_with_its_context(lab: ChainLab) -> None:
    block = Path(f"{lab.block}.round1")
    block.touch()  # the successor's step waits after its side effect
    first = lab.spawn("start", str(lab.base))
    wait_until(lambda: lab.side_effects()["round1"] == 1, "the successor's step")
    kill(first)
    block.unlink()

    head = lab.head()
    out = lab.resume(head)

    # The step in flight ran again (at least once) and saw the context, restored by replay.
    assert out == "continued_as_new completed ['round2@b1#2', 'round1@b1#1']"
    assert lab.side_effects() == {"round2": 1, "round1": 2}
    successor = successor_id(head)
    contexts = [e for e in lab.log(successor) if isinstance(e, StepContextSet)]
    assert len(contexts) == 1  # recorded once
    assert lab.run(successor).status is RunStatus.COMPLETED
