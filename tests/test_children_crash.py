"""A real crash (SIGKILL) between a child's start and its parent's record of it, on file
storage: a fresh process resumes the parent, which finds the child by its derived id (the
child is started exactly once, its step runs once)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest

from pyworkflow import RunStatus
from pyworkflow._core._events import ChildWorkflowStarted, WorkflowStarted
from pyworkflow._execution._children import child_id
from pyworkflow.storage import FileStorageBackend

from .storage.test_file_crash import TIMEOUT, kill, wait_until
from .test_issue13_crash import ChainLab


class ChildLab(ChainLab):
    """The crash lab of continue_as_new, with this feature's child process."""

    child_module = "tests._children_crash_child"

    def parent(self) -> str:
        async def find() -> str:
            page = await FileStorageBackend(self.base).list_runs(limit=10)
            (top,) = [r for r in page if r.parent_run_id is None]
            return top.run_id

        return anyio.run(find)


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[ChildLab]:
    lab = ChildLab(tmp_path / "data", tmp_path / "side_effects.txt", tmp_path / "block", [])
    yield lab
    for process in lab.children:
        if process.poll() is None:
            process.kill()
            process.communicate(timeout=TIMEOUT)


def test_a_kill_between_the_childs_start_and_its_record_starts_it_once(lab: ChildLab) -> None:
    first = lab.spawn("start", str(lab.base), PAUSE_AT_RECORD=str(lab.paused))
    wait_until(lab.paused.exists, "the parent to reach its record of the child's start")
    kill(first)

    parent = lab.parent()
    kid = child_id(f"{parent}:2", parent, None)
    # The child's start is written; the parent's record of it is not: it is still running.
    assert isinstance(lab.events(kid)[0], WorkflowStarted)
    assert not any(isinstance(e, ChildWorkflowStarted) for e in lab.events(parent))
    assert lab.run(parent).status is RunStatus.RUNNING

    out = lab.resume(parent)  # a fresh process

    assert out == "completed before done, child done"
    assert lab.side_effects() == {"before": 1, "child": 1}  # the child ran once
    assert sum(isinstance(e, WorkflowStarted) for e in lab.events(kid)) == 1
    records = [e for e in lab.events(parent) if isinstance(e, ChildWorkflowStarted)]
    assert [e.child_run_id for e in records] == [kid]
    assert [r.run_id for r in anyio.run(FileStorageBackend(lab.base).get_children, parent)] == [
        kid
    ]
    assert lab.run(kid).parent_run_id == parent and lab.run(kid).status is RunStatus.COMPLETED
    (run_files,) = {len(list((lab.base / "events").glob("*.jsonl")))}
    assert run_files == 2  # the parent and one child: nothing else was started
