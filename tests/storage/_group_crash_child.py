"""A child for the group-commit crash test: ``python -m tests.storage._group_crash_child BASE
RUNS``, run from the repo root.

``RUNS`` runs append to ``BASE`` at once with ``durability="always"`` (so their appends
share barriers), the events of :func:`history` in batches of one or two, for ever; after
each acknowledged append the child prints ``RUN_ID SEQUENCE`` (flushed). The parent kills
it with SIGKILL somewhere in the middle.
"""

from __future__ import annotations

import sys

import anyio

from pyworkflow._core._events import Event, StepCompleted, StepStarted, WorkflowSuspended
from pyworkflow.storage import FileStorageBackend

from .helpers import History, raw, started

STEPS = 400


def history(n: int) -> list[Event]:
    """The events of run ``n`` (the same in the parent): steps, with a flush point (a
    suspension: record files written) every 25 steps."""
    h = History(f"run_{n:016x}")
    started(h)
    for checkpoint in range(1, STEPS):
        h.step(StepStarted, checkpoint, "add")
        h.step(StepCompleted, checkpoint, "add", result=raw(checkpoint))
        if checkpoint % 25 == 0:
            h.add(WorkflowSuspended, reason="sleep")
    return h.events


def batches(n: int, events: list[Event]) -> list[list[Event]]:
    """Odd runs append two events at a time (a multi-line write), even runs one."""
    size = 1 + n % 2
    return [events[i : i + size] for i in range(0, len(events), size)]


async def main(base: str, runs: int) -> None:
    backend = FileStorageBackend(base, durability="always")

    async def run(n: int) -> None:
        for batch in batches(n, history(n)):
            await backend.append(batch[0].run_id, batch, expected_sequence=batch[0].sequence - 1)
            sys.stdout.write(f"{batch[0].run_id} {batch[-1].sequence}\n")
            sys.stdout.flush()

    async with anyio.create_task_group() as tg:
        for n in range(runs):
            tg.start_soon(run, n)


if __name__ == "__main__":
    anyio.run(main, sys.argv[1], int(sys.argv[2]))
