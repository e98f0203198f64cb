"""Child processes for the SIGKILL tests of continue_as_new and step context:
``python -m tests._issue13_child CMD BASE [RUN_ID]``, from the repo root.

Environment (as ``tests/storage/_crash_child.py``): ``CRASH_COUNTER`` (each step appends its
name), ``CRASH_BLOCK`` (while ``{CRASH_BLOCK}.{label}`` exists, ``slow_step(label)`` waits after
its side effect) and, for
``start``, ``PAUSE_AT_END``: the process waits (to be killed) just before it writes a run's
``workflow_continued_as_new``, after its successor's start.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path

import anyio

from pyworkflow import (
    Event,
    StepContext,
    configure,
    continue_as_new,
    get_step_context,
    get_workflow_chain,
    resume,
    set_step_context,
    start,
    step,
    workflow,
)
from pyworkflow.storage import FileStorageBackend

from .storage._crash_child import side_effect, touch, wait_for


class PausingStorage(FileStorageBackend):
    """Waits forever before appending a run's end by continue_as_new (when asked to, by
    the file that ``PAUSE_ENV`` names); subclasses pause before another event."""

    PAUSE_ENV = "PAUSE_AT_END"
    PAUSE_BEFORE = "workflow_continued_as_new"

    async def append(self, run_id: str, events: Sequence[Event], *, expected_sequence: int) -> None:
        pause = os.environ.get(self.PAUSE_ENV)
        if pause and any(e.type.value == self.PAUSE_BEFORE for e in events):
            touch(pause)
            await anyio.sleep_forever()
        await super().append(run_id, events, expected_sequence=expected_sequence)


class Batch(StepContext):
    batch: str = ""
    round: int = 0


@step(name="i13.slow_step")
async def slow_step(label: str) -> str:
    side_effect(label)
    block = os.environ.get("CRASH_BLOCK")
    if block:
        await wait_for(f"{block}.{label}", present=False)
    ctx = get_step_context()
    assert isinstance(ctx, Batch)
    return f"{label}@{ctx.batch}#{ctx.round}"


@workflow(name="i13.rounds", durable=True, context_class=Batch)
async def rounds(n: int, seen: list[str]) -> list[str]:
    await set_step_context(Batch(batch="b1", round=n))
    seen = [*seen, await slow_step(f"round{n}")]
    if n > 1:
        await continue_as_new(n - 1, seen)
    return seen


async def cmd_start(base: str) -> None:
    configure(storage=PausingStorage(base))
    print(await start(rounds, 2, []), flush=True)


async def cmd_resume(base: str, run_id: str) -> None:
    configure(storage=FileStorageBackend(base))
    result = await resume(run_id)
    chain = await get_workflow_chain(run_id)
    print(" ".join(r.status.value for r in chain), result, flush=True)


COMMANDS = {"start": cmd_start, "resume": cmd_resume}


def main(argv: list[str]) -> None:
    command, *args = argv
    Path(args[0]).mkdir(parents=True, exist_ok=True)
    anyio.run(COMMANDS[command], *args)


if __name__ == "__main__":
    main(sys.argv[1:])
