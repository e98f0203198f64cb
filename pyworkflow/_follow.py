"""Following a run's log as it grows: ``pyworkflow events --follow`` and the dashboard's
live pages read new events through :func:`follow_events`."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence

import anyio

from ._core._events import (
    Event,
    WorkflowCancelled,
    WorkflowCompleted,
    WorkflowContinuedAsNew,
    WorkflowFailed,
)
from .storage import StorageBackend

__all__ = ["FINAL_EVENTS", "follow_events", "is_final"]

FINAL_EVENTS = (WorkflowCompleted, WorkflowFailed, WorkflowCancelled, WorkflowContinuedAsNew)
"""The events that end a run's log."""


def is_final(events: Sequence[Event]) -> bool:
    """Whether ``events`` hold the run's last event."""
    return any(isinstance(event, FINAL_EVENTS) for event in events)


async def follow_events(
    storage: StorageBackend, run_id: str, *, after: int = 0, interval: float = 0.2
) -> AsyncIterator[list[Event]]:
    """The run's events after sequence ``after``, in batches as they are appended (the log
    is read every ``interval`` seconds); ends after the batch that holds its last event.
    Cancel the caller's scope to stop earlier."""
    while True:
        events = await storage.read(run_id, after=after)
        if events:
            after = events[-1].sequence
            yield events
            if is_final(events):
                return
        await anyio.sleep(interval)
