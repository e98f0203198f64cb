"""``get_children``, the same on every backend: the parent's log is the truth.

A parent's children are the runs its ``child_workflow_started`` events name, in the order
it started them; their records come from ``get_run``. A child whose start the parent has
not recorded yet (a crash between the two writes, repaired by the parent's recovery) is
listed once the parent recorded it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._core._events import ChildWorkflowStarted
from .._core._records import WorkflowRun

if TYPE_CHECKING:
    from ._port import StorageBackend

__all__ = ["children_of"]


async def children_of(storage: StorageBackend, run_id: str) -> list[WorkflowRun]:
    """The records of the children that run ``run_id`` started, in the order it started
    them (empty for an unknown run or one with no children). One read of the parent's log
    plus one ``get_run`` per child."""
    events = await storage.read(run_id, after=0)
    found: list[WorkflowRun] = []
    for event in events:
        if isinstance(event, ChildWorkflowStarted):
            child = await storage.get_run(event.child_run_id)
            if child is not None:
                found.append(child)
    return found
