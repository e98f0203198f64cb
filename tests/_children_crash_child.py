"""Child processes for the SIGKILL test of child workflows:
``python -m tests._children_crash_child CMD BASE [RUN_ID]``, from the repo root.

Environment (as ``tests/storage/_crash_child.py``): ``CRASH_COUNTER`` (each step appends its
name) and, for ``start``, ``PAUSE_AT_RECORD``: the process waits (to be killed) just before
the parent records ``child_workflow_started``, after the child's start was written.
"""

from __future__ import annotations

import sys
from pathlib import Path

import anyio

from pyworkflow import (
    configure,
    get_workflow_run,
    resume,
    start,
    start_child_workflow,
    step,
    workflow,
)
from pyworkflow.storage import FileStorageBackend

from . import _issue13_child as issue13
from .storage._crash_child import side_effect


class PausingStorage(issue13.PausingStorage):
    """Waits forever before appending a parent's record of its child's start."""

    PAUSE_ENV = "PAUSE_AT_RECORD"
    PAUSE_BEFORE = "child_workflow_started"


@step(name="kidcrash.work")
async def work(label: str) -> str:
    side_effect(label)
    return f"{label} done"


@workflow(name="kidcrash.child", durable=True)
async def child(label: str) -> str:
    return await work(label)


@workflow(name="kidcrash.parent", durable=True)
async def parent() -> str:
    before = await work("before")
    got = await start_child_workflow(child, "child")
    return f"{before}, {got}"


async def cmd_start(base: str) -> None:
    configure(storage=PausingStorage(base))
    print(await start(parent), flush=True)


async def cmd_resume(base: str, run_id: str) -> None:
    configure(storage=FileStorageBackend(base))
    result = await resume(run_id)
    run = await get_workflow_run(run_id)
    assert run is not None
    print(run.status.value, result, flush=True)


COMMANDS = {"start": cmd_start, "resume": cmd_resume}


def main(argv: list[str]) -> None:
    command, *args = argv
    Path(args[0]).mkdir(parents=True, exist_ok=True)
    anyio.run(COMMANDS[command], *args)


if __name__ == "__main__":
    main(sys.argv[1:])
